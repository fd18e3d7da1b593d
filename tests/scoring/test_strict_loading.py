"""Hugging Face folder loaders are strict and quiet.

A weight missing from a folder, or saved with another shape, must stop the load with one error
naming the weights, the folder and the repository to download (``from_pretrained`` alone fills
the gap with random numbers and only logs a table). A complete folder loads without printing
anything, also when the folder holds weights the loader deliberately skips (the CLIP text tower
for the vision-only loaders, the decoder of a full T5 folder).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import make_clip_folder, make_dinov2_folder, make_t5_folder
from safetensors.torch import load_file, save_file

from ttsvar.errors import TTSVarError
from ttsvar.infinity.text import load_text_encoder
from ttsvar.scoring import load_aesthetic, load_clip_features, load_clip_score, load_dinov2, load_pickscore

LOADERS = {
    "clip": load_clip_score,
    "pickscore": load_pickscore,
    "clip-features": load_clip_features,
    "aesthetic": load_aesthetic,
    "dinov2": load_dinov2,
    "dinov2-registers": load_dinov2,
    "t5": load_text_encoder,
}
FOLDER_OF = {"clip": "clip", "pickscore": "pickscore", "clip-features": "clip", "aesthetic": "aesthetic",
             "dinov2": "dinov2", "dinov2-registers": "dinov2_reg"}
# per loader: a weight it reads that is then deleted, one that is then reshaped, and the repository named
DAMAGE = {
    "clip": ("text_model.final_layer_norm.weight", "vision_model.post_layernorm.bias", "openai/clip-vit-large-patch14"),
    "pickscore": ("logit_scale", "text_projection.weight", "yuvalkirstain/PickScore_v1"),
    "clip-features": ("vision_model.post_layernorm.weight", "visual_projection.weight", "openai/clip-vit-large-patch14"),
    "aesthetic": ("vision_model.pre_layrnorm.bias", "vision_model.encoder.layers.1.mlp.fc1.weight",
                  "openai/clip-vit-large-patch14"),
    "dinov2": ("layernorm.weight", "encoder.layer.0.mlp.fc1.weight", "facebook/dinov2-large"),
    "dinov2-registers": ("embeddings.register_tokens", "layernorm.bias", "facebook/dinov2-with-registers-large"),
    "t5": ("encoder.final_layer_norm.weight", "encoder.block.1.layer.1.DenseReluDense.wi.weight", "google/flan-t5-xl"),
}


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    return make_t5_folder(tmp_path_factory.mktemp("t5"))


def _folder(name: str, tiny_dirs, t5_dir) -> Path:
    return t5_dir if name == "t5" else tiny_dirs[FOLDER_OF[name]]


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    """A copy of a model folder whose ``model.safetensors`` went through ``edit(state_dict)``."""
    shutil.copytree(src, dst)
    sd = load_file(str(dst / "model.safetensors"))
    edit(sd)
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _load(name: str, folder: Path):
    return LOADERS[name](folder)


@pytest.mark.parametrize("name", [*LOADERS, "imagereward", "hpsv2"])
def test_complete_folder_loads_without_printing(name, tiny_dirs, t5_dir, capfd):
    from ttsvar.scoring import load_hpsv2, load_imagereward

    load = {
        "imagereward": lambda: load_imagereward(tiny_dirs["imagereward"]),
        "hpsv2": lambda: load_hpsv2(tiny_dirs["hps"], config=tiny_dirs["_hps_cfg"]),
    }.get(name, lambda: _load(name, _folder(name, tiny_dirs, t5_dir)))
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("name", list(LOADERS))
def test_missing_and_reshaped_weights_are_one_error(name, tiny_dirs, t5_dir, tmp_path, capfd):
    deleted, reshaped, repo = DAMAGE[name]

    def damage(sd):
        del sd[deleted]
        sd[reshaped] = torch.zeros(3, 5)

    folder = _edited_copy(_folder(name, tiny_dirs, t5_dir), tmp_path / "damaged", damage)
    capfd.readouterr()
    with pytest.raises(TTSVarError) as info:
        _load(name, folder)
    msg = str(info.value)
    assert f"missing weights (1): {deleted}" in msg
    assert f"wrong shapes (1): {reshaped}: " in msg
    assert str(folder) in msg and repo in msg
    assert capfd.readouterr() == ("", "")  # the error says it all: no transformers table besides


def test_vision_only_loaders_ignore_the_text_tower_but_not_unknown_weights(tiny_dirs, tmp_path, images):
    """clip-features reads no text weight, so a damaged text tower does not matter to it; a vision
    weight the config does not describe (a folder of a deeper model) does."""
    good = load_clip_features(tiny_dirs["clip"])

    def text_damage(sd):
        del sd["text_model.final_layer_norm.weight"]
        sd["text_projection.weight"] = torch.zeros(3, 5)
        sd["vision_model.embeddings.position_ids"] = torch.arange(17)[None]  # an old transformers buffer

    folder = _edited_copy(tiny_dirs["clip"], tmp_path / "text_damaged", text_damage)
    # the same weights and the same operations: bit-identical
    torch.testing.assert_close(load_clip_features(folder).features(images), good.features(images), rtol=0, atol=0)

    def deeper(sd):
        sd["vision_model.encoder.layers.2.mlp.fc1.weight"] = sd["vision_model.encoder.layers.1.mlp.fc1.weight"].clone()

    folder = _edited_copy(tiny_dirs["clip"], tmp_path / "deeper", deeper)
    with pytest.raises(TTSVarError, match=r"unexpected weights \(1\): vision_model\.encoder\.layers\.2\.mlp\.fc1\.weight"):
        load_clip_features(folder)


def test_t5_folder_with_a_decoder_loads(tmp_path, t5_dir):
    """flan-t5-xl is a full encoder-decoder folder: the decoder and LM head are skipped, quietly."""
    def add_decoder(sd):
        sd["decoder.block.0.layer.0.SelfAttention.q.weight"] = torch.zeros(32, 32)
        sd["lm_head.weight"] = torch.zeros(9, 32)

    folder = _edited_copy(t5_dir, tmp_path / "t5_full", add_decoder)
    # the decoder's extra weights are dropped; the encoder's are the same: bit-identical
    torch.testing.assert_close(load_text_encoder(folder).features("a red fox"),
                               load_text_encoder(t5_dir).features("a red fox"), rtol=0, atol=0)


def test_truncated_weight_file_is_a_clear_error(tiny_dirs, tmp_path, capfd):
    folder = tmp_path / "truncated"
    shutil.copytree(tiny_dirs["dinov2"], folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])  # an interrupted download
    capfd.readouterr()
    with pytest.raises(TTSVarError, match=r"(?s)Could not load DINOv2 from .*truncated: SafetensorError.*facebook/dinov2-large"):
        load_dinov2(folder)
    assert capfd.readouterr() == ("", "")


def test_quiet_loading_restores_transformers_settings(tiny_dirs, tmp_path):
    import logging

    from transformers.utils import logging as hf_logging

    def settings():
        root = logging.getLogger("transformers")
        return hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), root.handlers[:], root.propagate

    before = settings()
    load_dinov2(tiny_dirs["dinov2"])
    folder = _edited_copy(tiny_dirs["dinov2"], tmp_path / "damaged", lambda sd: sd.pop("layernorm.weight"))
    with pytest.raises(TTSVarError):
        load_dinov2(folder)
    assert settings() == before
