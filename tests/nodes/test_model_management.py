"""Everything with weights goes through ComfyUI's model management: the Infinity model, the text
encoder, reward models and feature extractors each get a ModelPatcher over their ``torch_modules()``
and are loaded with ``load_models_gpu`` by the node that uses them, so "Unload models" and OOM
recovery reach them too. ComfyUI is faked here (``comfy.model_management``/``comfy.model_patcher``
in ``sys.modules``); tests/nodes/test_comfyui_server.py runs the real one."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

TINY = "(tiny random demo)"
PROMPT = "a photo of a cat"


class FakePatcher:
    def __init__(self, model, load_device=None, offload_device=None):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device


@pytest.fixture
def comfy(monkeypatch):
    """A fake ComfyUI: records load_models_gpu calls; unload_all_models moves every loaded holder to
    float64 on the CPU (the observable stand-in for 'moved back to the offload device')."""
    mm = types.ModuleType("comfy.model_management")
    mm.calls, mm.loaded = [], []
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.InterruptProcessingException = type("InterruptProcessingException", (Exception,), {})
    mm.throw_exception_if_processing_interrupted = lambda: None
    mm.soft_empty_cache = lambda: None

    def load_models_gpu(patchers, memory_required=0, force_full_load=False):
        assert force_full_load
        mm.calls.append(list(patchers))
        for p in patchers:
            p.model.to(p.load_device)
            if p not in mm.loaded:
                mm.loaded.append(p)

    def unload_all_models():
        for p in mm.loaded:
            p.model.to(torch.float64)
        mm.loaded.clear()

    mm.load_models_gpu, mm.unload_all_models = load_models_gpu, unload_all_models
    mp = types.ModuleType("comfy.model_patcher")
    mp.ModelPatcher = FakePatcher
    pkg = types.ModuleType("comfy")
    pkg.__path__ = []
    pkg.model_management, pkg.model_patcher = mm, mp
    monkeypatch.setitem(sys.modules, "comfy", pkg)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    monkeypatch.setitem(sys.modules, "comfy.model_patcher", mp)
    return mm


def _managed(mm, call=-1) -> list:
    """The nn.Modules of every patcher in one load_models_gpu call."""
    return [m for p in mm.calls[call] for m in p.model.children()]


def _has(mods, module) -> bool:
    return any(m is module for m in mods)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A tiny random CLIP folder in ttsvar_rewards/ and ttsvar_features/ (made by the scoring tests' helper)."""
    spec = importlib.util.spec_from_file_location("_scoring_helpers", Path(__file__).parents[1] / "scoring" / "conftest.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    root = tmp_path_factory.mktemp("models")
    helpers.make_clip_folder(root / "ttsvar_rewards" / "clip")
    helpers.make_clip_folder(root / "ttsvar_features" / "clip", seed=1)
    return root


@pytest.fixture
def loaded(mappings, models_dir, monkeypatch, comfy):
    monkeypatch.setenv("TTSVAR_MODELS_DIR", str(models_dir))
    M = mappings
    model, = M["TTSVAR_InfinityLoader"]().load(TINY, TINY, "auto")
    reward, = M["TTSVAR_RewardModelLoader"]().load("clip", "clip/")
    feats, = M["TTSVAR_FeatureExtractorLoader"]().load("clip-features", "clip/")
    te, = M["TTSVAR_TextEncoderLoader"]().load(TINY, "auto", model=model)
    cond, = M["TTSVAR_EncodePrompt"]().encode(te, PROMPT, "")
    return dict(model=model, reward=reward, feats=feats, te=te, cond=cond)


def test_sampler_loads_model_and_verifiers(mappings, loaded, comfy):
    L = loaded
    comfy.calls.clear()
    # 256² (7 scales): which modules get loaded does not depend on the resolution
    images, state = mappings["TTSVAR_Sampler"]().run(L["model"], L["cond"], "best-of-n", 2, 256, 256, 3.0, 0.5, 0.97, 0, "value", 10.0,
                                                      reward_model=L["reward"], feature_extractor=L["feats"])["result"]
    mods = _managed(comfy, 0)
    for m in (L["model"].transformer, L["model"].vae, L["reward"].model, L["feats"].vision):
        assert _has(mods, m)
    assert len(comfy.calls[0]) == 3  # one patcher per object

    # Select Best, Reward Resample and Cluster Filter load their verifier with the model
    comfy.calls.clear()
    mappings["TTSVAR_SelectBest"]().select(state, L["reward"], 1)
    assert _has(_managed(comfy), L["reward"].model) and _has(_managed(comfy), L["model"].transformer)
    # the same object keeps its patcher
    assert comfy.calls[-1][1] is next(p for p in comfy.loaded if _has(list(p.model.children()), L["reward"].model))


def test_filters_load_their_verifier(mappings, loaded, comfy):
    L, M = loaded, mappings
    sched, = M["TTSVAR_BatchSchedule"]().build("tts-var", 1, "0.25M", "")
    state, = M["TTSVAR_StartState"]().start(L["model"], L["cond"], sched, 512, 512, "from width/height", "auto (from schedule)", 3.0, 0.5, 0.97, 0)
    state, = M["TTSVAR_SampleScales"]().sample(state, 0)
    comfy.calls.clear()
    state, = M["TTSVAR_ClusterFilter"]().filter(state, L["feats"], 0, 0)
    assert _has(_managed(comfy), L["feats"].vision) and not _has(_managed(comfy), L["reward"].model)
    state, = M["TTSVAR_SampleScales"]().sample(state, 0)
    comfy.calls.clear()
    M["TTSVAR_RewardResample"]().resample(state, L["reward"], "value", 10.0, 0)
    assert _has(_managed(comfy), L["reward"].model) and not _has(_managed(comfy), L["feats"].vision)


def test_encoder_with_weights_is_managed(mappings, comfy):
    class Encoder:  # a T5TextEncoder stand-in: same protocol, one module holding the weights
        def __init__(self):
            self.lin = torch.nn.Linear(4, 8)

        def torch_modules(self):
            return [self.lin]

        def encode(self, prompt, negative=""):
            return ("encoded on", next(self.lin.parameters()).dtype)

    enc = Encoder()
    comfy.calls.clear()
    mappings["TTSVAR_EncodePrompt"]().encode(enc, PROMPT, "")
    assert len(comfy.calls) == 1 and _managed(comfy) == [enc.lin]


def test_weightless_objects_are_skipped(mappings, comfy):
    bridge = sys.modules["nodes_under_test.comfy_bridge"]
    from ttsvar.infinity.text import HashTextEncoder

    comfy.calls.clear()
    bridge.load_models([None, HashTextEncoder(8), mappings["TTSVAR_RewardModelLoader"]().load("clip", TINY)[0]])
    assert comfy.calls == []  # nothing to load: load_models_gpu is not even called


def test_combined_reward_shares_its_members_patchers(mappings, loaded, comfy):
    L = loaded
    bridge = sys.modules["nodes_under_test.comfy_bridge"]
    tiny, = mappings["TTSVAR_RewardModelLoader"]().load("imagereward", TINY)
    combo, = mappings["TTSVAR_CombineRewards"]().combine(L["reward"], 1.0, tiny, 1.0, "softmax")
    assert combo.torch_modules() == [L["reward"].model]
    comfy.calls.clear()
    bridge.load_models([L["reward"]])
    bridge.load_models([combo])
    assert len(comfy.calls[1]) == 1 and comfy.calls[0][0] is comfy.calls[1][0]


def test_unload_reaches_verifiers_and_they_still_score(mappings, loaded, comfy):
    """free_after_oom (and the Unload button) move managed weights away; the verifier follows."""
    L = loaded
    bridge = sys.modules["nodes_under_test.comfy_bridge"]
    reward = L["reward"]
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    ref = reward.score(images, [PROMPT] * 2)
    bridge.load_models([reward])
    bridge.free_after_oom()
    try:
        assert reward.model.dtype == torch.float64 and reward.dtype == torch.float64
        torch.testing.assert_close(reward.score(images, [PROMPT] * 2), ref, atol=1e-4, rtol=1e-4)
    finally:
        reward.model.to(torch.float32)


def test_no_comfyui_is_a_noop(loaded, monkeypatch):
    bridge = sys.modules["nodes_under_test.comfy_bridge"]
    monkeypatch.setitem(sys.modules, "comfy", None)  # import comfy.* now fails, as outside ComfyUI
    monkeypatch.setitem(sys.modules, "comfy.model_management", None)
    bridge.load_models([loaded["model"], loaded["reward"]])  # no error
    assert bridge.patcher_for(loaded["reward"]) is None
