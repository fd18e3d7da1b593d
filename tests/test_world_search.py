"""The search does what it is for on the world model that ships with the package (seconds, CPU).

Two mechanisms carry TTS-VAR, and each has an assertion here that fails when it is broken (each
was checked by breaking it: resampling drawn uniformly or against the reward; clustering keeping
the first candidates):

* **resampling** moves the batch toward what the reward likes: the candidates a resample step keeps
  score higher, on the same reward, than the batch it drew from;
* **clustering** keeps candidates that cover the batch: at the first cluster point the kept ones
  lie closer to every candidate than random subsets of the same size almost always do.

Whether the reward's preferences make images that satisfy their prompts more often is measured on
≥ 200 prompts by ``benchmarks/bench_world_search.py`` (README, "The synthetic world"): the world
reward's edge over a random pick is a few points, which takes minutes, not seconds, to resolve.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttsvar.infinity.grids import resolve_grid
from ttsvar.pipelines import run_strategy
from ttsvar.world.model import PN

PROMPTS = 8
SEED = 7


@pytest.fixture(scope="module")
def world():
    from ttsvar.world.model import load_world_model

    return load_world_model()


@pytest.fixture(scope="module")
def verifiers():
    from ttsvar.scoring.world import load_world_features, load_world_reward

    return load_world_reward(), load_world_features(mode="pca")


@pytest.fixture(scope="module")
def prompts():
    from ttsvar.world.prompts import prompt_set

    return prompt_set(PROMPTS, seed=SEED)


@pytest.fixture(scope="module")
def records(world, verifiers, prompts):
    """The records of TTS-VAR N=1 (the paper's schedule and plan) on every prompt."""
    reward, features = verifiers
    grid = resolve_grid(aspect=1.0, pn=PN)
    return [run_strategy(world.model, world.text_encoder.encode(m["prompt"]), strategy="tts-var", n=1, grid=grid,
                         reward=reward, extractor=features, seed=i).record for i, m in enumerate(prompts)]


def test_resampling_keeps_what_the_reward_prefers(records):
    gains = []
    for record in records:
        for event in (e for e in record["events"] if e["kind"] == "resample"):
            rewards = np.array(event["rewards"])
            gains.append(rewards[event["kept"]].mean() - rewards.mean())
    assert len(gains) == 2 * PROMPTS
    assert np.mean(gains) > 0.12 and np.mean(np.array(gains) > 0) >= 0.75, np.round(gains, 3)


def test_the_cluster_filter_keeps_candidates_that_cover_the_batch(world, verifiers, prompts):
    """Coverage cost = the sum over candidates of the distance to the nearest kept one, in the
    features the filter clusters; the kept set's rank among 200 random subsets of its size."""
    from ttsvar.decode import filter_previews
    from ttsvar.pipelines import plan
    from ttsvar.sampler import sample_scales, start_state
    from ttsvar.search.filters import cluster_filter

    _, features = verifiers
    grid = resolve_grid(aspect=1.0, pn=PN)
    schedule, filters = plan("tts-var", 1, grid.num_scales, None)
    first = min(s for s, kind in filters.items() if kind == "cluster")
    rng = np.random.default_rng(0)
    ranks = []
    for i, metadata in enumerate(prompts[:6]):
        state = start_state(world.model, world.text_encoder.encode(metadata["prompt"]), schedule, grid, seed=i)
        state = sample_scales(state, until=first + 1)
        x = features.features(filter_previews(state)).double()
        kept = cluster_filter(state, features).events[-1]["kept"]

        def cost(subset) -> float:
            return float(torch.cdist(x, x[list(subset)]).min(dim=1).values.sum())

        ranks.append(float(np.mean([cost(rng.choice(len(x), len(kept), replace=False)) < cost(kept)
                                    for _ in range(200)])))
    assert np.mean(ranks) <= 0.15, ranks
