"""Tensor preprocessing against the PIL reference path (the processors the models were trained with)."""

import numpy as np
import pytest
import torch
from PIL import Image

from ttsvar.scoring import _common as C


def _uint8_images(b=2, h=61, w=47, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(b, 3, 9, 7, generator=g), size=(h, w), mode="bilinear")
    return (x.clamp(0, 1) * 255).round() / 255  # exactly representable as uint8, so PIL sees the same image


def _to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


@pytest.mark.parametrize("hw", [(61, 47), (40, 64), (32, 32), (100, 100)])
def test_clip_preprocess_matches_hf_image_processor(hw):
    from transformers import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    x = _uint8_images(h=hw[0], w=hw[1])
    ours = C.clip_style_preprocess(x, resize_to=32, crop=32, mean=C.CLIP_MEAN, std=C.CLIP_STD,
                                   device=torch.device("cpu"), dtype=torch.float32, rounding="floor")
    ref = proc(images=[_to_pil(i) for i in x], return_tensors="pt")["pixel_values"]
    assert ours.shape == ref.shape == (2, 3, 32, 32)
    diff = (ours - ref).abs()
    # PIL rounds the resized image to uint8: ≤ 0.5/255 per pixel, ≈0.25/255 on average, i.e.
    # ≈0.004 after dividing by std≈0.27; torch's antialiased bicubic reproduces PIL's filter up to
    # that (measured: mean ≈0.29/255, max < 1/255 before normalisation)
    assert diff.mean() < 6e-3, diff.mean()
    assert diff.max() < 0.03, diff.max()


def _pil_horizontal_first(img: Image.Image, size: tuple[int, int], resample) -> Image.Image:
    """Pillow's resize with the horizontal pass first, as every Pillow before 13 does (two calls,
    each needing one pass, give exactly the single call's two passes)."""
    w, h = size
    if w != img.size[0]:
        img = img.resize((w, img.size[1]), resample)
    return img.resize((w, h), resample) if h != img.size[1] else img


def test_square_resize_is_pil_bilinear_on_uint8():
    """The official DINOv2 input: torchvision Resize((s, s)) on the uint8 PIL image (Pillow
    bilinear), ToTensor, Normalize; the same pixels, exactly."""
    x = _uint8_images(h=70, w=50)
    ours = C.square_preprocess(x, size=28, mean=(0, 0, 0), std=(1, 1, 1), device=torch.device("cpu"),
                               dtype=torch.float32)
    ref = torch.stack([torch.from_numpy(np.array(_pil_horizontal_first(_to_pil(i), (28, 28), Image.BILINEAR)))
                       .permute(2, 0, 1) for i in x]).float() / 255
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("hw", [(61, 47), (40, 64), (32, 32)])
def test_pil_uint8_clip_preprocess_is_pil_bicubic(hw):
    """ImageReward/HPSv2 as the official code feeds them (PIL images): Resize(shortest edge, bicubic),
    CenterCrop with torchvision rounding, ToTensor, Normalize — exactly."""
    x = _uint8_images(h=hw[0], w=hw[1])
    ours = C.clip_style_preprocess(x, resize_to=24, crop=24, mean=(0, 0, 0), std=(1, 1, 1),
                                   device=torch.device("cpu"), dtype=torch.float32, rounding="round", pil_uint8=True)
    size = C.shortest_edge_size(*hw, 24)
    ref = []
    for i in x:
        r = torch.from_numpy(np.array(_pil_horizontal_first(_to_pil(i), size[::-1], Image.BICUBIC))).permute(2, 0, 1)
        ref.append(C.center_crop(r, 24, "round").float() / 255)
    assert torch.equal(ours, torch.stack(ref))


def test_center_crop_rounding_conventions():
    x = torch.arange(7 * 7, dtype=torch.float32).view(1, 1, 7, 7).expand(1, 3, 7, 7)
    # (7 - 4) / 2 = 1.5 → torchvision round() gives 2, Hugging Face floor gives 1
    assert C.center_crop(x, 4, "round")[0, 0, 0, 0] == 2 * 7 + 2
    assert C.center_crop(x, 4, "floor")[0, 0, 0, 0] == 1 * 7 + 1


def test_shortest_edge_rule():
    assert C.shortest_edge_size(480, 640, 224) == (224, 298)
    assert C.shortest_edge_size(640, 480, 224) == (298, 224)
    assert C.shortest_edge_size(224, 224, 224) == (224, 224)


def test_preprocess_dtypes_and_range():
    x = _uint8_images()
    for dtype in (torch.float64, torch.bfloat16):
        y = C.clip_style_preprocess(x, resize_to=16, crop=16, mean=C.CLIP_MEAN, std=C.CLIP_STD,
                                    device=torch.device("cpu"), dtype=dtype)
        assert y.dtype == dtype
    # the resize is clamped to 0..1, as a uint8 image would be
    sharp = torch.zeros(1, 3, 64, 64)
    sharp[..., ::2, :] = 1
    assert C.resize(sharp, (17, 17)).min() >= 0 and C.resize(sharp, (17, 17)).max() <= 1


def test_bad_inputs():
    from ttsvar.errors import TTSVarError

    with pytest.raises(TTSVarError, match=r"\[B, 3, H, W\]"):
        C.check_images(torch.rand(3, 8, 8))
    with pytest.raises(TTSVarError, match="one prompt per image"):
        C.check_images(torch.rand(2, 3, 8, 8), 3)
    with pytest.raises(TTSVarError, match="floating point"):
        C.check_images(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TTSVarError, match="dtype"):
        C.resolve_dtype("int8")
    assert C.resolve_dtype("bf16") is torch.bfloat16 and C.resolve_dtype(None) is torch.float32
    assert C.resolve_dtype("auto", torch.device("cpu")) is torch.float32
