"""The built-in demo entries of the loader combos: models built in memory, nothing to download.

Every loader lists :data:`ENTRIES` after the files it finds, so every workflow can be tried (and
tested) without weights. This module is the one place that knows them: to add a demo model, add its
name to :data:`ENTRIES` and a branch to each builder below. Their images say nothing about quality.
"""

from __future__ import annotations

#: A tiny Infinity model, text encoder and scorers with random weights: runs anywhere, images are noise.
TINY = "(tiny random demo)"

ENTRIES = (TINY,)


def is_demo(name: str) -> bool:
    return name in ENTRIES


def _check(name: str) -> None:
    if name not in ENTRIES:
        raise ValueError(f"{name!r} is not a demo entry ({', '.join(ENTRIES)}).")


def infinity_model(name: str):
    """The Infinity model (transformer + VAE) of a demo entry."""
    from ttsvar.infinity.tiny import tiny_random_model

    _check(name)
    return tiny_random_model(seed=0)


def text_encoder(name: str, model):
    """The text encoder of a demo entry, sized for ``model`` (any Infinity model)."""
    from ttsvar.infinity.tiny import tiny_text_encoder

    _check(name)
    return tiny_text_encoder(model, seed=0)


def reward_model(name: str, family: str):
    from .scoring_adapter import TinyReward

    _check(name)
    return TinyReward(family)


def feature_extractor(name: str, family: str):
    from .scoring_adapter import TinyFeatures

    _check(name)
    return TinyFeatures(family)
