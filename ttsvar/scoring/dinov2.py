"""DINOv2 patch features for the clustering filter (a :class:`FeatureExtractor`).

Following the official TTS-VAR code: images are resized to 224×224 (no crop, aspect not kept),
ImageNet mean/std, and the final layer-normed patch tokens are taken, without the CLS and
register tokens (``x_norm_patchtokens``; ViT-L/14 → 16×16 = 256 patches).

Modes:

* ``pca`` — per image, centre the patch tokens ``X`` [N, D] over the patches and project them
  on their first principal component: ``f = (X − mean) · v₁`` with ``v₁`` the first right
  singular vector, one value per patch (an N-vector, a 16×16 map). A singular vector's sign is
  arbitrary, so two images with the same layout could get maps of opposite sign (the official
  code has this defect). Here the sign is fixed deterministically: **the entry of ``f`` with the
  largest magnitude is made positive** (the first such entry on ties).
* ``pool`` — the mean patch token, a D-vector.
"""

from __future__ import annotations

import os

import torch

from ttsvar.errors import TTSVarError
from ttsvar.hf_folder import load_pretrained
from ttsvar.scoring import _common as C

HINT_DINOV2 = ("Download a Hugging Face DINOv2 folder (config.json, model.safetensors), e.g. "
               "facebook/dinov2-with-registers-large (what TTS-VAR uses) or facebook/dinov2-large "
               "(small/base/giant work too).")
MODES = ("pca", "pool")


def pca_first_component(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, N, D]`` → ``[B, N]``: per image, the centred tokens projected on their first principal
    component, with the sign rule of the module docstring. Computed in the input's dtype (use
    float32 or float64)."""
    x = tokens - tokens.mean(dim=1, keepdim=True)
    # thin SVD of each [N, D] matrix; x·v₁ = u₁·s₁
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    f = u[..., 0] * s[..., :1]
    idx = f.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(torch.gather(f, 1, idx))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return f * sign


class Dinov2Features(C.ModuleBacked):
    """``features(images [B,3,H,W] in 0..1)`` → float32 ``[B, N]`` (pca) or ``[B, D]`` (pool) on the CPU."""

    _weight_attrs = ("model",)

    def __init__(self, model, *, mode: str, image_size: int, mean, std, device: torch.device, dtype: torch.dtype):
        if mode not in MODES:
            raise TTSVarError(f"Unknown DINOv2 feature mode {mode!r}; choose one of {', '.join(MODES)}.")
        patch = model.config.patch_size
        if image_size % patch:
            raise TTSVarError(f"DINOv2 input size {image_size} is not a multiple of the patch size {patch}.")
        self.model = model.eval().requires_grad_(False)
        self.mode = mode
        self.name = f"dinov2-{mode}"
        self.input_size = image_size
        self.mean, self.std = mean, std
        self.device, self.dtype = device, dtype
        self.n_skip = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)

    @property
    def dim(self) -> int:
        return (self.input_size // self.model.config.patch_size) ** 2 if self.mode == "pca" else self.model.config.hidden_size

    @torch.inference_mode()
    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Final-norm patch tokens ``[B, N, D]`` on the model's device, in float32 (float64)."""
        x = C.square_preprocess(images, size=self.input_size, mean=self.mean, std=self.std, device=self.device,
                                dtype=self.dtype)
        h = self.model(pixel_values=x).last_hidden_state
        return h[:, self.n_skip:].to(C.head_dtype(self.dtype))

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        t = self.patch_tokens(images)
        f = pca_first_component(t) if self.mode == "pca" else t.mean(dim=1)
        return C.to_output(f)


def load_dinov2(path: str | os.PathLike, *, mode: str = "pca", image_size: int = 224,
                device: torch.device | str | None = "cpu",
                dtype: torch.dtype | str | None = torch.float32) -> Dinov2Features:
    """DINOv2 (with or without registers) from a Hugging Face folder; ``mode`` ``"pca"`` or ``"pool"``.
    Mean/std come from the folder's ``preprocessor_config.json`` (ImageNet's otherwise)."""
    import json

    device = C.resolve_device(device)
    dtype = C.resolve_dtype(dtype, device)
    if mode not in MODES:
        raise TTSVarError(f"Unknown DINOv2 feature mode {mode!r}; choose one of {', '.join(MODES)}.")
    folder = C.require_files(path, [["config.json"], ["model.safetensors", "pytorch_model.bin",
                                                      "model.safetensors.index.json"]],
                             what="DINOv2 model files", hint=HINT_DINOV2)
    cfg = json.loads((folder / "config.json").read_text())
    model_type = cfg.get("model_type")
    if model_type == "dinov2":
        from transformers import Dinov2Model as cls
        repo = "facebook/dinov2-large"
    elif model_type == "dinov2_with_registers":
        from transformers import Dinov2WithRegistersModel as cls
        repo = "facebook/dinov2-with-registers-large"
    else:
        raise TTSVarError(f"{folder / 'config.json'} describes a {model_type!r} model, not DINOv2. {HINT_DINOV2}")
    model = load_pretrained(cls, folder, what="DINOv2", repo=repo, dtype=dtype).to(device)
    mean, std = C.IMAGENET_MEAN, C.IMAGENET_STD
    pp = folder / "preprocessor_config.json"
    if pp.is_file():
        p = json.loads(pp.read_text())
        mean, std = tuple(p.get("image_mean", mean)), tuple(p.get("image_std", std))
    return Dinov2Features(model, mode=mode, image_size=image_size, mean=mean, std=std, device=device, dtype=dtype)
