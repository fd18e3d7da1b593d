"""Helpers shared by the node tests: import the pack the way ComfyUI does, and turn a UI-format
workflow into API format using the node declarations (what the editor's "Export (API)" does)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_MODULE = "ttsvar_comfy_pack"

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def import_pack(name: str = PACK_MODULE):
    """Import the repository root as ComfyUI does: its folder as a module (custom_nodes/<dir>)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def input_type(spec):
    return spec[0]


def widget_names(class_type: str, mappings: dict, builtin: dict | None = None) -> list[tuple[str, dict]]:
    """(name, options) of the widget inputs in declaration order (what widgets_values lists)."""
    decl = (builtin or {}).get(class_type) or mappings[class_type].INPUT_TYPES()
    out = []
    for sec in ("required", "optional"):
        for name, spec in decl.get(sec, {}).items():
            typ = spec[0]
            if typ in WIDGET_TYPES or isinstance(typ, list):
                out.append((name, spec[1] if len(spec) > 1 else {}))
    return out


def ui_to_api(ui: dict, mappings: dict, builtin: dict | None = None) -> dict:
    links = {lk[0]: lk for lk in ui["links"]}
    api = {}
    for node in sorted(ui["nodes"], key=lambda n: n["id"]):
        ct = node["type"]
        inputs = {}
        linked = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                lk = links[inp["link"]]
                linked[inp["name"]] = [str(lk[1]), lk[2]]
        values = list(node.get("widgets_values", []))
        i = 0
        for name, opts in widget_names(ct, mappings, builtin):
            if name in linked:
                continue
            inputs[name] = values[i]
            i += 1
            if opts.get("control_after_generate"):
                i += 1  # the "fixed"/"randomize" companion value
        if i != len(values):
            raise AssertionError(f"node {node['id']} ({ct}): {len(values)} widget values, declarations use {i}")
        inputs.update(linked)
        api[str(node["id"])] = {"class_type": ct, "inputs": inputs, "_meta": {"title": node.get("title", ct)}}
    return api
