"""BSQ VAE and code-map tests against the official reference outputs (tiny random model, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ttsvar.errors import MissingWeightsError, TTSVarError
from ttsvar.infinity.codes import (
    add_scale,
    bits_to_codes,
    next_scale_input,
    patchify_bits,
    patchify_map,
    resize_codes,
    summed_codes_from_bits,
    unpatchify_bits,
    unpatchify_map,
)
from ttsvar.infinity.vae import BSQVAE, canonical_vae_keys, detect_vae_config, load_vae, random_bsq_vae

CASES = ["square", "wide", "two_prompts", "square_hiddencfg"]

# The random-weight reference VAE amplifies float32 rounding of its input ~200× (1e-7 of noise on
# the codes moves pixels by 2e-5; float32 and float64 decodes differ by 2e-5), so two float32
# decodes that accumulate in another order (other SIMD kernels, thread counts, batch sizes) agree
# to ~2e-5 of the image's magnitude (1). Measured against the official images: ≤6.3e-5 under
# SSE4.1/AVX2 × 1/2 threads. Bugs (padding, upsampling, norm eps, channel order) move pixels ≥1e-2.
IMAGE_ATOL = 3e-4


@pytest.fixture(scope="module")
def ref_vae(reference_files) -> BSQVAE:
    return load_vae(reference_files.vae_pth)


@pytest.fixture(scope="module")
def ref_state(reference_files) -> dict[str, torch.Tensor]:
    from ttsvar.infinity.checkpoint import read_state_dict

    return read_state_dict(reference_files.vae_pth)


# ---- VAE: parity with the official decoder -------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_decode_matches_official(ref_vae: BSQVAE, reference_case, case: str) -> None:
    data = reference_case(case)
    codes = data["summed_codes"]
    before = codes.clone()
    with torch.inference_mode():
        img = ref_vae.decode(codes)
    assert torch.equal(codes, before)  # input untouched
    assert img.shape == data["image"].shape
    assert img.dtype == torch.float32
    err = (img - data["image"]).abs().max().item()
    assert err <= IMAGE_ATOL, f"{case}: max abs error {err:.3g}"
    assert img.min() >= -1 and img.max() <= 1


def test_detects_architecture(ref_vae: BSQVAE) -> None:
    cfg = ref_vae.cfg
    assert (cfg.base_ch, cfg.ch_mult, cfg.num_res_blocks, cfg.codebook_dim) == (24, (1, 1, 2, 2, 4), 2, 32)
    assert ref_vae.stride == 16 and ref_vae.codebook_dim == 32
    assert cfg.up_levels == (1, 2, 3, 4)
    assert cfg.encoder is not None and cfg.encoder.down_levels == (0, 1, 2, 3)
    assert torch.equal(ref_vae.bit_mask, 2 ** torch.arange(31, -1, -1))
    assert not any(p.requires_grad for p in ref_vae.parameters())


def test_chunked_decode_equals_full(ref_vae: BSQVAE, reference_case) -> None:
    # two different images; an 8×8 corner of their codes (128² pixels) is enough to see rows mixed up
    codes = reference_case("two_prompts")["summed_codes"][:, :, :8, :8].contiguous()
    with torch.inference_mode():
        full = ref_vae.decode(codes)
        parts = ref_vae.decode_chunked(codes, 1)
        five_d = ref_vae.decode(codes.unsqueeze(2), max_batch=1)
    # Batch-1 and batch-2 convolutions accumulate in another order (see IMAGE_ATOL): measured 2e-5
    # of the output's magnitude on SSE4.1/AVX2 × 1/2 threads; swapped or mixed rows give O(1).
    atol = 2e-4 * full.abs().max().item()
    torch.testing.assert_close(parts, full, rtol=0, atol=atol)
    torch.testing.assert_close(five_d, full, rtol=0, atol=atol)
    assert (full[0] - full[1]).abs().max() > 0.1  # the two rows differ, so a mix-up cannot pass


def test_safetensors_copy_loads_identically(ref_vae: BSQVAE, ref_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "vae.safetensors"
    save_file({k: v.contiguous().clone() for k, v in ref_state.items()}, str(path))
    other = load_vae(path)
    assert other.cfg == ref_vae.cfg
    a, b = ref_vae.state_dict(), other.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unwrapped_names_load(ref_vae: BSQVAE, ref_state, tmp_path: Path) -> None:
    """`X.weight` for `X.conv.weight` / `X.norm.weight`, as the official load_cnn accepts."""
    from safetensors.torch import save_file

    bare = {k.replace(".conv.weight", ".weight").replace(".conv.bias", ".bias")
            .replace(".norm.weight", ".weight").replace(".norm.bias", ".bias"): v.clone()
            for k, v in ref_state.items() if not k.startswith("quantize.")}
    assert "decoder.conv_in.weight" in bare and "decoder.up.4.upsample.conv.weight" in bare
    assert canonical_vae_keys(bare).keys() == ref_state.keys()
    path = tmp_path / "bare.safetensors"
    save_file(bare, str(path))
    other = load_vae(path)
    a, b = ref_vae.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_key_is_listed(ref_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in ref_state.items()}
    del state["decoder.up.2.block.1.conv1.conv.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(TTSVarError, match=r"decoder\.up\.2\.block\.1\.conv1\.conv\.bias"):
        load_vae(tmp_path / "cut.safetensors")


def test_wrong_shape_is_listed(ref_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in ref_state.items()}
    state["decoder.mid.block_1.conv2.conv.weight"] = torch.zeros(128, 128, 1, 1)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(TTSVarError, match=r"decoder\.mid\.block_1\.conv2\.conv\.weight"):
        load_vae(tmp_path / "bad.safetensors")


def test_extra_key_is_listed(ref_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in ref_state.items()}
    state["decoder.mid.attn_1.q.conv.weight"] = torch.zeros(128, 128, 1, 1)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(TTSVarError, match=r"attn_1\.q\.conv\.weight"):
        load_vae(tmp_path / "extra.safetensors")


def test_not_a_vae_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"block_chunks.0.module.0.sa.mat_qkv.weight": torch.zeros(4, 4)}, str(tmp_path / "t.safetensors"))
    with pytest.raises(TTSVarError, match="not an Infinity BSQ VAE"):
        load_vae(tmp_path / "t.safetensors")


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as info:
        load_vae(tmp_path / "infinity_vae_d32reg.pth")
    msg = str(info.value)
    assert "infinity_vae_d32reg.pth" in msg and str(tmp_path) in msg
    assert "FoundationVision/Infinity" in msg and "infinity_vae_d56_f8_14_patchify.pth" in msg


# ---- detection on other layouts (random weights, no files) ---------------------------------


@pytest.mark.parametrize(
    "d, base, mult, stride",
    [(32, 32, (1, 2, 4, 4, 4), 16), (14, 32, (1, 2, 4, 4), 8)],  # 2B layout (narrow), 8B layout
)
def test_detection_round_trip(d: int, base: int, mult: tuple, stride: int) -> None:
    model = random_bsq_vae(1, codebook_dim=d, base_ch=base, ch_mult=mult, num_res_blocks=1)
    cfg = detect_vae_config(model.state_dict())
    assert cfg == model.cfg and cfg.stride == stride and cfg.codebook_dim == d
    with torch.inference_mode():
        img = model.decode(torch.randn(1, d, 2, 3))
    assert img.shape == (1, 3, 2 * stride, 3 * stride)


@pytest.mark.parametrize(
    "d, mult, stride", [(32, (1, 2, 4, 4, 4), 16), (14, (1, 2, 4, 4), 8)]  # 2B d32reg, 8B d56_f8_14
)
def test_detection_full_size_layouts(d: int, mult: tuple, stride: int) -> None:
    """The real 2B/8B layouts (base 128), built on the meta device: shapes only, no memory."""
    from ttsvar.infinity.vae import VAEConfig

    with torch.device("meta"):
        model = BSQVAE(VAEConfig.standard(d, 128, mult, 2))
    cfg = detect_vae_config(model.state_dict())
    assert (cfg.base_ch, cfg.ch_mult, cfg.num_res_blocks, cfg.codebook_dim, cfg.stride) == (128, mult, 2, d, stride)
    assert model.state_dict()["decoder.conv_in.conv.weight"].shape == (128 * mult[-1], d, 3, 3)


def test_random_vae_deterministic() -> None:
    state_before = torch.random.get_rng_state()
    a = random_bsq_vae(7, base_ch=32, ch_mult=(1, 2), num_res_blocks=1)
    b = random_bsq_vae(7, base_ch=32, ch_mult=(1, 2), num_res_blocks=1)
    c = random_bsq_vae(8, base_ch=32, ch_mult=(1, 2), num_res_blocks=1)
    assert torch.equal(torch.random.get_rng_state(), state_before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["decoder.conv_in.conv.weight"], sc["decoder.conv_in.conv.weight"])


def test_bf16_checkpoint_is_upcast_exactly_unless_bf16_is_asked_for(ref_vae: BSQVAE, reference_files) -> None:
    """The release stores bf16: float32 (the default) widens each value exactly; bf16 keeps the file's values."""
    from safetensors.torch import load_file

    stored = load_file(str(reference_files.vae_safetensors))
    assert stored["decoder.conv_in.conv.weight"].dtype == torch.bfloat16
    bf16 = load_vae(reference_files.vae_pth, dtype=torch.bfloat16)
    for model, dtype in ((ref_vae, torch.float32), (bf16, torch.bfloat16)):
        state = model.state_dict()
        assert all(state[k].dtype == dtype for k in stored if stored[k].is_floating_point())
        assert all(torch.equal(state[k], stored[k].to(dtype)) for k in stored)


def test_bf16_decode_close_to_fp32(ref_vae: BSQVAE, reference_files, reference_case) -> None:
    # a 4×4 corner of the codes (64² pixels): every layer runs, and emulated bf16 (CPUs without
    # native bf16) stays well under a second
    codes = reference_case("square")["summed_codes"][:, :, :4, :4].contiguous()
    bf16 = load_vae(reference_files.vae_pth, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and bf16.bit_mask.dtype == torch.int64
    with torch.inference_mode():
        ref = ref_vae.decode(codes)
        out = bf16.decode(codes)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    # bf16 activations (8 significant bits) through ~30 convolutions of a random VAE that amplifies
    # rounding: measured mean 8e-3, max 9e-2 on the [-1, 1] range (the same on the whole 16×16
    # map). Zero would mean bf16 was ignored; a broken bf16 path (overflow, wrong norm) gives O(1).
    diff = (out - ref).abs()
    assert 0 < diff.mean() < 0.02 and diff.max() < 0.25


def test_encode_shapes_and_consistency() -> None:
    model = random_bsq_vae(3, codebook_dim=32, base_ch=32, ch_mult=(1, 2, 4), num_res_blocks=1)
    img = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.inference_mode():
        bits, summed = model.encode(img, [(1, 1), (2, 3), (4, 6), (8, 12)])
    assert [tuple(b.shape) for b in bits] == [(2, 1, 1, 32), (2, 2, 3, 32), (2, 4, 6, 32), (2, 8, 12, 32)]
    # the same additions of ±1/√d codes, resized by the same kernels: float32 rounding of O(1) sums
    torch.testing.assert_close(summed_codes_from_bits(bits), summed, rtol=0, atol=1e-6)


# ---- codes --------------------------------------------------------------------------------


def test_bits_to_codes_values() -> None:
    d = 32
    bits = torch.randint(0, 2, (2, 3, 4, d))
    codes = bits_to_codes(bits)
    assert codes.shape == (2, d, 3, 4) and codes.dtype == torch.float32
    expected = (2 * bits.float() - 1) / d**0.5
    # ±1/√d computed two ways in float32 (one rounding each) and a norm of d such terms: a few ulps
    torch.testing.assert_close(codes, expected.permute(0, 3, 1, 2), rtol=0, atol=1e-7)
    torch.testing.assert_close(codes.norm(dim=1), torch.ones(2, 3, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(bits_to_codes(bits.bool()), codes)
    torch.testing.assert_close(bits_to_codes(bits.unsqueeze(1)), codes)  # official [B, 1, h, w, d]


@pytest.mark.parametrize("case", CASES)
def test_summed_codes_from_reference_bits(reference_case, case: str) -> None:
    data = reference_case(case)
    scales = data["scales"]
    bits = [data[f"bits_{k}"] for k in range(scales.shape[0])]
    for k, b in enumerate(bits):
        assert tuple(b.shape[2:4]) == tuple(scales[k, 1:].tolist())
    kept = [b.clone() for b in bits]
    summed = summed_codes_from_bits(bits)
    assert all(torch.equal(a, b) for a, b in zip(bits, kept))
    # float32 sums of ±1/√32 codes resized bilinearly: measured ≤3.8e-7 on codes of magnitude ~1
    err = (summed - data["summed_codes"]).abs().max().item()
    assert err <= 1e-5, f"{case}: {err:.3g}"

    # the same step by step with add_scale, from the official (1, h, w) grids
    final = tuple(scales[-1, 1:].tolist())
    run = None
    for k, b in enumerate(bits):
        run = add_scale(run, bits_to_codes(b), last=k == len(bits) - 1, final_size=final)
    # the encoder's own running sum, the same operations in the same order: bit-identical
    torch.testing.assert_close(run, summed, rtol=0, atol=0)


def test_bilinear_equals_official_trilinear() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, generator=g)
    for size in [(16, 16), (15, 20), (6, 8), (2, 3), (1, 1), (7, 5)]:
        official = F.interpolate(x.unsqueeze(2), size=(1, *size), mode="trilinear", align_corners=False)
        # bilinear vs trilinear with t = 1: the same taps, summed in another order (float32 ulps of O(1))
        torch.testing.assert_close(resize_codes(x, size), official.squeeze(2), rtol=0, atol=1e-6)
        torch.testing.assert_close(resize_codes(x.unsqueeze(2), size), official.squeeze(2), rtol=0, atol=1e-6)


def test_add_scale_is_pure_and_checks() -> None:
    summed = torch.randn(1, 4, 6, 6)
    codes = torch.randn(1, 4, 2, 2)
    keep_s, keep_c = summed.clone(), codes.clone()
    out = add_scale(summed, codes, last=False)
    assert torch.equal(summed, keep_s) and torch.equal(codes, keep_c)
    torch.testing.assert_close(out, summed + resize_codes(codes, (6, 6)))
    with pytest.raises(TTSVarError):
        add_scale(summed, codes, last=True)  # the last scale must be on the final grid
    with pytest.raises(TTSVarError):
        add_scale(None, codes, last=False)  # needs final_size
    first = add_scale(None, codes, last=False, final_size=(6, 6))
    torch.testing.assert_close(first, resize_codes(codes, (6, 6)))


def test_next_scale_input_shape_and_order() -> None:
    summed = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    same = next_scale_input(summed, (4, 6))
    assert same.shape == (2, 24, 3)
    # row-major tokens, channels last: token y*w + x holds summed[:, :, y, x]
    for y, x in [(0, 0), (0, 5), (1, 0), (3, 5)]:
        assert torch.equal(same[:, y * 6 + x], summed[:, :, y, x])
    small = next_scale_input(summed, (2, 3))
    official = F.interpolate(summed.unsqueeze(2), size=(1, 2, 3), mode="trilinear").squeeze(2)
    # our bilinear resize vs the official trilinear call: a 2× downsample averages four integers, exact
    # in float32 in any order, so the tolerance admits no real difference
    torch.testing.assert_close(small, official.flatten(2).transpose(1, 2), rtol=0, atol=1e-6)


def test_patchify_bits_round_trip_and_order() -> None:
    bits = torch.randint(0, 2, (2, 3, 5, 4 * 14))
    cells = unpatchify_bits(bits)
    assert cells.shape == (2, 6, 10, 14)
    assert torch.equal(patchify_bits(cells), bits)
    # official: permute(0,3,1,2) → pixel_shuffle(2) → permute(0,2,3,1); channel c*4 + i*2 + j → cell (2y+i, 2x+j)
    official = F.pixel_shuffle(bits.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    assert torch.equal(cells, official)
    y, x, c, i, j = 1, 3, 5, 1, 0
    assert cells[0, 2 * y + i, 2 * x + j, c] == bits[0, y, x, c * 4 + i * 2 + j]


def test_patchify_map_and_next_scale_input() -> None:
    m = torch.randn(1, 14, 8, 12)
    packed = patchify_map(m)
    assert packed.shape == (1, 56, 4, 6)
    assert torch.equal(unpatchify_map(packed), m)
    # patchified next input: resize to the VAE grid (2h, 2w), pixel_unshuffle(2), flatten
    tok = next_scale_input(m, (2, 3), patchify=True)
    ref = F.pixel_unshuffle(F.interpolate(m.unsqueeze(2), size=(1, 4, 6), mode="trilinear").squeeze(2), 2)
    # the same resize and a pure permutation: float32 ulps of O(1) values
    torch.testing.assert_close(tok, ref.flatten(2).transpose(1, 2), rtol=0, atol=1e-6)
    # bits → codes commutes with the patchify reshape
    bits = torch.randint(0, 2, (1, 2, 3, 56))
    codes_cells = bits_to_codes(unpatchify_bits(bits))
    assert codes_cells.shape == (1, 14, 4, 6)
