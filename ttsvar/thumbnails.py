"""Tiny JPEG thumbnails of candidate images, as data URIs: the lineage of a search can then be
shown as pictures (a search record stays small: about 1–3 kB per candidate at 64 px)."""

from __future__ import annotations

import base64
import io

import torch
import torch.nn.functional as F


def jpeg_thumbnails(images: torch.Tensor, size: int = 64, quality: int = 75) -> list[str]:
    """``data:image/jpeg;base64,…`` URIs of images [B, 3, H, W] in 0..1, the long side scaled down
    to ``size`` pixels (never up: a filter's small preview stays as small as it was decoded)."""
    from PIL import Image

    x = images.detach().to(device="cpu", dtype=torch.float32)
    h, w = x.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        target = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = F.interpolate(x, size=target, mode="bilinear", antialias=True, align_corners=False)
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    uris = []
    for arr in pixels:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return uris
