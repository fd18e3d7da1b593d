"""The built-in demo entries of the loader combos: nothing to download.

Every model loader lists :data:`ENTRIES` after the files it finds, so every workflow can be tried
(and tested) without weights; the verifier loaders list :data:`VERIFIER_ENTRIES` (the world's own
verifiers are their ``(built-in world verifier)`` entry). This module is the one place that knows
them: to add a demo model, add its name here and a branch to each builder below.

* :data:`WORLD` — the synthetic world's trained model (``ttsvar/world/weights``): 64×64 scenes of
  shapes that match their prompts, the default way to see what the search does.
* :data:`TINY` — random weights built in memory: instant, any size, images are noise.
"""

from __future__ import annotations

#: A tiny Infinity model, text encoder and scorers with random weights: runs anywhere, images are noise.
TINY = "(tiny random demo)"
#: The world model that ships with the pack: a small Infinity and its text encoder, trained on simple scenes.
WORLD = "(world model demo)"

ENTRIES = (WORLD, TINY)
VERIFIER_ENTRIES = (TINY,)


def is_demo(name: str) -> bool:
    return name in ENTRIES


def is_demo_verifier(name: str) -> bool:
    return name in VERIFIER_ENTRIES


def _check(name: str, entries: tuple[str, ...] = ENTRIES) -> None:
    if name not in entries:
        raise ValueError(f"{name!r} is not a demo entry ({', '.join(entries)}).")


def infinity_model(name: str):
    """The Infinity model (transformer + VAE) of a demo entry."""
    from ttsvar.infinity.tiny import tiny_random_model

    _check(name)
    if name == WORLD:
        from ttsvar.world.model import load_world_infinity

        return load_world_infinity(device="cpu")
    return tiny_random_model(seed=0)


def text_encoder(name: str, model=None):
    """The text encoder of a demo entry: the world's own, or a tiny random one sized for `model`."""
    from ttsvar.infinity.tiny import tiny_text_encoder

    _check(name)
    if name == WORLD:
        from ttsvar.world.model import load_world_text_encoder

        return load_world_text_encoder(device="cpu")
    if model is None:
        raise ValueError(f"{name!r} builds an encoder sized for a model: give the model.")
    return tiny_text_encoder(model, seed=0)


def needs_model(name: str) -> bool:
    """Whether the text encoder of demo entry `name` is built for a connected model."""
    return name == TINY


def reward_model(name: str, family: str):
    from .scoring_adapter import TinyReward

    _check(name, VERIFIER_ENTRIES)
    return TinyReward(family)


def feature_extractor(name: str, family: str):
    from .scoring_adapter import TinyFeatures

    _check(name, VERIFIER_ENTRIES)
    return TinyFeatures(family)
