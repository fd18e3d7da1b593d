"""Node defaults and shipped workflows follow the official TTS-VAR code; the faster or paper-defined
behaviours are options that are off unless chosen."""

import json

import pytest

from workflow_defs import BUILT_IN, OUT

OFFICIAL_DINO = "dinov2-with-registers-large/"


def _spec(mappings, node, name):
    decl = mappings[node].INPUT_TYPES()
    for section in ("required", "optional"):
        if name in decl.get(section, {}):
            return section, decl[section][name]
    raise KeyError(name)


@pytest.mark.parametrize("node", ["TTSVAR_ClusterFilter", "TTSVAR_RewardResample", "TTSVAR_Sampler"])
def test_filter_previews_are_official_unless_fast_filters_are_chosen(mappings, node):
    section, (typ, opts) = _spec(mappings, node, "decode_at_model_size")
    assert section == "optional" and typ == "BOOLEAN" and opts["default"] is False
    assert "official" in opts["tooltip"] and "Fast filters" in opts["tooltip"]


def test_cluster_seed_defaults_to_the_official_fixed_value(mappings):
    _, (typ, opts) = _spec(mappings, "TTSVAR_ClusterFilter", "seed")
    assert typ == "INT" and opts["default"] == 0 and "official" in opts["tooltip"]
    assert opts["control_after_generate"] == "fixed"  # ComfyUI would otherwise randomise it after each run


def test_paper_potentials_are_optional_inputs_that_default_to_off(mappings):
    section, (typ, opts) = _spec(mappings, "TTSVAR_Sampler", "score_from_scale")
    assert section == "optional" and typ == "INT" and opts["default"] == -1
    section, (typ, _) = _spec(mappings, "TTSVAR_SampleScales", "reward_model")
    assert section == "optional" and typ == "TTSVAR_REWARD_MODEL"


def test_feature_extractor_docs_name_dinov2_with_registers(mappings):
    loader = mappings["TTSVAR_FeatureExtractorLoader"]
    assert OFFICIAL_DINO in loader.DESCRIPTION
    assert OFFICIAL_DINO in _spec(mappings, "TTSVAR_FeatureExtractorLoader", "weights")[1][1]["tooltip"]


@pytest.mark.parametrize("path", sorted((OUT / "api").glob("*.json")), ids=lambda p: p.stem)
def test_shipped_workflows_use_the_official_settings(path):
    for node in json.loads(path.read_text()).values():
        inputs = node["inputs"]
        if node["class_type"] == "TTSVAR_FeatureExtractorLoader":
            if inputs["family"].startswith("world-features"):  # the world's own, reduced by PCA as DINOv2's in the paper
                assert inputs == {"family": "world-features (pca)", "weights": BUILT_IN}
            else:
                assert inputs["weights"] == OFFICIAL_DINO
        if "decode_at_model_size" in inputs:
            assert inputs["decode_at_model_size"] is False
        if node["class_type"] == "TTSVAR_ClusterFilter":
            assert inputs["seed"] == 0
