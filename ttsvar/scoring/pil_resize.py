"""Pillow's 8-bit resampling (``Image.resize`` with BILINEAR or BICUBIC) as tensor operations.

The official TTS-VAR code hands uint8 PIL images to its feature and reward models, whose
torchvision transforms resize them with Pillow (``transforms.Resize`` on a PIL image calls
``Image.resize``). Pillow resizes 8-bit images in fixed point: for every output pixel a
band of input pixels is weighted by the filter stretched to the downscaling factor, the
weights are rounded to integers with 22 fractional bits, and each of the two separable passes
(horizontal first, then vertical) rounds its result back to uint8. ``torch``'s antialiased
``interpolate`` follows the same filter but not the fixed point (float: up to 1.4/255 off;
its own uint8 kernel: up to 1/255 off in about 0.1–0.2 % of the pixels). This module redoes
Pillow's arithmetic step by step, so the result equals ``Image.resize`` exactly, on any device,
without a round trip through PIL.

Pass order: Pillow up to 12 (what the official code ran in 2025) always resizes horizontally
first. Pillow 13 runs the vertical pass first when the height shrinks much more than the width
(python-pillow/Pillow#9549), which changes some pixels of such non-square resizes by the
intermediate rounding; this module keeps the horizontal-first order of the official runs.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ttsvar.errors import TTSVarError

#: Fractional bits of Pillow's fixed-point weights for 8-bit images (32 − 8 − 2).
PRECISION_BITS = 22


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float) -> float:
    a = -0.5  # Pillow's cubic coefficient
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def pil_weights(in_size: int, out_size: int, filter: str) -> list[tuple[int, list[int]]]:
    """Per output pixel: the first input index and Pillow's integer weights of its band.

    Computed in double precision in the same order of operations as Pillow, then rounded half
    away from zero to ``PRECISION_BITS`` fractional bits, as Pillow does for 8-bit images.
    """
    fn, base_support = FILTERS[filter]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    inv = 1.0 / filterscale
    one = 1 << PRECISION_BITS
    out = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [fn((x + xmin - center + 0.5) * inv) for x in range(xmax)]
        total = 0.0
        for v in w:  # summed in order, as Pillow does
            total += v
        if total != 0.0:
            w = [v / total for v in w]
        out.append((xmin, [int(-0.5 + v * one) if v < 0 else int(0.5 + v * one) for v in w]))
    return out


@lru_cache(maxsize=64)
def _band_tables(in_size: int, out_size: int, filter: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Index [out, taps] and int32 weight [out, taps] tables; short bands are padded with weight 0."""
    bands = pil_weights(in_size, out_size, filter)
    taps = max(len(w) for _, w in bands)
    index = torch.zeros(out_size, taps, dtype=torch.long)
    weight = torch.zeros(out_size, taps, dtype=torch.int32)
    for o, (start, w) in enumerate(bands):
        index[o, : len(w)] = torch.arange(start, start + len(w))
        weight[o, : len(w)] = torch.tensor(w, dtype=torch.int32)
    return index, weight


def _resample_rows(x: torch.Tensor, out_size: int, filter: str) -> torch.Tensor:
    """One Pillow pass along dimension -2 of a uint8 tensor ``[..., S, R]``: the weighted sum (in
    int32, as Pillow) plus half a unit, shifted down by ``PRECISION_BITS`` and clipped to 0..255
    (Pillow's clip8). Along dimension -2 every tap gathers whole contiguous rows, which is fast."""
    index, weight = (t.to(x.device) for t in _band_tables(x.shape[-2], out_size, filter))
    acc = torch.full((*x.shape[:-2], out_size, x.shape[-1]), 1 << (PRECISION_BITS - 1), dtype=torch.int32,
                     device=x.device)
    for t in range(index.shape[1]):  # one tap at a time keeps memory at one output-sized buffer
        acc.addcmul_(x.index_select(-2, index[:, t]), weight[:, t, None])
    return torch.div(acc, 1 << PRECISION_BITS, rounding_mode="floor").clamp_(0, 255).to(torch.uint8)


def pil_resize(images: torch.Tensor, size: tuple[int, int], filter: str = "bilinear") -> torch.Tensor:
    """Resize uint8 images ``[B, C, H, W]`` to ``size`` = (h, w) exactly as Pillow's
    ``Image.resize((w, h), BILINEAR | BICUBIC)`` does for an 8-bit image (horizontal pass, then
    vertical, each rounded to uint8). Returns uint8 on the input's device."""
    if filter not in FILTERS:
        raise TTSVarError(f"Unknown resampling filter {filter!r}; choose one of {', '.join(FILTERS)}.")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise TTSVarError("pil_resize needs uint8 images [B, C, H, W].")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise TTSVarError(f"Resize target must be at least 1×1, got {size}.")
    x = images
    if w != x.shape[-1]:  # the horizontal pass first, on [B, C, W, H]
        x = _resample_rows(x.transpose(-1, -2).contiguous(), w, filter).transpose(-1, -2)
    if h != x.shape[-2]:
        x = _resample_rows(x.contiguous(), h, filter)
    return x.contiguous()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in 0..1 → uint8, rounding to the nearest level (so an image that came from
    uint8 as k/255 gets exactly k back; out-of-range values are clipped)."""
    return images.detach().clamp(0, 1).mul(255).round_().to(torch.uint8)

