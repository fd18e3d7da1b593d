"""What a graph is checked for when it starts (issue 10, items 1, 4 and 5): one size rule for Start
State and the Sampler, the nodes downstream checked against the schedule before anything is sampled,
and the size produced shown on the node."""

import json

import pytest

from ttsvar.errors import TTSVarError

from runner import Runner
from workflow_defs import OUT, ci_variant

TINY = "(tiny random demo)"


def _api(name="ttsvar_tts_var", side=256):
    return ci_variant(json.loads((OUT / "api" / f"{name}.json").read_text()), side)


def _find(api, class_type):
    return [nid for nid, n in api.items() if n["class_type"] == class_type]


def _fails_before_sampling(mappings, api, *needles):
    runner = Runner(mappings)
    with pytest.raises(TTSVarError) as info:
        runner.run(api)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    sampling = set(_find(api, "TTSVAR_SampleScales") + _find(api, "TTSVAR_Sampler"))
    assert not sampling & set(runner.executed[:-1]), runner.executed  # failed at the start, nothing sampled
    return msg


def test_select_best_k_beyond_the_final_batch_fails_at_start_state(mappings):
    api = _api()
    api[_find(api, "TTSVAR_SelectBest")[0]]["inputs"]["k"] = 2
    _fails_before_sampling(mappings, api, "[TTS-VAR Start State]", "checked before sampling",
                           f"TTS-VAR Select Best (node {_find(api, 'TTSVAR_SelectBest')[0]})", "input 'k'", "is 2",
                           "only 1 candidate reach")


def test_until_scale_beyond_the_scale_count_fails_at_start_state(mappings):
    api = _api()
    api[_find(api, "TTSVAR_SampleScales")[0]]["inputs"]["until_scale"] = 11
    _fails_before_sampling(mappings, api, "input 'until_scale'", "is 11", "no scale of 7 is sampled yet", "1..7")


def test_a_schedule_with_fewer_filter_points_than_the_graph_fails_at_start_state(mappings):
    """The schedule the old error message suggested for 7 scales has three drops: the four-filter
    graph then ran out of scales at its last Sample Scales, after all the sampling."""
    api = _api()
    sched = _find(api, "TTSVAR_BatchSchedule")[0]
    api[sched]["inputs"].update(preset="custom", custom="8,6,6,2,2,1,1")
    last_sample = _find(api, "TTSVAR_SampleScales")[-1]
    _fails_before_sampling(mappings, api, f"(node {last_sample})", "all 7 scales are already sampled")


def test_sampler_checks_its_downstream_nodes_too(mappings):
    api = _api("ttsvar_importance_sampling")
    sampler = _find(api, "TTSVAR_Sampler")[0]
    api["90"] = {"class_type": "TTSVAR_SelectBest", "inputs": {"state": [sampler, 1], "reward_model": api[sampler]["inputs"]["reward_model"], "k": 3}}
    api["91"] = {"class_type": "TTSVAR_Decode", "inputs": {"state": ["90", 0]}}
    api["92"] = {"class_type": "PreviewImage", "inputs": {"images": ["91", 0]}}
    _fails_before_sampling(mappings, api, "[TTS-VAR Sampler]", "(node 90)", "input 'k'")


def test_nodes_that_feed_no_output_are_not_checked(mappings, monkeypatch):
    """ComfyUI runs only what an output node needs: a dangling Select Best must not stop the run."""
    api = _api()
    api["90"] = {"class_type": "TTSVAR_SelectBest", "inputs": {"state": [_find(api, "TTSVAR_StartState")[0], 0],
                                                                "reward_model": [_find(api, "TTSVAR_RewardModelLoader")[0], 0], "k": 99}}

    class Started(Exception):
        pass

    def stop(*a, **k):
        raise Started()

    monkeypatch.setattr("ttsvar.sampler.start_state", stop)
    with pytest.raises(Started):
        Runner(mappings).run(api)


@pytest.fixture(scope="module")
def parts(mappings):
    M = mappings
    model, = M["TTSVAR_InfinityLoader"]().load(TINY, TINY, "auto")
    te, = M["TTSVAR_TextEncoderLoader"]().load(TINY, "auto", model=model)
    cond, = M["TTSVAR_EncodePrompt"]().encode(te, "a fox", "")
    return model, cond


def _start(mappings, parts, pn, width, height, aspect="from width/height", start_pn="auto (from schedule)"):
    sched, = mappings["TTSVAR_BatchSchedule"]().build("tts-var", 1, pn, "")
    return mappings["TTSVAR_StartState"]().start(*parts, sched, width, height, aspect, start_pn, 3.0, 0.5, 0.97, 0)


def test_start_state_never_changes_the_requested_size_silently(mappings, parts):
    """Batch Schedule pn 1M with Start State 256×256 used to render 1024×1024 without a word."""
    with pytest.raises(TTSVarError) as info:
        _start(mappings, parts, "1M", 256, 256)
    msg = str(info.value)
    for needle in ("[TTS-VAR Start State] input 'schedule'", "Batch Schedule pn 1M", "256×256", "pn 0.06M",
                   "Set the Batch Schedule's pn to 0.06M", "or width and height to 1024×1024"):
        assert needle in msg, msg
    with pytest.raises(TTSVarError, match=r"input 'pn'.*is 1M.*width × height = 256×256"):
        _start(mappings, parts, "0.06M", 256, 256, start_pn="1M")


@pytest.mark.parametrize("pn,side", [("0.06M", 256), ("0.25M", 512), ("0.60M", 768), ("1M", 1024)])
def test_start_state_and_sampler_share_one_size_rule(mappings, parts, pn, side):
    from nodes_under_test import pipeline

    out = _start(mappings, parts, pn, side, side)
    state, = out["result"]
    assert state.grid.pixel_size == (side, side) == pipeline.requested_grid(side, side).pixel_size
    report, = out["ui"]["ttsvar_size"]
    assert report["produced"] == [side, side] and report["pn"] == pn and report["warning"] is None


def test_snapping_is_shown_on_the_node(mappings, parts):
    out = _start(mappings, parts, "0.25M", 64, 4096)
    report, = out["ui"]["ttsvar_size"]
    assert report["requested"] == [64, 4096] and report["produced"] == [288, 864] and report["aspect"] == 3.0
    assert "snapped to the nearest template 3.000, 288×864" in report["warning"]
    assert report["note"] == "requested 64×4096, produced 288×864"
    # a chosen aspect template is the user's decision: a note, no warning
    out = _start(mappings, parts, "0.25M", 512, 512, aspect="2.000 (portrait)")
    report, = out["ui"]["ttsvar_size"]
    assert report["warning"] is None and "aspect template chosen" in report["note"]


def test_sampled_scales_wording(mappings, parts):
    state, = _start(mappings, parts, "0.06M", 256, 256)["result"]
    with pytest.raises(TTSVarError) as info:
        mappings["TTSVAR_SampleScales"]().sample(state, 9)
    msg = str(info.value)
    assert "0..-1" not in msg and "no scale of 7 is sampled yet" in msg and "choose a value in 1..7" in msg


def test_shape_checks_without_a_state():
    """The checks Start State runs on the graph are the nodes' own, on a schedule and a position."""
    from nodes_under_test.common import InputError
    from nodes_under_test.preflight import Shape, filter_keep, sample_until, select_k

    start = Shape((8, 8, 6, 4, 2, 1, 1), next_scale=0, count=8)
    assert sample_until(start, 0) == 3  # through scale 2, the first drop
    with pytest.raises(InputError, match="samples past scale 2") as info:
        sample_until(start, -1)
    assert info.value.input_name == "until_scale"
    after = Shape(start.sizes, next_scale=3, count=8)
    assert filter_keep(after, 0) == 6
    with pytest.raises(InputError) as info:
        sample_until(after, 0)  # the filter after scale 2 is missing
    assert info.value.input_name == "state" and "keeps 6 after scale 2" in info.value.message
    with pytest.raises(InputError, match="only 2 candidates"):
        select_k(Shape((2, 2), 2, 2), 3)


def test_the_size_rule_is_in_the_models_own_pixels(mappings):
    """A model with 4 pixels a token (the world's geometry) makes 64×64 at 0.06M: Start State and
    the Sampler ask for, report and check that size, not the 256×256 of a 16-pixel Infinity."""
    from ttsvar.infinity.tiny import random_model, tiny_text_encoder

    model = random_model("tiny-64", seed=0)
    cond, = mappings["TTSVAR_EncodePrompt"]().encode(tiny_text_encoder(model), "a fox", "")
    parts64 = (model, cond)
    out = _start(mappings, parts64, "0.06M", 64, 64)
    report, = out["ui"]["ttsvar_size"]
    assert report["produced"] == [64, 64] and report["note"] is None and report["warning"] is None
    assert out["result"][0].grid.pn == "0.06M"
    with pytest.raises(TTSVarError, match=r"or width and height to 128×128"):
        _start(mappings, parts64, "0.25M", 64, 64)
    images, _ = mappings["TTSVAR_Sampler"]().run(model, cond, "raw", 1, 64, 64, 3.0, 0.5, 0.97, 0, "value", 10.0)["result"]
    assert tuple(images.shape) == (1, 64, 64, 3)
