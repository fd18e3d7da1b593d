"""DINOv2 features: patch tokens without CLS/registers, PCA against numpy, pooling, batching."""

import numpy as np
import pytest
import torch

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.scoring import load_dinov2, pca_first_component
from ttsvar.scoring.base import FeatureExtractor


def _numpy_pca(tokens: np.ndarray, like: np.ndarray) -> np.ndarray:
    """First-component projection from numpy's SVD, each row's sign aligned with ``like`` (the sign
    is the SVD's own choice, which numpy's LAPACK may make differently; tests/test_official_parity.py
    checks the sign against the official torch.svd call)."""
    out = []
    for x, ref in zip(tokens.astype(np.float64), like):
        xc = x - x.mean(0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        f = xc @ vt[0]
        out.append(f if f @ ref >= 0 else -f)
    return np.stack(out)


def test_pca_against_numpy_svd():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(5, 16, 24, generator=g) + torch.randn(5, 1, 24, generator=g) * 3
    ours = pca_first_component(t.double()).numpy()
    np.testing.assert_allclose(ours, _numpy_pca(t.numpy(), ours), atol=1e-9)
    assert ours.shape == (5, 16)


@pytest.mark.parametrize("key,registers", [("dinov2", 0), ("dinov2_reg", 4)])
def test_patch_tokens_exclude_cls_and_registers(tiny_dirs, images, key, registers):
    ext = load_dinov2(tiny_dirs[key], image_size=32)
    assert isinstance(ext, FeatureExtractor) and ext.input_size == 32
    toks = ext.patch_tokens(images)
    assert toks.shape == (4, 16, 32)  # (32/8)² patches, hidden 32
    from ttsvar.scoring import _common as C

    x = C.square_preprocess(images, size=32, mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, device=ext.device,
                            dtype=ext.dtype)
    with torch.no_grad():
        full = ext.model(pixel_values=x).last_hidden_state
    assert full.shape[1] == 1 + registers + 16
    torch.testing.assert_close(toks, full[:, 1 + registers:])


def test_modes_and_batching(tiny_dirs, images):
    pca = load_dinov2(tiny_dirs["dinov2_reg"], mode="pca", image_size=32)
    pool = load_dinov2(tiny_dirs["dinov2_reg"], mode="pool", image_size=32)
    fp, fo = pca.features(images), pool.features(images)
    assert fp.shape == (4, 16) and fo.shape == (4, 32) and fp.dtype == fo.dtype == torch.float32
    assert pca.dim == 16 and pool.dim == 32
    toks = pca.patch_tokens(images)
    np.testing.assert_allclose(fp.numpy(), _numpy_pca(toks.numpy(), fp.numpy()), atol=1e-4)
    torch.testing.assert_close(fo, toks.mean(1))
    for ext, full in ((pca, fp), (pool, fo)):
        single = torch.cat([ext.features(images[i:i + 1]) for i in range(4)])
        torch.testing.assert_close(full, single, atol=1e-5, rtol=0)


def test_dtypes(tiny_dirs, images):
    ref = load_dinov2(tiny_dirs["dinov2"], mode="pool", image_size=32).features(images)
    f64 = load_dinov2(tiny_dirs["dinov2"], mode="pool", image_size=32, dtype=torch.float64)
    assert f64.model.dtype == torch.float64
    torch.testing.assert_close(f64.features(images), ref, atol=1e-4, rtol=1e-4)
    fbf = load_dinov2(tiny_dirs["dinov2"], mode="pca", image_size=32, dtype="bf16")
    out = fbf.features(images)
    assert fbf.model.dtype == torch.bfloat16 and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_errors(tmp_path, tiny_dirs):
    with pytest.raises(MissingWeightsError) as e:
        load_dinov2(tmp_path)
    assert "config.json" in str(e.value) and "facebook/dinov2" in str(e.value)
    with pytest.raises(TTSVarError, match="mode"):
        load_dinov2(tiny_dirs["dinov2"], mode="inception")
    with pytest.raises(TTSVarError, match="multiple of the patch size"):
        load_dinov2(tiny_dirs["dinov2"], image_size=30)
    with pytest.raises(TTSVarError, match="not DINOv2"):
        load_dinov2(tiny_dirs["clip"])
