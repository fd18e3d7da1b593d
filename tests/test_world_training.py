"""Training the world's text-to-image model (tiny sizes), its text encoder, and the world model's loader."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ttsvar.errors import MissingWeightsError
from ttsvar.infinity.text import load_text_encoder
from ttsvar.infinity.vae import random_bsq_vae
from ttsvar.world.model import load_world_model
from ttsvar.world.text_encoder import TextEncoderConfig, build_tokenizer, encode_captions, new_text_encoder, save_text_encoder
from ttsvar.world.train_t2i import CHECKPOINT_NAME, T2ITrainConfig, Trainer, encode_dataset, train_t2i

TINY = T2ITrainConfig(steps=4, batch=2, coarse_batch=2, images=12, warmup=2, depth=1, width=32, heads=2, ffn=64,
                      pool_heads=1, text=TextEncoderConfig(channels=32, layers=1, heads=2, ff=32), checkpoint_every=2)


@pytest.fixture(scope="module")
def vae():
    """Random, with the world's geometry (stride 4, 16 bits) at a fraction of its width."""
    return random_bsq_vae(0, codebook_dim=16, base_ch=24, ch_mult=(1, 1, 1), num_res_blocks=1)


@pytest.fixture(scope="module")
def data(vae):
    return encode_dataset(vae, TINY, progress=False)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {**{f"t.{k}": v for k, v in trainer.transformer.state_dict().items()},
            **{f"e.{k}": v for k, v in trainer.text_encoder.state_dict().items()}}


def test_training_steps_lower_the_loss_and_are_deterministic(data):
    config = replace(TINY, lr=3e-3, max_flip=0.0, cfg_drop=0.0)
    runs = []
    for _ in range(2):
        trainer = Trainer(config, data)
        with torch.no_grad():
            before = float(trainer.loss(0))
        for step in range(8):
            trainer.step(step % 2)  # two fixed batches: the loss on them must fall
        with torch.no_grad():
            after = float(trainer.loss(0))
        runs.append((before, after, _weights(trainer)))
    assert runs[0][1] < runs[0][0] - 0.01, runs[0][:2]
    # same seed, same process, same ops: bit-identical
    assert runs[0][:2] == runs[1][:2]
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])


def test_resumed_run_equals_uninterrupted_run(vae, tmp_path):
    whole = train_t2i(TINY, vae, tmp_path / "whole", progress=False, export=False)
    stopped = tmp_path / "stopped"
    first = train_t2i(TINY, vae, stopped, progress=False, export=False)  # the data and a checkpoint of step 4 …
    half = Trainer(TINY, first.data)
    for step in range(2):
        half.step(step)
    half.save_checkpoint(stopped / CHECKPOINT_NAME, 2)  # … replaced by one of a run stopped after step 2
    resumed = train_t2i(TINY, vae, stopped, resume=True, progress=False, export=False)
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(_weights(half)["t.head.weight"], a["t.head.weight"])


def test_text_encoder_folder_gives_the_training_features(tmp_path):
    """`load_text_encoder` opens the saved folder and computes what training computed (bf16 weights)."""
    config = TextEncoderConfig(channels=32, layers=1, heads=2, ff=32)
    model, tokenizer = new_text_encoder(config, seed=0), build_tokenizer()
    save_text_encoder(model, tokenizer, tmp_path / "te")
    encoder = load_text_encoder(tmp_path / "te")
    captions = ["a photo of an orange triangle left of a purple wedge", "a photo of two circles"]
    with torch.no_grad():
        trained = encode_captions(encoder.model, tokenizer, captions)
    for caption, features in zip(captions, trained):
        # padded batch vs. one caption alone: float32 reordering only, features ~O(1)
        torch.testing.assert_close(encoder.features(caption), features, rtol=1e-5, atol=1e-5)
    assert encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer("a photo of Two circles").input_ids) == [
        "a", "photo", "of", "two", "circles", "</s>"]


def test_missing_world_weights_name_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="transformer.safetensors"):
        load_world_model(tmp_path)

