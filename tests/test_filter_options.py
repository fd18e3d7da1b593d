"""The options next to the official defaults: paper-defined potentials over every scale, and fast
filters with a way to see whether they change the choice."""

from __future__ import annotations

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.pipelines import compare_fast_filters, run_strategy
from ttsvar.sampler import start_state
from ttsvar.schedule import BatchSchedule


@pytest.mark.parametrize("kind", ["diff", "max", "sum"])
def test_scoring_every_scale_gives_the_paper_potentials(tiny_model, tiny_condition, grid, reward, kind):
    """Paper Sec. 4.3: DIFF = r_k − r_{k−1}, MAX = max_{i≤k} r_i, SUM = Σ_{i≤k} r_i over every scale."""
    from ttsvar.search.filters import reward_resample, sample_scoring_each_scale

    state = start_state(tiny_model, tiny_condition, BatchSchedule((3,) * 7), grid, seed=2)
    state = sample_scoring_each_scale(state, reward, until=5, fast_filters=True)
    assert state.reward_scales == (0, 1, 2, 3, 4) and state.rewards.shape == (3, 5)
    history = state.rewards.clone()  # the resample re-scores scale 4 (same images, same reward)
    resampled = reward_resample(state, reward, potential=kind, keep=3, fast_filters=True)
    expected = {"diff": history[:, 4] - history[:, 3], "max": history.max(1).values, "sum": history.sum(1)}[kind]
    torch.testing.assert_close(torch.tensor(resampled.events[-1]["potentials"]), expected)


def test_score_from_runs_the_whole_strategy_over_every_scale(tiny_model, tiny_condition, grid, reward, extractor):
    schedule = BatchSchedule((4, 4, 3, 3, 2, 1, 1))  # cluster after 2 and 4, resample after 5
    result = run_strategy(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=grid, schedule=schedule,
                          reward=reward, extractor=extractor, potential="max", fast_filters=True, score_from=1)
    assert result.state.reward_scales == (1, 2, 3, 4, 5, 6)
    assert [(e["kind"], e["after_scale"]) for e in result.record["events"]] == [
        ("cluster", 2), ("cluster", 4), ("resample", 5), ("select", 6)]
    default = run_strategy(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=grid, schedule=schedule,
                           reward=reward, extractor=extractor, potential="max", fast_filters=True)
    assert default.state.reward_scales == (5, 6)  # the official history: the scales a filter scored
    with pytest.raises(TTSVarError, match="score_from"):
        run_strategy(tiny_model, tiny_condition, strategy="raw", n=1, grid=grid, score_from=0)
    with pytest.raises(TTSVarError, match="0..6"):
        run_strategy(tiny_model, tiny_condition, strategy="raw", n=1, grid=grid, reward=reward, score_from=7)


def test_compare_fast_filters_reports_the_choices_of_both_runs(tiny_model, tiny_condition, grid, reward, extractor):
    schedule = BatchSchedule((2, 2, 1, 1, 1, 1, 1))  # one cluster filter, then the final selection
    out = compare_fast_filters(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=grid, schedule=schedule,
                               reward=reward, extractor=extractor, seed=4)
    assert [r["kind"] for r in out["filters"]] == ["cluster", "select"]
    assert out["filters"][0]["first"] == out["exact"].state.events[0]["lineage_after"]
    assert out["filters"][0]["second"] == out["fast"].state.events[0]["lineage_after"]
    assert out["same_choice"] == (list(out["exact"].state.lineage) == list(out["fast"].state.lineage))
    assert out["first_difference"] in (None, 2, 6)
    with pytest.raises(TTSVarError, match="fast_filters"):
        compare_fast_filters(tiny_model, tiny_condition, strategy="raw", n=1, grid=grid, fast_filters=True)
