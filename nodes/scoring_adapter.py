"""Bridges the loader nodes to ``ttsvar.scoring``.

The library's registries are used when they exist; the tiny demo scorers and the combination fall
back to the small implementations below (they follow the library's RewardModel / FeatureExtractor
protocols: images [B,3,H,W] 0..1 in, float32 CPU tensors out).
"""

from __future__ import annotations

from typing import Sequence

from ttsvar.errors import TTSVarError


def _scoring():
    import ttsvar.scoring as scoring

    return scoring


def _registry(*names):
    sc = _scoring()
    for n in names:
        reg = getattr(sc, n, None)
        if reg:
            return reg
    return None


def _family_key(family: str) -> tuple[str, str | None]:
    """'dinov2 (pca)' -> ('dinov2', 'pca'); 'clip-features' -> ('clip-features', None)."""
    if "(" in family:
        base, _, rest = family.partition("(")
        pool = rest.strip(") ").replace(" pool", "")
        return base.strip(), pool
    return family, None


def load_reward(family: str, path: str, device=None):
    reg = _registry("REWARD_LOADERS", "REWARD_MODELS", "REWARDS")
    if reg is None or family not in reg:
        raise TTSVarError(f"reward family '{family}' is not available in this version of ttsvar.scoring.")
    return reg[family](path, device=device)


def load_feature_extractor(family: str, path: str, device=None):
    reg = _registry("FEATURE_LOADERS", "FEATURE_EXTRACTORS", "EXTRACTORS")
    base, pool = _family_key(family)
    if reg is None or base not in reg:
        raise TTSVarError(f"feature extractor '{base}' is not available in this version of ttsvar.scoring.")
    if pool is not None:
        return reg[base](path, device=device, pooling=pool)
    return reg[base](path, device=device)


class TinyReward:
    """A deterministic random reward (fixed random projection of a 16×16 thumbnail). For demos and
    tests only: it measures nothing meaningful."""

    input_size = 16

    def __init__(self, family: str, seed: int = 0):
        import torch

        self.name = f"tiny-random-{family}"
        g = torch.Generator().manual_seed(seed + sum(map(ord, family)))
        self._w = torch.randn(3 * 16 * 16, generator=g) / 27.7

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

    def features(self, images):
        import torch
        import torch.nn.functional as F

        x = F.interpolate(images.detach().float().cpu(), size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
        return (x.flatten(1) @ self._w).to(torch.float32)


def tiny_reward(family: str):
    sc = _scoring()
    fn = getattr(sc, "tiny_reward", None)
    return fn(family) if fn is not None else TinyReward(family)


def tiny_feature_extractor(family: str):
    sc = _scoring()
    fn = getattr(sc, "tiny_feature_extractor", None)
    return fn(family) if fn is not None else TinyFeatures(family)


class CombinedReward:
    """Weighted sum of rewards, each standardised over the batch (z-score; a constant reward adds 0)."""

    def __init__(self, parts):
        self.parts = tuple(parts)
        self.name = " + ".join(f"{w:g}*{r.name}" for r, w in self.parts)
        self.input_size = max(int(getattr(r, "input_size", 224)) for r, _ in self.parts)

    def score(self, images, prompts):
        import torch

        total = None
        for r, w in self.parts:
            s = r.score(images, prompts).to(torch.float32).cpu()
            if s.numel() > 1:
                std = s.std(unbiased=False)
                s = (s - s.mean()) / std if std > 0 else torch.zeros_like(s)
            total = w * s if total is None else total + w * s
        return total


def combine_rewards(pairs):
    sc = _scoring()
    fn = getattr(sc, "combine_rewards", None) or getattr(sc, "CombinedReward", None)
    if fn is not None:
        try:
            return fn(pairs)
        except TypeError:
            pass
    return CombinedReward(pairs)
