"""Candidates → images: decode each candidate's running code map with the BSQ VAE.

Filters look at *previews*: the official TTS-VAR code decodes the full-resolution code map and
turns it into 8-bit pixels (``scale_img = (vae.decode(...) + 1) / 2`` then
``.mul_(255).to(torch.uint8)``, truncating) before any feature or reward model sees it;
:func:`filter_previews` does the same. With fast filters the code map is decoded at about the
size the filter's model reads instead (an option, not the official behaviour).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ttsvar.errors import TTSVarError
from ttsvar.state import VarState


def decode_images(state: VarState, size: int | None = None, *, max_batch: int | None = None,
                  limit: int | None = None) -> torch.Tensor:
    """Images [B, 3, H, W] in 0..1 (float32, CPU) of the candidates as they stand.

    Without `size`, the full-resolution decode. With `size` (the side a scoring model reads),
    the code map is first resized so the image's short side comes out near `size` (the VAE is
    convolutional): at 1024² and size 224 that is about 20× less decoding work than decoding in
    full and downscaling, at the price of a slightly different intermediate image.
    `limit` decodes only the first candidates (previews). By default as many images are decoded
    at once as fit in one megapixel, so a filter's decode never peaks above the final image's.
    """
    if state.code_map is None:
        raise TTSVarError("this state has no sampled scale yet: sample at least one scale before decoding.")
    codes = state.code_map if limit is None else state.code_map[:limit]
    if size is not None:
        stride = state.model.vae.stride
        h, w = codes.shape[-2:]
        factor = size / (min(h, w) * stride)
        if factor < 1:
            target = (max(1, round(h * factor)), max(1, round(w * factor)))
            codes = F.interpolate(codes, size=target, mode="bilinear", align_corners=False)
    vae = state.model.vae
    if max_batch is None:
        pixels = codes.shape[-2] * codes.shape[-1] * vae.stride**2
        max_batch = max(1, 2**20 // pixels)
    with torch.inference_mode():
        images = vae.decode(codes.to(vae.device), max_batch=max_batch)
    return ((images.float() + 1) / 2).clamp(0, 1).cpu()


def quantize_like_official(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images in 0..1 as :func:`decode_images` returns them (exactly ``(x + 1) / 2`` of the decoder
    output ``x``) → the official 8-bit pixels, returned as float32 ``k / 255``.

    The official ``.mul_(255).to(torch.uint8)`` runs in the decoder's dtype and truncates; ``dtype``
    is that dtype (the VAE's): bfloat16 rounds ``(x + 1) / 2`` and the product to bfloat16 first,
    as the official bf16 autocast run does.
    """
    return (images.to(dtype) * 255).to(torch.uint8).float().div_(255)


def filter_previews(state: VarState, size: int | None = None) -> torch.Tensor:
    """The images a filter looks at: decoded in full (official) or, with ``size`` (fast filters),
    at about that side, then quantised to 8 bits as the official code does. Float32 ``k / 255``."""
    return quantize_like_official(decode_images(state, size), state.model.vae.dtype)
