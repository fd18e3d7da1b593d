"""Reward models and feature extractors: the verifiers that steer the search.

``import ttsvar.scoring`` is cheap (no torch, no transformers); the names below are resolved
lazily on first use.

Loaders (local files only; ``device=``/``dtype=`` keywords; see each module's docstring):
``load_imagereward``, ``load_hpsv2``, ``load_clip_score``, ``load_pickscore``, ``load_aesthetic``,
``load_dinov2``, ``load_clip_features``, ``load_world_reward``, ``load_world_features`` (the synthetic
world's own, shipped with the package); ``LOADERS`` maps family names to them.
Combination: ``combine_rewards`` / ``CombinedReward``. Protocols: ``RewardModel``, ``FeatureExtractor``.
"""

from __future__ import annotations

import importlib

from ttsvar.scoring.registry import LOADERS, LoaderSpec, load

_LAZY = {
    "RewardModel": "base", "FeatureExtractor": "base",
    "load_imagereward": "imagereward", "ImageRewardScorer": "imagereward",
    "load_hpsv2": "clip", "load_clip_score": "clip", "load_pickscore": "clip", "load_aesthetic": "clip",
    "load_clip_features": "clip", "ClipSimilarityReward": "clip", "AestheticReward": "clip",
    "ClipImageFeatures": "clip", "openclip_to_hf": "clip", "hpsv2_clip_config": "clip",
    "load_dinov2": "dinov2", "Dinov2Features": "dinov2", "pca_first_component": "dinov2",
    "load_world_reward": "world", "load_world_features": "world", "WorldReward": "world", "WorldFeatures": "world",
    "combine_rewards": "combine", "CombinedReward": "combine", "normalize_scores": "combine",
}

__all__ = ["LOADERS", "LoaderSpec", "load", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"ttsvar.scoring.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ttsvar.scoring' has no attribute {name!r}")
