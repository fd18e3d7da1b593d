"""Weighted combinations of rewards, e.g. the paper's HPS+ImageReward (appendix, Tab. 13).

Each member scores the batch; its scores are normalised *over the batch* and the normalised
scores are averaged with the weights (``Σ wᵢ·nᵢ / Σ wᵢ``). Normalisations:

* ``softmax`` (default, the paper's choice) — ``softmax(scores)`` over the batch, so each model
  contributes values in [0, 1] that sum to 1 over the batch whatever its scale.
* ``zscore`` — ``(s − mean) / std`` over the batch (std with ``correction=0``; a batch whose
  scores are all equal, or a batch of one, gives zeros).
* ``none`` — the raw scores.

With ``softmax`` and ``zscore`` a candidate's combined score depends on the other candidates
of the batch, so scoring one image at a time does not give the same numbers as scoring the
batch (that is the point of the normalisation: comparable ranges within the batch). Scores of
images of *different* prompts are normalised together, so call it with one prompt per batch
when that matters.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ttsvar.errors import TTSVarError

NORMALIZATIONS = ("softmax", "zscore", "none")


def normalize_scores(scores: torch.Tensor, how: str) -> torch.Tensor:
    """Normalise a [B] score vector over the batch (see the module docstring)."""
    s = scores.to(torch.float64)
    if how == "softmax":
        return torch.softmax(s, dim=0)
    if how == "zscore":
        if s.numel() < 2:
            return torch.zeros_like(s)
        std = s.std(correction=0)
        return torch.zeros_like(s) if std == 0 else (s - s.mean()) / std
    if how == "none":
        return s
    raise TTSVarError(f"Unknown normalisation {how!r}; choose one of {', '.join(NORMALIZATIONS)}.")


class CombinedReward:
    """A :class:`RewardModel` averaging several rewards with weights after per-batch normalisation."""

    def __init__(self, rewards: Sequence, weights: Sequence[float] | None = None, normalization: str = "softmax"):
        rewards = list(rewards)
        if not rewards:
            raise TTSVarError("Combine at least one reward model.")
        weights = [1.0] * len(rewards) if weights is None else [float(w) for w in weights]
        if len(weights) != len(rewards):
            raise TTSVarError(f"Got {len(weights)} weights for {len(rewards)} reward models.")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise TTSVarError(f"Weights must be non-negative with a positive sum; got {weights}.")
        if normalization not in NORMALIZATIONS:
            raise TTSVarError(f"Unknown normalisation {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}.")
        self.rewards, self.weights, self.normalization = rewards, weights, normalization
        self.name = "+".join(getattr(r, "name", "reward") for r in rewards)
        self.input_size = max(int(getattr(r, "input_size", 0)) for r in rewards)

    def torch_modules(self) -> list[torch.nn.Module]:
        """The union of the members' weight-holding modules (each once; members without weights add none)."""
        out: list[torch.nn.Module] = []
        for r in self.rewards:
            for m in (r.torch_modules() if callable(getattr(r, "torch_modules", None)) else ()):
                if not any(m is o for o in out):
                    out.append(m)
        return out

    def member_scores(self, images: torch.Tensor, prompts: Sequence[str]) -> list[torch.Tensor]:
        """Each member's raw scores, float32 [B] on the CPU."""
        return [r.score(images, prompts).to(torch.float32).cpu() for r in self.rewards]

    def combine(self, scores: Sequence[torch.Tensor]) -> torch.Tensor:
        total = sum(self.weights)
        out = sum(w * normalize_scores(s, self.normalization) for w, s in zip(self.weights, scores))
        return (out / total).to(torch.float32)

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.combine(self.member_scores(images, prompts))


def combine_rewards(rewards: Sequence, weights: Sequence[float] | None = None,
                    normalization: str = "softmax") -> CombinedReward:
    """``CombinedReward(rewards, weights, normalization)``; weights default to equal."""
    return CombinedReward(rewards, weights, normalization)
