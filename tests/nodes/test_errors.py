"""Bad input gives one clear message naming the node and the input, never a deep traceback."""

import pytest

from ttsvar.errors import TTSVarError

TINY = "(tiny random demo)"


@pytest.fixture(scope="module")
def parts(mappings):
    M = mappings
    model, = M["TTSVAR_InfinityLoader"]().load(TINY, TINY, "auto")
    te, = M["TTSVAR_TextEncoderLoader"]().load(TINY, "auto", model=model)
    cond, = M["TTSVAR_EncodePrompt"]().encode(te, "a fox", "")
    sched, = M["TTSVAR_BatchSchedule"]().build("tts-var", 1, "0.25M", "")
    state, = M["TTSVAR_StartState"]().start(model, cond, sched, 512, 512, "from width/height", "auto (from schedule)", 3.0, 0.5, 0.97, 0)["result"]
    return dict(model=model, te=te, cond=cond, sched=sched, state=state)


def _raises(fn, *needles):
    with pytest.raises(TTSVarError) as info:
        fn()
    msg = str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    for n in needles:
        assert n in msg, msg
    return msg


def test_empty_prompt(mappings, parts):
    _raises(lambda: mappings["TTSVAR_EncodePrompt"]().encode(parts["te"], "   ", ""), "[TTS-VAR Encode Prompt]", "input 'prompt'")


def test_impossible_custom_schedule(mappings):
    B = mappings["TTSVAR_BatchSchedule"]()
    _raises(lambda: B.build("custom", 1, "1M", "8,8,9,1"), "input 'custom'")
    _raises(lambda: B.build("custom", 1, "1M", "8,8,6,x"), "input 'custom'")


def test_schedule_resolution_mismatch(mappings, parts):
    S = mappings["TTSVAR_StartState"]()
    _raises(lambda: S.start(parts["model"], parts["cond"], parts["sched"], 1024, 1024, "from width/height", "1M", 3.0, 0.5, 0.97, 0),
            "input 'schedule'")


def test_tiny_mixed_with_real_file(mappings):
    _raises(lambda: mappings["TTSVAR_InfinityLoader"]().load(TINY, "infinity_vae_d32reg.pth", "auto"), "input 'vae'")


def test_transformer_file_in_the_vae_slot_blames_the_vae(mappings, reference_files, tmp_path, monkeypatch):
    from nodes_under_test import comfy_bridge

    if comfy_bridge.comfy_available():
        pytest.skip("ComfyUI's folder_paths is importable here")
    (tmp_path / "infinity").mkdir()
    (tmp_path / "infinity" / "transformer.pth").symlink_to(reference_files.transformer_pth)
    monkeypatch.setenv("TTSVAR_MODELS_DIR", str(tmp_path))
    msg = _raises(lambda: mappings["TTSVAR_InfinityLoader"]().load("transformer.pth", "transformer.pth", "auto"),
                  "input 'vae'", "not an Infinity BSQ VAE")
    assert "models/vae" not in msg  # ComfyUI's vae folder is not listed by this loader


def test_missing_file(mappings):
    _raises(lambda: mappings["TTSVAR_InfinityLoader"]().load("nope.pth", "nope_vae.pth", "auto"), "input 'transformer'", "nope.pth")


def test_wrong_scale_index(mappings, parts):
    S = mappings["TTSVAR_SampleScales"]()
    _raises(lambda: S.sample(parts["state"], 11), "input 'until_scale'")
    st, = S.sample(parts["state"], 2)
    _raises(lambda: S.sample(st, 2), "input 'until_scale'", "3..10")


def test_batch_that_does_not_shrink(mappings, parts):
    S = mappings["TTSVAR_SampleScales"]()
    st, = S.sample(parts["state"], 3)  # the schedule drops after scale 2: a filter is missing
    _raises(lambda: S.sample(st, 5), "[TTS-VAR Sample Scales]", "filter")


def test_state_from_another_model(mappings, parts):
    from ttsvar.infinity.tiny import random_model, tiny_text_encoder

    other = random_model("small", seed=1)
    cond_other = tiny_text_encoder(other).encode("a fox")
    S = mappings["TTSVAR_StartState"]()
    _raises(lambda: S.start(parts["model"], cond_other, parts["sched"], 512, 512, "from width/height", "auto (from schedule)", 3.0, 0.5, 0.97, 0),
            "input 'condition'")


def test_filter_and_decode_misuse(mappings, parts):
    _raises(lambda: mappings["TTSVAR_Decode"]().decode(parts["state"]), "input 'state'", "Preview Candidates")
    from nodes_under_test.scoring_adapter import TinyFeatures, TinyReward

    _raises(lambda: mappings["TTSVAR_ClusterFilter"]().filter(parts["state"], TinyFeatures("x"), 0, 0), "input 'state'")
    _raises(lambda: mappings["TTSVAR_SelectBest"]().select(parts["state"], TinyReward("x"), 1), "input 'state'")
    _raises(lambda: mappings["TTSVAR_Sampler"]().run(parts["model"], parts["cond"], "tts-var", 1, 512, 512, 3.0, 0.5, 0.97, 0, "value", 10.0),
            "input 'reward_model'")


def test_oom_becomes_advice(mappings, parts, monkeypatch):
    import ttsvar.sampler as sampler

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(sampler, "sample_scales", boom)
    _raises(lambda: mappings["TTSVAR_SampleScales"]().sample(parts["state"], 0), "out of memory", "Lower N")


def test_sampler_oom_advice_names_its_own_inputs(mappings, parts, monkeypatch):
    """The Sampler has no schedule: its advice must not send the user to a preset it does not have."""
    import ttsvar.pipelines as pipelines
    from nodes_under_test.scoring_adapter import TinyReward

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(pipelines, "run_strategy", boom)
    msg = _raises(lambda: mappings["TTSVAR_Sampler"]().run(parts["model"], parts["cond"], "best-of-n", 4, 256, 256, 3.0, 0.5, 0.97, 0,
                                                            "value", 10.0, reward_model=TinyReward("x")),
                  "[TTS-VAR Sampler]", "out of memory", "Lower n", "strategy tts-var", "width/height")
    assert "preset" not in msg and "Batch Schedule" not in msg


def test_interrupt_passes_through(mappings, parts, monkeypatch):
    from nodes_under_test import comfy_bridge

    class Interrupted(Exception):
        pass

    def check():
        raise Interrupted()

    monkeypatch.setattr(comfy_bridge, "check_interrupt", check)
    monkeypatch.setattr(comfy_bridge, "is_interrupt", lambda e: isinstance(e, Interrupted))
    with pytest.raises(Interrupted):
        mappings["TTSVAR_SampleScales"]().sample(parts["state"], 0)


def test_inputs_not_mutated(mappings, parts):
    st = parts["state"]
    before = (st.next_scale, st.num_candidates, st.lineage)
    out, = mappings["TTSVAR_SampleScales"]().sample(st, 0)
    assert (st.next_scale, st.num_candidates, st.lineage) == before and out is not st


def test_built_in_world_verifier_entry(mappings):
    from nodes_under_test.loaders import BUILT_IN

    R, F = mappings["TTSVAR_RewardModelLoader"], mappings["TTSVAR_FeatureExtractorLoader"]
    assert BUILT_IN in R.INPUT_TYPES()["required"]["weights"][0]
    assert BUILT_IN in F.INPUT_TYPES()["required"]["weights"][0]
    reward, = R().load("world-reward", BUILT_IN)
    features, = F().load("world-features (pool)", BUILT_IN)
    assert reward.name == "world-reward" and features.name == "world-features-pool"
    _raises(lambda: R().load("imagereward", BUILT_IN), "input 'weights'", "world-reward")
    _raises(lambda: F().load("dinov2 (pca)", BUILT_IN), "input 'weights'", "world-features")
