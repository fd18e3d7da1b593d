"""Every node's declaration is valid for ComfyUI (checked without ComfyUI)."""

import re

import pytest

from ui_convert import WIDGET_TYPES

NODE_IDS = None


def _all(mappings):
    return sorted(mappings.items())


def test_mappings(pack):
    m, d = pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS
    assert m and set(m) == set(d)
    assert pack.WEB_DIRECTORY == "./web"
    for node_id, name in d.items():
        assert node_id.startswith("TTSVAR_") and name.startswith("TTS-VAR ")


def test_every_node_declaration(mappings):
    custom_types = set()
    for node_id, cls in _all(mappings):
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20, node_id
        assert cls.CATEGORY.startswith("TTS-VAR"), node_id
        assert callable(getattr(cls, cls.FUNCTION)), node_id
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS), node_id
        decl = cls.INPUT_TYPES()
        assert set(decl) <= {"required", "optional", "hidden"}
        for sec in ("required", "optional"):
            for name, spec in decl.get(sec, {}).items():
                typ, opts = spec[0], (spec[1] if len(spec) > 1 else {})
                assert re.fullmatch(r"[a-z_]+", name), (node_id, name)
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
                if isinstance(typ, list):
                    assert typ and all(isinstance(x, str) for x in typ)
                    assert len(set(typ)) == len(typ)
                    if "default" in opts:
                        assert opts["default"] in typ, (node_id, name)
                elif typ in ("INT", "FLOAT"):
                    lo, hi, dv = opts["min"], opts["max"], opts["default"]
                    assert lo <= dv <= hi, (node_id, name)
                    if typ == "INT":
                        assert all(isinstance(v, int) for v in (lo, hi, dv)), (node_id, name)
                elif typ in WIDGET_TYPES:
                    assert "default" in opts, (node_id, name)
                else:
                    assert typ == typ.upper(), (node_id, name)
                    custom_types.add(typ)
        for t in cls.RETURN_TYPES:
            if t != "IMAGE":
                custom_types.add(t)
        # the method accepts every declared input by name
        import inspect

        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        for sec in ("required", "optional"):
            for name in decl.get(sec, {}):
                assert name in params, (node_id, name)
    assert {"INFINITY_MODEL", "TTSVAR_CONDITION", "TTSVAR_SCHEDULE", "VAR_STATE", "TTSVAR_FEATURE_EXTRACTOR",
            "TTSVAR_REWARD_MODEL"} <= custom_types


def test_mirrored_constants_match_library():
    from nodes_under_test import common, loaders
    from ttsvar.pipelines import STRATEGIES
    from ttsvar.scoring import LOADERS
    from ttsvar.scoring.combine import NORMALIZATIONS
    from ttsvar.search.potentials import POTENTIAL_KINDS

    assert set(common.STRATEGIES) == set(STRATEGIES)
    assert tuple(common.POTENTIALS) == tuple(POTENTIAL_KINDS)
    assert tuple(loaders.NORMALIZATIONS) == tuple(NORMALIZATIONS)
    assert set(loaders.REWARD_FAMILIES) == {n for n, s in LOADERS.items() if s.kind == "reward"}
    bases = {f.split(" (")[0] for f in loaders.FEATURE_FAMILIES}
    assert bases == {n for n, s in LOADERS.items() if s.kind == "features"}


@pytest.mark.parametrize("key", ["infinity", "ttsvar_rewards", "ttsvar_features"])
def test_model_folder_listing_with_fallback(key, tmp_path, monkeypatch):
    from nodes_under_test import comfy_bridge

    monkeypatch.setenv("TTSVAR_MODELS_DIR", str(tmp_path))
    (tmp_path / key).mkdir()
    (tmp_path / key / "a.pth").write_bytes(b"")
    (tmp_path / key / "folder").mkdir()
    (tmp_path / key / "notes.txt").write_text("x")
    if comfy_bridge.comfy_available():
        pytest.skip("ComfyUI's folder_paths is importable here")
    assert comfy_bridge.list_entries(key) == ["a.pth", "folder/"]
    assert comfy_bridge.full_path(key, "folder/") == str(tmp_path / key / "folder")
