"""Bridges the loader nodes to ``ttsvar.scoring``.

Real models load through the library's family registry (``ttsvar.scoring.LOADERS``). The tiny
demo scorers below follow the library's RewardModel / FeatureExtractor protocols (images
[B,3,H,W] 0..1 in, float32 CPU tensors out); the library has no random-weight scorers yet.
"""

from __future__ import annotations

from typing import Sequence

from ttsvar.errors import TTSVarError


def _scoring():
    import ttsvar.scoring as scoring

    return scoring


def _spec(family: str, kind: str):
    from ttsvar.scoring import LOADERS

    spec = LOADERS.get(family)
    if spec is None or spec.kind != kind:
        known = ", ".join(n for n, s in LOADERS.items() if s.kind == kind)
        raise TTSVarError(f"unknown {kind} family '{family}'; this version of ttsvar.scoring knows: {known}.")
    return spec


def _family_key(family: str) -> tuple[str, str | None]:
    """'dinov2 (pca)' -> ('dinov2', 'pca'); 'clip-features' -> ('clip-features', None)."""
    if "(" in family:
        base, _, rest = family.partition("(")
        return base.strip(), rest.strip(") ")
    return family, None


def load_reward(family: str, path: str, device=None):
    return _spec(family, "reward")(path, device=device or "cpu")


def load_feature_extractor(family: str, path: str, device=None):
    base, mode = _family_key(family)
    spec = _spec(base, "features")
    if mode is not None:
        return spec(path, device=device or "cpu", mode=mode)
    return spec(path, device=device or "cpu")


class TinyReward:
    """A deterministic random reward (fixed random projection of a 16×16 thumbnail). For demos and
    tests only: it measures nothing meaningful."""

    input_size = 16

    def __init__(self, family: str, seed: int = 0):
        import torch

        self.name = f"tiny-random-{family}"
        g = torch.Generator().manual_seed(seed + sum(map(ord, family)))
        self._w = torch.randn(3 * 16 * 16, generator=g) / 27.7

    def torch_modules(self) -> list:
        return []  # a fixed CPU tensor, nothing for a host to manage

    def score(self, images, prompts: Sequence[str]):
        import torch
        import torch.nn.functional as F

        x = F.interpolate(images.detach().float().cpu(), size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
        return (x.flatten(1) @ self._w).to(torch.float32)


class TinyFeatures:
    """Deterministic random features (random projection of an 8×8 thumbnail to 32 dims)."""

    input_size = 8

    def __init__(self, family: str, seed: int = 0):
        import torch

        self.name = f"tiny-random-{family}"
        g = torch.Generator().manual_seed(seed + 1 + sum(map(ord, family)))
        self._w = torch.randn(3 * 8 * 8, 32, generator=g)

    def torch_modules(self) -> list:
        return []  # a fixed CPU tensor, nothing for a host to manage

    def features(self, images):
        import torch
        import torch.nn.functional as F

        x = F.interpolate(images.detach().float().cpu(), size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
        return (x.flatten(1) @ self._w).to(torch.float32)


def combine_rewards(rewards, weights, normalization: str = "softmax"):
    from ttsvar.scoring import combine_rewards as combine

    return combine(rewards, weights, normalization)
