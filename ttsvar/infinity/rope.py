"""2-D rotary position embedding, positions stretched to the 1M grid of the aspect template.

Infinity rotates each head's channels in interleaved pairs (2j, 2j+1); the first quarter of
the pairs turns with the row index, the second with the column index. A token at (y, x) of an
h×w scale sits at (round(y·H/h), round(x·W/w)) of the template's final 1M grid H×W, so coarse
scales share positions with the fine ones they predict.
"""

from __future__ import annotations

import torch

from ttsvar.infinity.grids import ScaleGrid

ROPE_BASE = 10000.0


def rope_tables(grid: ScaleGrid, head_dim: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Per scale, a float32 tensor [2, h·w, head_dim/2] holding cos and sin of every pair's angle."""
    half = head_dim // 2
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, half, 2, dtype=torch.int64).float() / half))
    full_h, full_w = grid.rope_grid
    tables = []
    for h, w in grid.scales:
        rows = (torch.arange(h) * (full_h / h)).round()
        cols = (torch.arange(w) * (full_w / w)).round()
        angle_rows = torch.outer(rows.float(), inv_freq)  # [h, half/2]
        angle_cols = torch.outer(cols.float(), inv_freq)  # [w, half/2]
        angles = torch.cat(
            [angle_rows[:, None, :].expand(h, w, -1), angle_cols[None, :, :].expand(h, w, -1)], dim=-1
        ).reshape(h * w, half)
        tables.append(torch.stack([angles.cos(), angles.sin()]).to(device))
    return tables


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, L, head_dim] (in float32) by table [2, L, head_dim/2]."""
    cos, sin = table[0], table[1]
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([cos * a - sin * b, sin * a + cos * b], dim=-1).flatten(-2)
