"""The world's verifiers as shipped: protocols, determinism, strict and quiet loading, and that the
committed weights rank and cluster as measured."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.scoring import FeatureExtractor, RewardModel, load
from ttsvar.scoring import world as W
from ttsvar.world import verifier_eval as E
from ttsvar.world.prompts import prompt_set
from ttsvar.world.render import render
from ttsvar.world.scenes import sample_scene


@pytest.fixture(scope="module")
def reward():
    return W.load_world_reward(None)


@pytest.fixture(scope="module")
def world_images():
    prompts = prompt_set(6, seed=1)
    rng = np.random.default_rng(0)
    images = np.stack([render(sample_scene(rng, m), 64) for m in prompts])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, [m["prompt"] for m in prompts]


def test_shipped_folder_is_complete_and_small():
    sizes = {f: (W.DEFAULT_DIR / f).stat().st_size for f in W.FILES}
    assert sum(sizes.values()) <= 3 * 2**20, sizes
    calibration = json.loads((W.DEFAULT_DIR / "calibration.json").read_text())
    assert calibration["std"] > 0


def test_protocols_shapes_and_dtypes(reward, world_images):
    images, prompts = world_images
    assert isinstance(reward, RewardModel) and reward.input_size == 64 and reward.name == "world-reward"
    assert reward.torch_modules() == [reward.model]
    s = reward.score(images, prompts)
    assert s.shape == (6,) and s.dtype == torch.float32 and s.device.type == "cpu"
    for mode, dim in (("pca", 64), ("pool", 128)):
        f = load("world-features", "", mode=mode)
        assert isinstance(f, FeatureExtractor) and f.name == f"world-features-{mode}"
        out = f.features(images)
        assert out.shape == (6, dim) and out.dtype == torch.float32


def test_scores_are_deterministic_and_independent_of_the_batch(reward, world_images):
    images, prompts = world_images
    together = reward.score(images, prompts)
    assert torch.equal(together, reward.score(images, prompts))
    alone = torch.cat([reward.score(images[i:i + 1], prompts[i:i + 1]) for i in range(6)])
    # batched and single matmuls may use different kernels: float32 rounding, scaled by 1/std of the cosine
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-3)


def test_more_prompts_in_one_call_than_the_text_cache_holds(world_images):
    images, prompts = world_images
    small = W.load_world_reward(None)
    small._cache_size = 2  # 6 distinct prompts per call: the call must not evict what it still needs
    torch.testing.assert_close(small.score(images, prompts), W.load_world_reward(None).score(images, prompts),
                               rtol=0, atol=0)
    assert len(small._cache) == 2


def test_other_sizes_and_dtypes_are_accepted(reward, world_images):
    images, prompts = world_images
    big = torch.nn.functional.interpolate(images, size=(96, 96), mode="bilinear", align_corners=False)
    assert reward.score(big, prompts).shape == (6,)
    half = W.load_world_reward("", dtype="bfloat16")
    # bfloat16 keeps 8 bits of mantissa: the calibrated score moves by a few hundredths
    torch.testing.assert_close(half.score(images, prompts), reward.score(images, prompts), rtol=0, atol=0.15)


def test_registry_and_prompt_count_errors(reward, world_images):
    images, prompts = world_images
    assert load("world-reward", None).score(images[:2], prompts[:2]).shape == (2,)
    with pytest.raises(TTSVarError, match="one prompt per image"):
        reward.score(images, prompts[:2])
    with pytest.raises(TTSVarError, match="mode"):
        W.load_world_features(None, mode="cls")


def _copy(tmp_path):
    folder = tmp_path / "verifier"
    shutil.copytree(W.DEFAULT_DIR, folder)
    return folder


def test_loading_is_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(tmp_path)
    (folder / "calibration.json").unlink()
    with pytest.raises(MissingWeightsError, match="calibration.json") as err:
        W.load_world_reward(folder)
    assert str(folder) in str(err.value)

    folder = _copy(tmp_path / "b")
    weights = load_file(str(folder / "model.safetensors"))
    weights.pop("text_projection.weight")
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(TTSVarError, match="missing weights.*text_projection.weight") as err:
        W.load_world_features(folder)
    assert str(folder) in str(err.value)

    folder = _copy(tmp_path / "c")
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["hidden_size"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TTSVarError, match="wrong shapes"):
        W.load_world_reward(folder)


def test_loading_is_quiet(capfd):
    W.load_world_reward(None)
    W.load_world_features(None, mode="pool")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_loading_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    W.load_world_reward(None)
    assert torch.equal(state, torch.random.get_rng_state())


def test_text_is_pooled_at_the_end_of_text_token(reward):
    """eos_token_id must not be 2 (CLIPTextModel's legacy rule, pooling at the largest id)."""
    assert reward.model.config.text_config.eos_token_id == 3
    ids = W.tokenize(reward.tokenizer, ["a photo of a red circle"])
    assert ids[0, 7].item() == 3 and (ids[0, 8:] == 0).all()


def test_reward_prefers_the_matching_caption(reward):
    """Measured on the committed weights over 300 held prompts (clean renders): caption edits
    ranked right 0.77 (colour 1.00, count 0.89, shape 0.51, relation 0.50, colour swap 0.58); a
    random-weight model ranks ~0.5. 30 prompts here (fixed seeds, so no sampling noise between
    runs), threshold well below the measurement and well above chance."""
    table = E.ranking(reward, n_prompts=30)["clean"]
    wins = sum(w for tag in table.values() for kind, (w, n) in tag.items() if kind != "image")
    total = sum(n for tag in table.values() for kind, (w, n) in tag.items() if kind != "image")
    assert total > 80 and wins / total > 0.65


def test_features_separate_planted_layouts():
    """PCA of the patch tokens separates layouts (the cluster filter's job). Measured: ARI 0.81
    over 20 groups (pooled features 0.01, pixel thumbnails 0.39); random weights reach 0.93 on 3
    groups, so this checks the PCA reduction and the tower's spatial tokens, not the training.
    3 groups here."""
    f = W.load_world_features(None, mode="pca")
    result = E.layout_separation({"pca": f}, groups=3)["pca"]
    assert result["ari"] > 0.6 and result["coverage"] > 0.9


def test_text_cache_smaller_than_a_call_keeps_every_prompt(world_images):
    """A call with more new prompts than the cache holds, after others are cached, used to evict
    prompts of the same call before reading them (KeyError in the held-prompt measurements)."""
    from ttsvar.world import train_verifiers as T

    config = T.VerifierConfig(width=32, vision_layers=1, text_layers=1, heads=2, projection=16)
    reward = T.reward_from_model(T.new_model(config, 0), config)
    reward._cache_size = 2
    images, prompts = world_images
    reward.score(images[:2], prompts[:2])
    batched = reward.score(images, prompts)
    fresh = T.reward_from_model(reward.model, config).score(images, prompts)
    # text rows cached from a 2-prompt batch vs one 6-prompt batch: float32 rounding of cosines (|s| ≤ 1)
    assert torch.allclose(batched, fresh, rtol=0, atol=1e-5)
