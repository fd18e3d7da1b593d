"""The TTS-VAR engine: states, sampling, KV hand-over, filters and strategies on a tiny model."""

from __future__ import annotations

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.pipelines import run_strategy
from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import BatchSchedule
from ttsvar.search.filters import cluster_filter, reward_resample, select_best


def _start(model, condition, grid, sizes, seed=3, **kw):
    return start_state(model, condition, BatchSchedule(tuple(sizes)), grid, seed=seed, **kw)


def _bits_of(state, candidate):
    return [b[candidate] for b in state.bits]


def test_constant_schedule_is_best_of_n_and_n1_is_raw(tiny_model, tiny_condition, grid, reward):
    bon = run_strategy(tiny_model, tiny_condition, strategy="best-of-n", n=3, grid=grid, reward=reward, seed=5, keep=3)
    engine = sample_scales(_start(tiny_model, tiny_condition, grid, [3] * 7, seed=5))
    finished = {str(l): _bits_of(engine, i) for i, l in enumerate(engine.lineage)}
    for i, lineage in enumerate(bon.state.lineage):
        assert all(torch.equal(a, b) for a, b in zip(_bits_of(bon.state, i), finished[str(lineage)]))
    raw = run_strategy(tiny_model, tiny_condition, strategy="raw", n=1, grid=grid, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(_bits_of(raw.state, 0), finished["0"]))
    assert raw.images.shape == (1, 3, 256, 256)


@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_filtering_keeps_each_survivors_own_continuation(tiny_model, tiny_condition, grid, cfg):
    full = sample_scales(_start(tiny_model, tiny_condition, grid, [4] * 7, cfg=cfg))
    early = sample_scales(_start(tiny_model, tiny_condition, grid, [4, 4, 2, 2, 2, 2, 2], cfg=cfg), until=3)
    kept = early.select([3, 1], {"kind": "test"})
    assert kept.cache_slot.holds_cache and kept.cache_slot._cache.rows == (4 if cfg != 1 else 2)
    done = sample_scales(kept)
    for row, candidate in enumerate([3, 1]):
        assert all(torch.equal(a, b) for a, b in zip(_bits_of(done, row), _bits_of(full, candidate)))
    assert torch.allclose(done.code_map, full.code_map[[3, 1]], atol=1e-6)


def test_split_calls_rebuilt_cache_and_reruns_are_identical(tiny_model, tiny_condition, grid):
    start = _start(tiny_model, tiny_condition, grid, [2] * 7)
    whole = sample_scales(start)
    first = sample_scales(start, until=2)
    bits_before = [b.clone() for b in first.bits]
    second = sample_scales(first, until=5)  # takes over first's cache
    assert not first.cache_slot.holds_cache
    rerun = sample_scales(first, until=5)  # first's cache is gone: rebuilt by teacher forcing
    third = sample_scales(second)
    for state in (second, rerun):
        assert all(torch.equal(a, b) for a, b in zip(state.bits, whole.bits[:5]))
    assert all(torch.equal(a, b) for a, b in zip(third.bits, whole.bits))
    assert all(torch.equal(a, b) for a, b in zip(first.bits, bits_before)) and first.next_scale == 2
    assert torch.allclose(third.code_map, whole.code_map, atol=1e-6)


def test_only_the_newest_state_of_a_chain_holds_a_cache(tiny_model, tiny_condition, grid, extractor):
    states = [sample_scales(_start(tiny_model, tiny_condition, grid, [4, 4, 2, 2, 2, 2, 2]), until=3)]
    states.append(cluster_filter(states[-1], extractor, preview_size=True))
    states.append(sample_scales(states[-1], until=5))
    states.append(sample_scales(states[-1]))
    assert [s.cache_slot.holds_cache for s in states] == [False, False, False, True]


def test_cluster_filter_keeps_one_candidate_per_planted_cluster(tiny_model, tiny_condition, grid):
    class Planted:
        name, input_size = "planted", 16

        def features(self, images):
            centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
            members = [0, 0, 1, 1, 2, 2]  # candidates 0,1 near centre 0, 2,3 near centre 1, …
            offsets = torch.tensor([[0.1, 0.0], [0.3, 0.0]] * 3)
            return centres[members] + offsets

    state = sample_scales(_start(tiny_model, tiny_condition, grid, [6, 6, 3, 3, 3, 3, 3]), until=3)
    filtered = cluster_filter(state, Planted(), preview_size=True)
    assert filtered.events[-1]["kept"] == [0, 2, 4] and filtered.num_candidates == 3


def test_resampling_follows_the_reward(tiny_model, tiny_condition, grid):
    class Favourite:
        name, input_size = "favourite", 16

        def __init__(self, best):
            self.best = best

        def score(self, images, prompts):
            return torch.tensor([1.0 if i == self.best else 0.0 for i in range(images.shape[0])])

    state = sample_scales(_start(tiny_model, tiny_condition, grid, [4, 4, 4, 4, 4, 4, 2]), until=6)
    greedy = reward_resample(state, Favourite(2), lam=1e4, keep=4, preview_size=True)
    assert greedy.events[-1]["kept"] == [2, 2, 2, 2]
    assert len(set(greedy.lineage)) == 4  # copies get their own randomness
    uniform = reward_resample(state, Favourite(2), lam=0.0, keep=4, preview_size=True)
    assert uniform.rewards.shape == (4, 1) and uniform.events[-1]["potentials"] == [0.0, 0.0, 1.0, 0.0]
    again = reward_resample(state, Favourite(2), lam=0.0, keep=4, preview_size=True)
    assert again.events[-1]["kept"] == uniform.events[-1]["kept"]  # reproducible for a seed
    copies = sample_scales(greedy, until=7)
    assert len({tuple(b.flatten().tolist()) for b in copies.bits[-1]}) == 4


@pytest.mark.parametrize("kind", ["value", "diff", "max", "sum"])
def test_every_potential_runs_on_the_reward_history(tiny_model, tiny_condition, grid, reward, kind):
    state = sample_scales(_start(tiny_model, tiny_condition, grid, [4, 4, 4, 4, 4, 4, 2]), until=5)
    state = reward_resample(state, reward, potential=kind, keep=4, preview_size=True)
    state = reward_resample(sample_scales(state, until=6), reward, potential=kind, preview_size=True)
    assert state.rewards.shape == (4, 2) and state.reward_scales == (4, 5)


def test_strategies_run_end_to_end_with_a_record(tiny_model, tiny_condition, reward, extractor):
    from ttsvar.infinity.grids import resolve_grid

    grid = resolve_grid(pn="0.25M")
    result = run_strategy(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=grid, reward=reward,
                          extractor=extractor, fast_filters=True)
    kinds = [(e["kind"], e["after_scale"]) for e in result.record["events"]]
    assert kinds == [("cluster", 2), ("cluster", 5), ("resample", 6), ("resample", 8), ("select", 9)]
    assert result.images.shape == (1, 3, 512, 512) and 0 <= result.images.min() <= result.images.max() <= 1
    small = run_strategy(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=resolve_grid(pn="0.06M"),
                         reward=reward, extractor=extractor, fast_filters=True)
    kinds = [(e["kind"], e["after_scale"]) for e in small.record["events"]]
    assert kinds == [("cluster", 2), ("cluster", 3), ("resample", 4), ("resample", 5), ("select", 6)]
    importance = run_strategy(tiny_model, tiny_condition, strategy="importance-sampling", n=2,
                              grid=resolve_grid(pn="0.06M"), reward=reward, fast_filters=True)
    assert [e["kind"] for e in importance.record["events"]] == ["resample"] * 6 + ["select"]


def test_missing_filter_and_bad_inputs_are_clear_errors(tiny_model, tiny_condition, grid, reward):
    state = sample_scales(_start(tiny_model, tiny_condition, grid, [4, 4, 2, 2, 2, 2, 2]), until=3)
    with pytest.raises(TTSVarError, match="keeps 2 candidates after scale 2"):
        sample_scales(state)
    with pytest.raises(TTSVarError, match="keep must be within"):
        reward_resample(state, reward, keep=5)
    with pytest.raises(TTSVarError, match="'until' scale"):
        sample_scales(state, until=2)
    with pytest.raises(TTSVarError, match="batch schedule"):
        _start(tiny_model, tiny_condition, grid, [4] * 8)
    with pytest.raises(TTSVarError, match="batch schedule"):
        BatchSchedule((2, 4, 4))

    class WrongShape:
        name, input_size = "wrong", 16

        def score(self, images, prompts):
            return torch.zeros(images.shape[0], 2)

    class NotANumber(WrongShape):
        def score(self, images, prompts):
            return torch.full((images.shape[0],), float("nan"))

    # the checks read the scores, not the images: decode at the scorer's 16² instead of 4 × 256²
    with pytest.raises(TTSVarError, match="one score per image"):
        reward_resample(state, WrongShape(), preview_size=True)
    with pytest.raises(TTSVarError, match="NaN"):
        select_best(state, NotANumber(), images=torch.zeros(4, 3, 16, 16))


def test_a_condition_from_another_model_is_refused(tiny_model, grid):
    from ttsvar.infinity.text import HashTextEncoder

    with pytest.raises(TTSVarError, match="expects 256"):
        start_state(tiny_model, HashTextEncoder(64).encode("a cat"), BatchSchedule((1,) * 7), grid)


def test_a_cache_left_on_another_device_is_rebuilt_not_mixed(tiny_model, tiny_condition, grid):
    """A host (ComfyUI) may move the model between nodes: a cache elsewhere is rebuilt from the bits."""
    start = _start(tiny_model, tiny_condition, grid, [2] * 7)
    whole = sample_scales(start)
    first = sample_scales(start, until=3)
    cache = first.cache_slot._cache
    cache.keys = [k.to("meta") for k in cache.keys]
    cache.values = [v.to("meta") for v in cache.values]
    rest = sample_scales(first)
    assert all(torch.equal(a, b) for a, b in zip(rest.bits, whole.bits))
    assert rest.cache_slot._cache.device.type == "cpu"
    moved = first.text.to("meta")
    assert moved.pooled.is_meta and moved.block_kv[0][0][0].is_meta and first.text.to("cpu") is first.text
