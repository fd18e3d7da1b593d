"""Every weight-holding verifier exposes its modules (``torch_modules()``) and follows moves of them:
a host such as ComfyUI's model management moves the modules, not the scorer object. Here the
observable "move" is a cast to float64 on the CPU (the same ``Module.to`` call a device move is)."""

import pytest
import torch

from conftest import PROMPTS
from ttsvar.scoring import (combine_rewards, load_aesthetic, load_clip_features, load_clip_score, load_dinov2,
                            load_hpsv2, load_imagereward, load_pickscore)
from ttsvar.scoring.classic import ColorfulnessReward, ThumbnailFeatures

LOADERS = {
    "clip": lambda d: load_clip_score(d["clip"]),
    "pickscore": lambda d: load_pickscore(d["pickscore"]),
    "hpsv2": lambda d: load_hpsv2(d["hps"], config=d["_hps_cfg"]),
    "aesthetic": lambda d: load_aesthetic(d["aesthetic"]),
    "imagereward": lambda d: load_imagereward(d["imagereward"]),
    "clip-features": lambda d: load_clip_features(d["clip"]),
    "dinov2": lambda d: load_dinov2(d["dinov2"], mode="pool"),
}


def _run(m, images):
    return m.score(images, PROMPTS) if hasattr(m, "score") else m.features(images)


def _all_params(m):
    return [p for mod in m.torch_modules() for p in mod.parameters()]


@pytest.mark.parametrize("family", list(LOADERS))
def test_moving_the_modules_moves_the_computation(family, tiny_dirs, images):
    m = LOADERS[family](tiny_dirs)
    mods = m.torch_modules()
    assert mods and all(isinstance(x, torch.nn.Module) for x in mods)
    # the modules hold every parameter the scorer has (nothing stays behind on a move)
    attrs = [v for v in vars(m).values() if isinstance(v, torch.nn.Module)]
    assert {id(p) for a in attrs for p in a.parameters()} <= {id(p) for p in _all_params(m)}
    ref = _run(m, images)  # also fills the CLIP text cache in float32

    seen = []  # input dtypes of the convolutions and linear layers that run
    hooks = [sub.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
             for x in mods for sub in x.modules() if isinstance(sub, (torch.nn.Linear, torch.nn.Conv2d))]
    try:
        for x in mods:
            x.to(torch.float64)
        assert m.dtype == torch.float64 and m.device == torch.device("cpu")
        out = _run(m, images)
    finally:
        for h in hooks:
            h.remove()
        for x in mods:
            x.to(torch.float32)
    assert seen and set(seen) == {torch.float64}, seen  # the backbone really ran in float64
    assert out.dtype == torch.float32 and out.device.type == "cpu" and torch.isfinite(out).all()
    # float64 backbone vs float32: the float32 run's rounding (~1e-6 relative per layer) bounds the gap
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert m.dtype == torch.float32
    torch.testing.assert_close(_run(m, images), ref, atol=1e-5, rtol=1e-5)


def test_combined_reward_modules_are_the_union(tiny_dirs, images):
    a, b = LOADERS["clip"](tiny_dirs), LOADERS["imagereward"](tiny_dirs)
    combo = combine_rewards([a, b, a, ColorfulnessReward()], [1.0, 1.0, 0.5, 1.0], "zscore")
    got = combo.torch_modules()
    assert len(got) == 2 and got[0] is a.model and got[1] is b.net
    ref = combo.score(images, PROMPTS)
    for x in got:
        x.to(torch.float64)
    try:
        assert a.dtype == b.dtype == torch.float64
        # float64 vs float32 models: bounded by the float32 run's rounding
        torch.testing.assert_close(combo.score(images, PROMPTS), ref, atol=1e-4, rtol=1e-4)
    finally:
        for x in got:
            x.to(torch.float32)


def test_weightless_verifiers_have_no_modules():
    from ttsvar.infinity.text import HashTextEncoder

    assert ColorfulnessReward().torch_modules() == []
    assert ThumbnailFeatures().torch_modules() == []
    assert HashTextEncoder(8).torch_modules() == []
    assert combine_rewards([ColorfulnessReward()]).torch_modules() == []
