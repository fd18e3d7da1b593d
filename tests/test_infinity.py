"""Infinity re-implementation: parity with the official reference outputs, loading, grids, text."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.infinity.generate import SamplingSettings, teacher_force
from ttsvar.infinity.grids import ASPECT_TEMPLATES, grid_from_scales, nearest_template, resolve_grid
from ttsvar.infinity.model import InfinityModel, load_infinity
from ttsvar.infinity.weights import detect_arch, load_transformer, official_state

CASES = ("square", "wide", "two_prompts", "square_hiddencfg")

# Tolerances against the official outputs. Both sides are float32 on the same bf16-representable
# weights; only the order of float32 accumulation differs (oneDNN/ATen kernels, SIMD width,
# threads). Measured over the four cases under SSE4.1/AVX2 × 1/2 threads: logits ≤1.5e-6 of the
# largest logit, summed codes ≤3.8e-7, images ≤6.3e-5. A wrong convention (RoPE grid, guidance
# mix, code normalisation, resize mode) moves all three by ≥1e-2.
LOGITS_RTOL = 1e-4  # of the largest logit; ~70× the worst measured
CODES_ATOL = 1e-5  # summed codes are O(1); ~25× the worst measured
IMAGE_ATOL = 3e-4  # images in [-1, 1]; the random VAE amplifies rounding of its input ~100×: ~5× the worst measured


def _teacher_force(model, case, settings_json, num_scales=None):
    """Feed the case's bits through `model`; `num_scales` stops early (the logits of those scales are unchanged)."""
    grid = grid_from_scales([tuple(s[1:]) for s in case["scales"].tolist()])
    settings = SamplingSettings.build(
        grid.num_scales, cfg=settings_json["cfg"], tau=settings_json["tau"],
        cfg_layer=settings_json["cfg_insertion_layer"][0], depth=model.transformer.arch.depth,
    )
    prompts = list(torch.split(case["text_features"], case["text_lens"].tolist()))
    bits = [case[f"bits_{k}"] for k in range(num_scales or grid.num_scales)]
    return teacher_force(model, grid, settings, prompts, bits)


@pytest.fixture(scope="module")
def reference_model(reference_files):
    return load_infinity(reference_files.transformer_pth, reference_files.vae_pth, device="cpu")


def _relative_error(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


@pytest.mark.parametrize("name", CASES)
def test_teacher_forced_logits_code_map_and_image_match_official(reference_model, reference_case, reference_cases, name):
    case = reference_case(name)
    logits, run = _teacher_force(reference_model, case, reference_cases[name])
    for k, out in enumerate(logits):
        assert out.shape == case[f"logits_{k}"].shape
        assert _relative_error(out, case[f"logits_{k}"]) <= LOGITS_RTOL, f"scale {k}"
    assert (run.summed - case["summed_codes"]).abs().max() <= CODES_ATOL
    image = reference_model.vae.decode(run.summed)
    assert (image - case["image"]).abs().max() <= IMAGE_ATOL


def test_architecture_is_detected_from_shapes(reference_dir):
    arch = detect_arch(load_file(str(reference_dir / "transformer.safetensors")))
    config = json.loads((reference_dir / "config.json").read_text())["config"]
    assert (arch.depth, arch.embed_dim, arch.num_heads) == (config["depth"], config["embed_dim"], config["num_heads"])
    assert (arch.text_channels, arch.token_bits, arch.ffn_hidden) == (256, 32, 512)
    assert arch.pool_heads == 2 and arch.head_dim == 64


def test_bf16_checkpoint_is_upcast_exactly_unless_bf16_is_asked_for(reference_files):
    """The release stores bf16; float32 (the CPU default) widens each value exactly, bf16 keeps it."""
    stored = load_file(str(reference_files.transformer_safetensors))
    assert {v.dtype for v in stored.values()} == {torch.bfloat16}
    official = official_state(load_transformer(reference_files.transformer_pth), block_chunks=2)
    assert all(v.dtype == torch.float32 for v in load_transformer(reference_files.transformer_pth).state_dict().values())
    assert all(torch.equal(official[k].reshape(stored[k].shape), stored[k].float()) for k in stored)
    low = load_transformer(reference_files.transformer_pth, block_dtype=torch.bfloat16)
    assert low.block_dtype == torch.bfloat16 and low.head.weight.dtype == torch.float32
    assert torch.equal(low.blocks[0].sa.mat_qkv.weight, stored["block_chunks.0.module.0.sa.mat_qkv.weight"])


def test_every_file_layout_loads_identically(reference_files):
    """safetensors, a plain `.pth` and a sharded folder hold the same tensors."""
    a = load_transformer(reference_files.transformer_pth).state_dict()
    for other in (reference_files.transformer_safetensors, reference_files.transformer_sharded):
        b = load_transformer(other).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_both_scale_mul_layouts_and_sharded_folders_load(reference_files, reference_model, reference_case, reference_cases, sharded_writer, tmp_path):
    state = load_file(str(reference_files.transformer_safetensors))
    flash_layout = {k: (v.reshape(1, 1, -1, 1) if k.endswith("scale_mul_1H11") else v) for k, v in state.items()}
    model = InfinityModel(load_transformer(sharded_writer(flash_layout, tmp_path)), reference_model.vae)
    case = reference_case("square")
    logits, _ = _teacher_force(model, case, reference_cases["square"])
    assert _relative_error(logits[-1], case["logits_6"]) <= LOGITS_RTOL


def test_official_names_round_trip(reference_files):
    model = load_transformer(reference_files.transformer_pth)
    original = load_file(str(reference_files.transformer_safetensors))
    exported = official_state(model, block_chunks=2)
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k].reshape(original[k].shape), original[k].float()) for k in original)


def test_incomplete_or_wrong_checkpoint_lists_the_problem(reference_files, tmp_path):
    state = load_file(str(reference_files.transformer_safetensors))
    broken = dict(state)
    del broken["head.bias"]
    broken["extra.weight"] = torch.zeros(3)
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(TTSVarError) as err:
        load_transformer(tmp_path / "broken.safetensors")
    assert "head.bias" in str(err.value) and "extra.weight" in str(err.value)
    with pytest.raises(TTSVarError, match="not an Infinity transformer"):
        load_transformer(reference_files.vae_pth)


def test_missing_file_names_file_folder_and_source(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        load_transformer(tmp_path / "infinity_2b_reg.pth")
    message = str(err.value)
    assert "infinity_2b_reg.pth" in message and str(tmp_path) in message and "FoundationVision/Infinity" in message


def test_pickled_code_is_never_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed!",))

    torch.save({"w": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(TTSVarError, match="plain tensors"):
        load_transformer(tmp_path / "evil.pth")


def test_mismatched_transformer_and_vae_are_refused(reference_files):
    from ttsvar.infinity.vae import random_bsq_vae

    with pytest.raises(TTSVarError, match="do not belong together"):
        InfinityModel(load_transformer(reference_files.transformer_pth), random_bsq_vae(0, codebook_dim=16))


def test_bfloat16_blocks_stay_close_to_float32(reference_model, reference_files, reference_case, reference_cases):
    bf16 = load_infinity(reference_files.transformer_pth, reference_files.vae_pth, device="cpu", dtype=torch.bfloat16)
    assert bf16.transformer.block_dtype == torch.bfloat16 and bf16.transformer.head.weight.dtype == torch.float32
    case = reference_case("square")
    # Four scales (1+4+16+36 tokens) exercise every block, the KV cache and guidance; CPUs without
    # native bf16 emulate it, so the full 7 scales would cost seconds for no extra coverage.
    ref, _ = _teacher_force(reference_model, case, reference_cases["square"], num_scales=4)
    low, run = _teacher_force(bf16, case, reference_cases["square"], num_scales=4)
    assert run.cache.keys[0].dtype == torch.bfloat16
    # bf16 keeps 8 significant bits (rounding 2^-9 ≈ 2e-3 per op): measured 3.1e-3 of the largest
    # logit, at 4 scales as at 7. Blocks left in float32 give exactly 0.
    assert 0 < _relative_error(low[-1], ref[-1]) < 0.03


def test_grids_cover_every_template_and_budget():
    assert len(ASPECT_TEMPLATES) == 15
    square = resolve_grid(aspect=1.0, pn="1M")
    assert square.num_scales == 13 and square.total_tokens == 10521 and square.pixel_size == (1024, 1024)
    wide = resolve_grid(width=320, height=240)
    assert wide.template == 0.75 and wide.pn == "0.06M" and wide.final_grid == (15, 20)
    assert resolve_grid(pn="0.25M").num_scales == 10 and resolve_grid(pn="0.60M").num_scales == 12
    assert nearest_template(0.7) == 0.666
    with pytest.warns(UserWarning, match="nearest, 3.0"):
        assert nearest_template(10) == 3.0
    tall = resolve_grid(aspect=3.0, pn="1M")
    assert tall.final_grid == (111, 37) and tall.rope_grid == (111, 37)
    for template in ASPECT_TEMPLATES:
        g = resolve_grid(aspect=template, pn="1M")
        assert abs(g.final_grid[0] / g.final_grid[1] - template) < 0.01


@pytest.mark.parametrize("kwargs, match", [
    (dict(pn="2M"), "pn"), (dict(aspect=-1.0), "positive"), (dict(width=0, height=10), "positive"),
])
def test_bad_sizes_are_clear_errors(kwargs, match):
    with pytest.raises(TTSVarError, match=match):
        resolve_grid(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cfg=[1.0, 2.0]), "cfg list"), (dict(tau=0.0), "tau"), (dict(top_p=1.5), "top_p"), (dict(cfg_layer=-4), "cfg_layer"),
])
def test_bad_sampling_settings_are_clear_errors(kwargs, match):
    with pytest.raises(TTSVarError, match=match):
        SamplingSettings.build(7, depth=4, **kwargs)


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    """A tiny random T5 encoder and a word-level tokenizer, saved like a Hugging Face folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate("a red fox in the snow".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)).save_pretrained(folder)
    return folder


def test_t5_encoder_keeps_real_tokens_and_negative_prompt(t5_folder):
    from ttsvar.infinity.text import load_text_encoder

    encoder = load_text_encoder(t5_folder)
    condition = encoder.encode("a red fox", negative="snow")
    assert condition.features.shape == (4, 32)  # three words and EOS, no padding
    assert condition.negative_features.shape == (2, 32)
    assert torch.equal(encoder.encode("a red fox").features, condition.features)


def test_prompt_over_512_tokens_is_truncated_with_a_warning(t5_folder):
    from ttsvar.infinity.text import load_text_encoder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = load_text_encoder(t5_folder).features(" ".join(["fox"] * 600))
    assert features.shape[0] == 512
    assert any("512" in str(w.message) for w in caught)


def test_text_encoder_errors(tmp_path):
    from ttsvar.infinity.text import HashTextEncoder, load_text_encoder

    with pytest.raises(MissingWeightsError, match="flan-t5-xl"):
        load_text_encoder(tmp_path)
    with pytest.raises(TTSVarError, match="prompt is empty"):
        HashTextEncoder(8).encode("   ")


def test_spatial_patchify_layout_generates_through_the_8b_path():
    from ttsvar.decode import decode_images
    from ttsvar.infinity.tiny import random_model, tiny_text_encoder
    from ttsvar.sampler import sample_scales, start_state
    from ttsvar.schedule import BatchSchedule

    model = random_model("tiny-patchify")
    assert model.patchify and model.vae.stride == 8 and model.transformer.arch.token_bits == 56
    grid = resolve_grid(pn="0.06M")
    state = start_state(model, tiny_text_encoder(model).encode("a cat"), BatchSchedule((1,) * 7), grid)
    state = sample_scales(state)
    assert state.bits[-1].shape == (1, 16, 16, 56) and state.code_map.shape == (1, 14, 32, 32)
    assert decode_images(state).shape == (1, 3, 256, 256)


def test_bad_device_and_dtype_requests_are_clear(reference_files):
    with pytest.raises(TTSVarError, match="dtype"):
        load_infinity(reference_files.transformer_pth, reference_files.vae_pth, device="cpu", dtype=torch.int8)
    if not torch.cuda.is_available():
        with pytest.raises(TTSVarError, match="no CUDA"):
            load_infinity(reference_files.transformer_pth, reference_files.vae_pth, device="cuda")
