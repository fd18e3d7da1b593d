"""The two small protocols every verifier follows, so the search never knows which model it uses.

Images cross these interfaces as float tensors [B, 3, H, W] in 0..1 (RGB), on any device; each
model moves and preprocesses them on its own device, so a batch already on the GPU never goes
through PIL.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class RewardModel(Protocol):
    """Scores images against prompts: higher is better."""

    name: str
    input_size: int  # the side in pixels the model reads; callers may decode intermediate images at this size

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """One float32 score per image, on the CPU, shape [B]; `prompts` has one entry per image."""
        ...


@runtime_checkable
class FeatureExtractor(Protocol):
    """Embeds images into one vector each, for clustering."""

    name: str
    input_size: int

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """One float32 vector per image, on the CPU, shape [B, D]."""
        ...
