"""Batch schedules: presets, parsing, validation, drop scales, filter plan and cost model."""

import json

import pytest

from ttsvar.errors import TTSVarError
from ttsvar.schedule import (
    PRESETS,
    BatchSchedule,
    CostEstimate,
    default_filters,
)

PAPER_13 = (8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1, 1)
PAPER_10 = (8, 8, 6, 6, 6, 4, 2, 2, 1, 1)
# Infinity-2B at 1024², 1:1: token grids of the 13 scales.
GRID_1024 = (1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64)
TOKENS_1024 = [g * g for g in GRID_1024]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_tts_var_presets_match_paper(n):
    assert BatchSchedule.tts_var(n, 13).sizes == tuple(s * n for s in PAPER_13)
    assert BatchSchedule.tts_var(n, 10).sizes == tuple(s * n for s in PAPER_10)
    assert BatchSchedule.preset("tts-var", n, 13) == BatchSchedule.tts_var(n, 13)


@pytest.mark.parametrize("num_scales", [7, 10, 12, 13])
def test_tts_var_defined_for_every_infinity_scale_count(num_scales):
    """The rule written in PAPER_SCHEDULES' comment: the paper's four drops (8→6→4→2→1) at the
    13-scale positions 2, 5, 6, 9 where they fit, else as late as possible before the last scale.
    It must reproduce both paper schedules and give the derived 12- and 7-scale ones."""
    drops = [min(paper, num_scales - 5 + i) for i, paper in enumerate((2, 5, 6, 9))]
    counts = (8, 6, 4, 2, 1)
    expected = tuple(counts[sum(k >= d for d in drops)] for k in range(num_scales))
    s = BatchSchedule.tts_var(3, num_scales)
    assert s.sizes == tuple(3 * c for c in expected)
    assert s.drop_scales() == drops
    filters = default_filters(s, num_scales)
    assert list(filters.values()) == ["cluster", "cluster", "resample", "resample"]
    # at least one scale is sampled after the last filter (the four-filter example graph ends with
    # "Sample Scales (-1)", which needs a scale left)
    assert max(filters) < num_scales - 1


def test_tts_var_derived_schedules():
    assert BatchSchedule.tts_var(1, 12).sizes == (8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1)
    assert BatchSchedule.tts_var(1, 7).sizes == (8, 8, 6, 4, 2, 1, 1)
    assert default_filters(BatchSchedule.tts_var(1, 7), 7) == {2: "cluster", 3: "cluster", 4: "resample", 5: "resample"}


def test_tts_var_unsupported_scale_count_lists_supported_and_suggests_custom():
    with pytest.raises(TTSVarError) as err:
        BatchSchedule.tts_var(2, 8)
    msg = str(err.value)
    assert "10" in msg and "13" in msg and "custom" in msg and "8" in msg
    # the suggested list is itself a valid custom schedule of the right length
    suggestion = msg.split("'")[-2]
    assert BatchSchedule.parse(suggestion, 8).num_scales == 8


def test_length_error_suggests_the_tts_var_schedule():
    """A custom list of the wrong length is answered with a list that the four-filter graph can run."""
    with pytest.raises(TTSVarError) as err:
        BatchSchedule.parse("8,6,6,2,2,1", 7)
    assert "'8,8,6,4,2,1,1'" in str(err.value)


def test_other_presets():
    assert BatchSchedule.preset("best-of-n", 4, 13).sizes == (4,) * 13
    assert BatchSchedule.preset("importance-sampling", 3, 10).sizes == (3,) * 10
    assert BatchSchedule.preset("raw", 8, 13).sizes == (1,) * 13
    assert BatchSchedule.preset("custom", 2, 4, custom="3,2,2,1").sizes == (6, 4, 4, 2)
    assert set(PRESETS) == {"tts-var", "best-of-n", "importance-sampling", "raw", "custom"}
    with pytest.raises(TTSVarError, match="best-of-n"):  # the message lists the choices
        BatchSchedule.preset("beam", 2, 13)


@pytest.mark.parametrize(
    "text",
    [
        "8,8,6,6,6,4,2,2,2,1,1,1,1",
        "8 8 6 6 6 4 2 2 2 1 1 1 1",
        " 8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1, 1 ",
        "[8N,8N,6N,6N,6N,4N,2N,2N,2N,1N,1N,1N,1N]",
        "8;8;6;6;6;4;2;2;2;1;1;1;1\n",
    ],
)
def test_parse_formats(text):
    assert BatchSchedule.parse(text, 13).sizes == PAPER_13
    assert BatchSchedule.parse(text, 13, n=3).sizes == tuple(3 * s for s in PAPER_13)


def test_text_and_dict_round_trip():
    s = BatchSchedule.tts_var(2, 13)
    assert BatchSchedule.parse(s.to_text(), 13) == s
    assert BatchSchedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert str(s) == "16,16,12,12,12,8,4,4,4,2,2,2,2"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1,1,1,1,1", 13), id="too-long"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,6", 13), id="too-short"),
        pytest.param(lambda: BatchSchedule((4, 4, 4)).validate(13), id="too-short-validate"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,7,6,4,2,2,2,1,1,1,1", 13), id="increasing"),
        pytest.param(lambda: BatchSchedule((2, 3)), id="increasing-ctor"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1,1,1,0", 13), id="zero"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1,1,1,-1", 13), id="negative"),
        pytest.param(lambda: BatchSchedule((2, 0)), id="zero-ctor"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1.5,1,1,1", 13), id="non-integer"),
        pytest.param(lambda: BatchSchedule.parse("8,8,6,six,6,4,2,2,2,1,1,1,1", 13), id="word"),
        pytest.param(lambda: BatchSchedule((2.0, 1)), id="float-ctor"),
        pytest.param(lambda: BatchSchedule((True, 1)), id="bool-ctor"),
        pytest.param(lambda: BatchSchedule(()), id="empty"),
        pytest.param(lambda: BatchSchedule.parse("  ", 13), id="empty-text"),
        pytest.param(lambda: BatchSchedule.from_dict({"sizes": "8,8"}), id="dict-str"),
    ],
)
def test_validation_errors_name_the_input(make):
    with pytest.raises(TTSVarError) as err:
        make()
    assert "batch schedule" in str(err.value)


def test_validation_messages_name_position_and_value():
    with pytest.raises(TTSVarError, match=r"entry 3 is 7.*entry 2 \(6\)"):
        BatchSchedule.parse("8,8,6,7,6,4,2,2,2,1,1,1,1", 13)
    with pytest.raises(TTSVarError, match=r"entry 12 is 0"):
        BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1,1,1,0", 13)
    with pytest.raises(TTSVarError, match=r"entry 9 \('1.5'\)"):
        BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1.5,1,1,1", 13)
    with pytest.raises(TTSVarError, match=r"14 entries.*13 scales"):
        BatchSchedule.parse("8,8,6,6,6,4,2,2,2,1,1,1,1,1", 13)


def test_bad_n_and_scale_count():
    for bad_n in (0, -2, 1.5, "2"):
        with pytest.raises(TTSVarError, match="N"):
            BatchSchedule.tts_var(bad_n, 13)
    with pytest.raises(TTSVarError, match="number of scales"):
        BatchSchedule.best_of_n(2, 0)


def test_drop_scales_generated_batch_and_default_filters():
    s13 = BatchSchedule.tts_var(1, 13)
    assert s13.drop_scales() == [2, 5, 6, 9]
    assert [s13.generated_batch(k) for k in range(13)] == [8, 8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1]
    assert default_filters(s13, 13) == {2: "cluster", 5: "cluster", 6: "resample", 9: "resample"}
    s10 = BatchSchedule.tts_var(2, 10)
    assert s10.drop_scales() == [2, 5, 6, 8]
    assert default_filters(s10, 10) == {2: "cluster", 5: "cluster", 6: "resample", 8: "resample"}
    assert BatchSchedule.best_of_n(4, 13).drop_scales() == []
    assert default_filters(BatchSchedule.best_of_n(4, 13), 13) == {}
    with pytest.raises(TTSVarError, match="scale index"):
        s13.generated_batch(13)
    with pytest.raises(TTSVarError, match="batch schedule"):
        default_filters(s13, 10)


@pytest.mark.parametrize("n", [1, 2, 8])
def test_cost_constant_schedules_equal_best_of_n(n):
    for name in ("best-of-n", "importance-sampling"):
        cost = BatchSchedule.preset(name, n, 13).cost(TOKENS_1024)
        assert cost.relative_to_best_of_n() == pytest.approx(1.0)
        assert cost.kv_relative_to_best_of_n() == pytest.approx(1.0)
        assert cost.total_compute == pytest.approx(n)
    raw = BatchSchedule.preset("raw", n, 13).cost(TOKENS_1024)
    assert raw.total_compute == pytest.approx(1.0) and raw.peak_kv_memory == pytest.approx(1.0)


def test_cost_tts_var_13_scales_2b():
    for n in (1, 2, 4):
        cost = BatchSchedule.tts_var(n, 13).cost(TOKENS_1024, width=2048)
        ratio = cost.relative_to_best_of_n()
        print(f"\ntts-var 13-scale N={n}: compute vs Best-of-N = {ratio:.4f}, "
              f"peak KV vs Best-of-N = {cost.kv_relative_to_best_of_n():.4f}, "
              f"≈{cost.tflops(depth=32):.1f} TFLOP, peak KV ≈{cost.peak_kv_gib(depth=32):.2f} GiB (bf16, CFG)")
        assert 1.2 < ratio < 1.5
        assert ratio == pytest.approx(BatchSchedule.tts_var(1, 13).cost(TOKENS_1024).relative_to_best_of_n())
        assert cost.kv_relative_to_best_of_n() == pytest.approx(1.0)  # the last scale holds the peak
    cost = BatchSchedule.tts_var(1, 13).cost(TOKENS_1024)
    assert len(cost.compute) == len(cost.kv_memory) == 13
    assert cost.compute[-1] / cost.total_compute > 0.3  # the last scale dominates
    assert cost.kv_memory[0] == pytest.approx(8 / 10521)
    # one 2B candidate's KV cache at 1024² with CFG in bf16 is about 5.5 GB (design §3)
    assert BatchSchedule.best_of_n(1, 13).cost(TOKENS_1024).peak_kv_gib(32) * 2**30 / 1e9 == pytest.approx(5.5, abs=0.1)
    data = json.loads(json.dumps(cost.to_dict()))
    assert data["compute_vs_best_of_n"] == pytest.approx(cost.relative_to_best_of_n())
    assert CostEstimate.from_dict(data) == cost


def test_cost_tts_var_10_scales_and_width_effect():
    tokens_512 = [g * g for g in (1, 2, 4, 6, 8, 12, 16, 20, 24, 32)]
    r8b = BatchSchedule.tts_var(1, 10).cost(tokens_512, width=4096).relative_to_best_of_n()
    print(f"\ntts-var 10-scale (8B, 512²): compute vs Best-of-N = {r8b:.4f}")
    # the 10-scale schedule keeps 2N candidates until its second-to-last scale, so it costs
    # about 2.2x Best-of-N (the last scale is only ~40% of a run at 512²)
    assert 1.8 < r8b < 2.6
    # a narrower model weighs attention (which favours late scales) more
    narrow = BatchSchedule.tts_var(1, 13).cost(TOKENS_1024, width=256).relative_to_best_of_n()
    wide = BatchSchedule.tts_var(1, 13).cost(TOKENS_1024, width=8192).relative_to_best_of_n()
    assert narrow < wide


def test_cost_errors():
    s = BatchSchedule.tts_var(1, 13)
    with pytest.raises(TTSVarError, match="token counts"):
        s.cost(TOKENS_1024[:-1])
    with pytest.raises(TTSVarError, match="token counts"):
        s.cost([0] + TOKENS_1024[1:])
    with pytest.raises(TTSVarError, match="width"):
        s.cost(TOKENS_1024, width=0)
