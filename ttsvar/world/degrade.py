"""Random degradations that make clean renders look like a small generator's output.

A verifier trained on clean renders only would score a generated image by how rendered it
looks; trained on these it learns to look past the defects of the images it will actually
judge: soft edges (a stride-8 VAE: down-up resampling, blur), wobbly outlines and slightly
displaced objects (a smooth random warp), colour casts (brightness, contrast, saturation,
per-channel offsets), blotches and block seams (low-frequency colour noise, per-8×8-cell
offsets), pixel noise and JPEG artefacts. The strengths stay below what would change an
image's truth: colour shifts are a fraction of the smallest gap between two palette colours
(orange/yellow, 98 levels) and the warp moves edges by at most a couple of pixels.

Everything is batched torch on float [B, 3, H, W] in 0..1 except JPEG (Pillow); all randomness
comes from the ``torch.Generator`` passed in, so a seeded call is reproducible.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def _u(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def _mask(g: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def down_up(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Resample to a random smaller side (½ to ⅞) and back: the softness of a VAE decode."""
    n, _, h, w = x.shape
    out = x.clone()
    for i in torch.nonzero(_mask(g, n, p)).flatten().tolist():
        side = int(torch.randint(h // 2, h * 7 // 8 + 1, (1,), generator=g))
        small = F.interpolate(x[i:i + 1], size=(side, side * w // h), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out


def gaussian_blur(x: torch.Tensor, g: torch.Generator, p: float = 0.4, max_sigma: float = 1.2) -> torch.Tensor:
    """Per-image Gaussian blur with sigma uniform in (0.3, max_sigma) (a grouped separable conv)."""
    n, c, h, w = x.shape
    sigma = _u(g, n, 0.3, max_sigma)
    radius = math.ceil(3 * max_sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [n*c, 2r+1]
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c).reshape(n, c, h, w)
    return _where(_mask(g, n, p), y, x)


def warp(x: torch.Tensor, g: torch.Generator, p: float = 0.6, max_shift: float = 1.5, max_rotate: float = 4.0,
         max_translate: float = 1.5) -> torch.Tensor:
    """A small affine move (rotation, scale, translation) plus a smooth random displacement field
    (a 4×4 grid of offsets of up to ``max_shift`` pixels, bicubically upsampled): bent edges and
    slightly misshapen objects, the background edge replicated."""
    n, _, h, w = x.shape
    angle = _u(g, n, -max_rotate, max_rotate) * math.pi / 180
    scale = _u(g, n, 0.95, 1.05)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * max_translate * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    field = (torch.rand(n, 2, 4, 4, generator=g) * 2 - 1) * max_shift
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)
    field = field.permute(0, 2, 3, 1) * 2 / torch.tensor([w, h])
    y = F.grid_sample(x, grid + field.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return _where(_mask(g, n, p), y, x)


def color_jitter(x: torch.Tensor, g: torch.Generator, p: float = 0.7) -> torch.Tensor:
    """Brightness ±0.06, contrast ×0.85–1.15, saturation ×0.75–1.2, per-channel offsets ±0.05."""
    n = x.shape[0]
    v = lambda low, high: _u(g, n, low, high).view(n, 1, 1, 1).to(x.dtype)  # noqa: E731
    y = x + v(-0.06, 0.06)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * v(0.85, 1.15) + mean
    gray = y.mean(dim=1, keepdim=True)
    y = (y - gray) * v(0.75, 1.2) + gray
    y = y + ((torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * 0.05).to(x.dtype)
    return _where(_mask(g, n, p), y.clamp(0, 1), x)


def blotches(x: torch.Tensor, g: torch.Generator, p: float = 0.4, amplitude: float = 0.05, cell: int = 8) -> torch.Tensor:
    """Low-frequency colour noise plus a per-cell offset on a ``cell``-pixel grid (VAE seams)."""
    n, c, h, w = x.shape
    smooth = F.interpolate((torch.rand(n, c, 4, 4, generator=g) * 2 - 1), size=(h, w), mode="bicubic",
                           align_corners=True)
    cells = (torch.rand(n, c, -(-h // cell), -(-w // cell), generator=g) * 2 - 1) * 0.4
    cells = cells.repeat_interleave(cell, 2).repeat_interleave(cell, 3)[..., :h, :w]
    y = x + (amplitude * (smooth + cells)).to(x.dtype)
    return _where(_mask(g, n, p), y.clamp(0, 1), x)


def pixel_noise(x: torch.Tensor, g: torch.Generator, p: float = 0.5, max_sigma: float = 0.05) -> torch.Tensor:
    n = x.shape[0]
    sigma = _u(g, n, 0.0, max_sigma).view(n, 1, 1, 1).to(x.dtype)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return _where(_mask(g, n, p), y.clamp(0, 1), x)


def jpeg(x: torch.Tensor, g: torch.Generator, p: float = 0.3, quality: tuple[int, int] = (25, 90)) -> torch.Tensor:
    """JPEG round trip through Pillow at a random quality."""
    out = x.clone()
    for i in torch.nonzero(_mask(g, x.shape[0], p)).flatten().tolist():
        q = int(torch.randint(quality[0], quality[1] + 1, (1,), generator=g))
        arr = (x[i].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=q)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out[i] = torch.from_numpy(back.copy()).permute(2, 0, 1).to(x.dtype) / 255
    return out


def degrade(x: torch.Tensor, g: torch.Generator, clean: float = 0.15) -> torch.Tensor:
    """The full chain, each step with its own probability; a ``clean`` share of images is left as is."""
    keep = _mask(g, x.shape[0], clean)
    y = down_up(x, g)
    y = gaussian_blur(y, g)
    y = warp(y, g)
    y = color_jitter(y, g)
    y = blotches(y, g)
    y = pixel_noise(y, g)
    y = jpeg(y, g)
    return _where(keep, x, y)
