"""The world's BSQ VAE: its training (deterministic, resumable, straight-through) and its export."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import ttsvar.world.train_vae as train_vae_module
from ttsvar.infinity.vae import load_vae
from ttsvar.world.__main__ import TRAINERS, main
from ttsvar.world.train_vae import WEIGHTS_NAME, VAETrainConfig, new_vae, reconstruction_loss, train_vae, training_batch

# A narrow model and small batches keep each step a fraction of a second; the geometry (stride 4,
# 16 bits, seven scales) is the real one.
SMALL = VAETrainConfig(seed=3, steps=4, batch=2, warmup=1, lr=3e-3, checkpoint_every=2, base_ch=24, ch_mult=(1, 1, 1))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_reduces_the_loss_and_is_deterministic(tmp_path):
    probe = training_batch(SMALL.seed, 0, 4)
    with torch.no_grad():
        before, _ = reconstruction_loss(new_vae(SMALL), probe, SMALL)
    first = train_vae(SMALL, tmp_path / "a", progress=False, export=False)
    second = train_vae(SMALL, tmp_path / "b", progress=False, export=False)
    assert _states_equal(first, second)
    with torch.no_grad():
        after, _ = reconstruction_loss(first, probe, SMALL)
    # From a random init four steps cut the loss by about a third (0.68× here); 0.8× leaves room
    # for other CPUs' rounding while an update that does not learn (lr 0, a detached graph) fails.
    assert float(after) < 0.8 * float(before)


def test_resume_continues_exactly_where_a_run_stopped(tmp_path, monkeypatch):
    uninterrupted = train_vae(SMALL, tmp_path / "whole", progress=False, export=False)

    real_batch = train_vae_module.training_batch

    def crash_at_step_3(seed, step, batch):
        if step == 3:
            raise KeyboardInterrupt
        return real_batch(seed, step, batch)

    monkeypatch.setattr(train_vae_module, "training_batch", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_vae(SMALL, tmp_path / "split", progress=False, export=False)
    monkeypatch.setattr(train_vae_module, "training_batch", real_batch)
    resumed = train_vae(SMALL, tmp_path / "split", resume=True, progress=False, export=False)
    assert _states_equal(uninterrupted, resumed)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    train_vae(replace(SMALL, steps=2), tmp_path, progress=False, export=False)
    from ttsvar.errors import TTSVarError

    with pytest.raises(TTSVarError, match="other settings"):
        train_vae(replace(SMALL, steps=4, lr=1e-3), tmp_path, resume=True, progress=False, export=False)


def test_straight_through_gradient_reaches_the_encoder():
    # Without the commitment and edge terms, the encoder's only gradient is the decoder's, passed
    # through the sign quantiser; a quantiser that blocks it leaves the encoder at exactly zero.
    config = replace(SMALL, commit_weight=0.0, edge_weight=0.0)
    model = new_vae(config)
    loss, _ = reconstruction_loss(model, training_batch(config.seed, 0, 2), config)
    loss.backward()
    grad = model.encoder.conv_in.conv.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_exported_weights_are_bf16_in_the_official_layout(tmp_path):
    train_vae(replace(SMALL, steps=1), tmp_path, progress=False)
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / WEIGHTS_NAME))
    assert state["decoder.conv_in.conv.weight"].dtype == torch.bfloat16
    assert torch.equal(state["quantizer.lfq.mask"], state["quantize.lfq.mask"])
    vae = load_vae(tmp_path / WEIGHTS_NAME)
    assert (vae.stride, vae.codebook_dim, vae.has_encoder) == (4, 16, True)


def test_train_command_dispatches_vae_first(tmp_path, capsys, monkeypatch):
    assert list(TRAINERS)[0] == "vae"
    monkeypatch.setattr(train_vae_module, "REPORT_PROMPTS", 4)
    assert main(["train", "vae", "--steps", "1", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / WEIGHTS_NAME).is_file() and (tmp_path / "checkpoints" / "vae.pt").is_file()
    assert "held-out reconstructions" in capsys.readouterr().out



def test_the_committed_vae_reconstructs_scenes_the_checker_still_passes():
    """The shipped bf16 VAE (`python -m ttsvar.world train vae`, 1600 steps): 99.0% of 200 held-out
    reconstructions pass the checker at 31.9 dB. 40 scenes here (all 40 pass); the bounds leave
    room for other CPUs' rounding, a VAE that lost its shapes or colours (an untrained one: 0%)
    fails."""
    from ttsvar.world.model import VAE_FILE, WEIGHTS_DIR
    from ttsvar.world.train_vae import evaluate_reconstruction

    report = evaluate_reconstruction(load_vae(WEIGHTS_DIR / VAE_FILE), n=40)
    assert report["render_pass_rate"] == 1.0
    assert report["pass_rate"] >= 0.75 and report["psnr"] >= 29.0, report  # measured here: 100%, 31.9 dB
