"""Every example workflow: its API twin matches the UI file, and it runs end to end in-process
(on the tiny random model where it names downloads, see workflow_defs.ci_variant; the world
workflow as shipped)."""

import json
import os

import pytest
import torch

from runner import Runner
from ui_convert import ui_to_api
from workflow_defs import BUILTIN, OUT, PN_FOR_SIDE, WORKFLOWS, ci_variant

NAMES = sorted(WORKFLOWS)
#: Workflows made for one size only (the world model draws 64×64 scenes): their side and pixels per token.
ONE_SIZE = {"ttsvar_world_tts_var_vs_plain": (64, 4)}


def _load(name):
    ui = json.loads((OUT / f"{name}.json").read_text())
    api = json.loads((OUT / "api" / f"{name}.json").read_text())
    return ui, api


def test_every_ui_file_has_a_twin():
    ui_files = sorted(p.stem for p in OUT.glob("*.json"))
    api_files = sorted(p.stem for p in (OUT / "api").glob("*.json"))
    assert ui_files == api_files == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_matches_ui(name, mappings):
    ui, api = _load(name)
    assert ui_to_api(ui, mappings, BUILTIN) == api


@pytest.mark.parametrize("name", NAMES)
def test_workflow_uses_only_known_nodes_and_valid_values(name, mappings):
    _, api = _load(name)
    for nid, node in api.items():
        ct = node["class_type"]
        if ct in BUILTIN:
            continue
        decl = mappings[ct].INPUT_TYPES()
        specs = {**decl.get("required", {}), **decl.get("optional", {})}
        assert set(decl.get("required", {})) <= set(node["inputs"]), (nid, ct)
        for key, value in node["inputs"].items():
            typ, opts = specs[key][0], (specs[key][1] if len(specs[key]) > 1 else {})
            if isinstance(value, list):
                src = api[str(value[0])]["class_type"]
                produced = "IMAGE" if src in BUILTIN else mappings[src].RETURN_TYPES[value[1]]
                assert produced == typ, (nid, key, produced, typ)
            elif typ in ("INT", "FLOAT"):
                assert opts.get("min", value) <= value <= opts.get("max", value), (nid, key)


def _resolutions(name):
    """Every workflow runs at 256² (7 scales); the paper's node-by-node graph also at 512² (10 scales).
    The other sizes are checked before sampling at every resolution below; TTSVAR_ALL_RESOLUTIONS=1
    runs every workflow at 256², 512² and 1024² (minutes on a CPU: the 1024² VAE decodes dominate)."""
    if name in ONE_SIZE:
        return [ONE_SIZE[name][0]]
    if os.environ.get("TTSVAR_ALL_RESOLUTIONS"):
        return [256, 512, 1024]
    return [256, 512] if name == "ttsvar_tts_var" else [256]


@pytest.mark.parametrize("name,side", [(n, s) for n in NAMES for s in _resolutions(n)])
def test_workflow_runs_end_to_end(name, side, workflow_run):
    _, runner, outputs = workflow_run(name, side)
    assert outputs, "the workflow has an image output"
    for images in outputs.values():
        assert images.dtype == torch.float32 and images.ndim == 4 and images.shape[-1] == 3
        assert images.shape[1:3] == (side, side), images.shape
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert images.shape[0] == 1
        assert float(images.std()) > 0.01, "the image is not one flat colour"
    # the size actually produced is shown on the nodes that choose it, without a warning
    for report in (r for ui in runner.ui.values() for r in ui.get("ttsvar_size", [])):
        assert report["produced"] == [side, side] and report["warning"] is None and report["note"] is None


@pytest.fixture(scope="module")
def checking_runner(mappings):
    """One runner for every graph below, so the loaders run once (ComfyUI-style caching)."""
    return Runner(mappings)


@pytest.mark.parametrize("name,side", [(n, s) for n in NAMES for s in ([ONE_SIZE[n][0]] if n in ONE_SIZE else sorted(PN_FOR_SIDE))])
def test_workflow_passes_the_start_checks_at_every_resolution(name, side, checking_runner, monkeypatch):
    """What Start State / the Sampler check when the graph starts (the size rule, and every node
    downstream against the schedule), at every pixel budget, stopping before the first state is
    made: the graph is unchanged but for the size, so e.g. a schedule with fewer filter points than
    the graph has filters fails here."""
    _, api = _load(name)
    started = []

    def stop(*args, **kwargs):
        started.append(kwargs.get("grid") or args[3])
        raise _Stop()

    monkeypatch.setattr("ttsvar.sampler.start_state", stop)
    monkeypatch.setattr("ttsvar.pipelines.run_strategy", stop)
    with pytest.raises(_Stop):
        checking_runner.run(ci_variant(api, side))
    stride = ONE_SIZE[name][1] if name in ONE_SIZE else 16  # the model's pixels per token
    assert [g.final_grid for g in started] == [(side // stride, side // stride)]


class _Stop(Exception):
    """Raised where the first state would be created: every check before it passed."""
