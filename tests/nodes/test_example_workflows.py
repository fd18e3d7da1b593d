"""Every example workflow: its API twin matches the UI file, and it runs end to end in-process
on the tiny random model (see workflow_defs.ci_variant)."""

import json

import pytest
import torch

from ui_convert import ui_to_api
from workflow_defs import BUILTIN, OUT, WORKFLOWS, ci_side

NAMES = sorted(WORKFLOWS)


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


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_on_tiny_model(name, workflow_run):
    api, _, outputs = workflow_run(name)
    side = ci_side(api)
    assert outputs, "the workflow has an image output"
    for images in outputs.values():
        assert images.dtype == torch.float32 and images.ndim == 4 and images.shape[-1] == 3
        assert images.shape[1:3] == (side, side), images.shape
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        expected = 1
        assert images.shape[0] == expected
