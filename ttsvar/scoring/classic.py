"""Model-free verifiers: instant, deterministic, and good enough to exercise the search anywhere.

They are real measures, not stand-ins with fixed answers: colourfulness is the Hasler–Süsstrunk
metric, thumbnails keep an image's coarse layout (what clustering looks for at early scales).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


class ColorfulnessReward:
    """Hasler & Süsstrunk (2003) colourfulness, ignoring the prompt."""

    name = "colorfulness"
    input_size = 128

    def torch_modules(self) -> list:
        return []  # no weights

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        x = images.float() * 255
        rg = x[:, 0] - x[:, 1]
        yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
        std = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
        mean = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
        return ((std + 0.3 * mean) / 100).cpu()


class ThumbnailFeatures:
    """The image shrunk to `side`×`side` grey levels, centred: its coarse layout as a vector."""

    def __init__(self, side: int = 16):
        self.side, self.name, self.input_size = side, f"thumbnail-{side}", 8 * side

    def torch_modules(self) -> list:
        return []  # no weights

    def features(self, images: torch.Tensor) -> torch.Tensor:
        grey = images.float().mean(1, keepdim=True)
        thumb = F.adaptive_avg_pool2d(grey, self.side).flatten(1)
        return (thumb - thumb.mean(1, keepdim=True)).cpu()
