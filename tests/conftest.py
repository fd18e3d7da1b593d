"""Shared fixtures: the official reference outputs, a tiny random model, simple verifiers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("TTSVAR_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
REFERENCE = SHARED / "reference" / "infinity_tiny"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "config.json").is_file():
        pytest.fail(f"reference outputs not found in {REFERENCE}; set TTSVAR_SHARED to the shared folder")
    return REFERENCE


@pytest.fixture(scope="session")
def reference_cases(reference_dir) -> dict:
    return json.loads((reference_dir / "config.json").read_text())["cases"]


@pytest.fixture(scope="session")
def tiny_model():
    from ttsvar.infinity.tiny import tiny_random_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    return tiny_random_model(seed=0)


@pytest.fixture(scope="session")
def tiny_condition(tiny_model):
    from ttsvar.infinity.tiny import tiny_text_encoder

    return tiny_text_encoder(tiny_model).encode("a red fox in the snow")


@pytest.fixture(scope="session")
def grid():
    from ttsvar.infinity.grids import resolve_grid

    return resolve_grid(pn="0.06M")


class MeanReward:
    """Reward = mean brightness (+ a per-candidate bias when given): deterministic, instant."""

    name = "mean-brightness"
    input_size = 32

    def score(self, images, prompts):
        assert len(prompts) == images.shape[0]
        return images.float().mean(dim=(1, 2, 3))


@pytest.fixture
def reward():
    return MeanReward()


@pytest.fixture
def extractor():
    from ttsvar.scoring.classic import ThumbnailFeatures

    return ThumbnailFeatures(side=4)
