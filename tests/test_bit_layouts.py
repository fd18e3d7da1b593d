"""Bits and code maps are checked where they enter: a known layout is converted, any other shape
is refused with the expected one; nothing is reshaped blindly into a misread layout.

The 8B case matters most: a 56-bit token is a 2x2 cell of 14-bit VAE codes, and the official code
keeps its bits as cells `[B, 1, 2h, 2w, 14]` (`gt_ls_Bl`), which hold exactly as many numbers as
the tokens `[B, h, w, 56]` the transformer reads.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.codes import add_scale, bits_to_codes, resize_codes, summed_codes_from_bits, unpatchify_bits
from ttsvar.infinity.generate import SamplingSettings, teacher_force

PREFIX = 3  # scales teacher-forced: (1,1) (2,2) (4,4) of the 0.06M grid, enough for every check


@pytest.fixture(scope="module")
def patchify_model():
    from ttsvar.infinity.tiny import random_model

    return random_model("tiny-patchify", seed=0)


def _random_tokens(grid, batch: int, token_bits: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, (batch, h, w, token_bits), generator=g) for h, w in grid.scales[:PREFIX]]


def _force(model, grid, bits, prompts):
    settings = SamplingSettings.build(grid.num_scales, depth=model.transformer.arch.depth)
    return teacher_force(model, grid, settings, prompts, bits)


def _prompts(model, n: int) -> list[torch.Tensor]:
    from ttsvar.infinity.tiny import tiny_text_encoder

    encoder = tiny_text_encoder(model)
    return [encoder.encode(p).features for p in ("a red fox", "a cat in the snow")[:n]]


def test_8b_teacher_forcing_reads_the_official_cell_layout(patchify_model, grid):
    """Official `[B, 1, 2h, 2w, 14]` cells give exactly the logits and code map of the
    `[B, h, w, 56]` tokens they pack into."""
    prompts = _prompts(patchify_model, 2)
    tokens = _random_tokens(grid, 2, 56)
    cells = [unpatchify_bits(t).unsqueeze(1) for t in tokens]
    assert tuple(cells[2].shape) == (2, 1, 8, 8, 14)
    ref_logits, ref_run = _force(patchify_model, grid, tokens, prompts)
    logits, run = _force(patchify_model, grid, cells, prompts)
    for k, (a, b) in enumerate(zip(logits, ref_logits)):
        assert torch.equal(a, b), f"scale {k}"
    assert torch.equal(run.summed, ref_run.summed)


@pytest.mark.parametrize("layout", ["channels first", "flat tokens", "transposed cells", "one batch too many"])
def test_teacher_forcing_refuses_other_layouts(patchify_model, grid, layout):
    tokens = _random_tokens(grid, 1, 56)
    wrong = {
        "channels first": lambda t: t.permute(0, 3, 1, 2),  # [B, 56, h, w]
        "flat tokens": lambda t: t.flatten(1, 2),  # [B, h*w, 56]
        "transposed cells": lambda t: unpatchify_bits(t).transpose(-1, -2),  # [B, 2h, 14, 2w]
        "one batch too many": lambda t: torch.cat([t, t]),
    }[layout]
    bits = tokens[:2] + [wrong(tokens[2])]
    with pytest.raises(TTSVarError, match=r"bits of scale 2 .*\[1, 4, 4, 56\] \(tokens\) or \[1, 8, 8, 14\]"):
        _force(patchify_model, grid, bits, _prompts(patchify_model, 1))


def test_teacher_forcing_refuses_values_other_than_bits_and_too_many_scales(tiny_model, grid):
    prompts = _prompts(tiny_model, 1)
    tokens = [torch.randint(0, 2, (1, h, w, 32)) for h, w in grid.scales]
    with pytest.raises(TTSVarError, match="0/1 integers or booleans, got torch.float32"):
        _force(tiny_model, grid, [t.float() * 2 - 1 for t in tokens], prompts)  # codes, not bits
    with pytest.raises(TTSVarError, match=r"must be 0/1, got values in 0\.\.3"):
        _force(tiny_model, grid, tokens[:1] + [tokens[1] * 3], prompts)
    with pytest.raises(TTSVarError, match="scale 7, but the grid has 7 scales"):
        _force(tiny_model, grid, tokens + tokens[-1:], prompts)


def test_as_token_bits_converts_cells_and_names_the_expected_shape():
    from ttsvar.infinity.codes import as_token_bits

    tokens = torch.randint(0, 2, (2, 3, 5, 56))
    cells = unpatchify_bits(tokens)
    for official in (cells, cells.unsqueeze(1), tokens.unsqueeze(1)):  # with and without the time axis
        assert torch.equal(as_token_bits(official, (3, 5), 56, patchify=True), tokens)
    assert torch.equal(as_token_bits(tokens.bool(), (3, 5), 56, patchify=True), tokens.bool())
    with pytest.raises(TTSVarError, match=r"expects \[2, 3, 5, 56\] \(tokens\), optionally"):
        as_token_bits(cells, (3, 5), 56, patchify=False)  # a 2B-style model has no cell layout


def test_state_bits_and_code_map_are_checked(tiny_model, tiny_condition, grid):
    from ttsvar.sampler import sample_scales, start_state
    from ttsvar.schedule import BatchSchedule

    state = sample_scales(start_state(tiny_model, tiny_condition, BatchSchedule((2,) * 7), grid), 3)
    bits = list(state.bits)
    with pytest.raises(TTSVarError, match=r"bits of scale 2 must be \[2, 4, 4, 32\]"):
        replace(state, bits=tuple(bits[:2] + [bits[2].permute(0, 3, 1, 2)]))
    with pytest.raises(TTSVarError, match=r"bits of scale 1 must be \[2, 2, 2, 32\]"):
        replace(state, bits=tuple(bits[:1] + [bits[1][:1]] + bits[2:]))
    with pytest.raises(TTSVarError, match=r"code map must be \[2, 32, 16, 16\]"):
        replace(state, code_map=state.code_map[:, :, :8])
    with pytest.raises(TTSVarError, match="bits of 8 scales but its grid has 7"):
        replace(state, bits=tuple(bits + bits + bits[:2]))


def test_code_functions_refuse_bits_for_codes_and_codes_for_bits():
    bits = torch.randint(0, 2, (1, 4, 4, 32))
    codes = bits_to_codes(bits)
    with pytest.raises(TTSVarError, match="0/1 integers or booleans"):
        bits_to_codes(codes.permute(0, 2, 3, 1))
    with pytest.raises(TTSVarError, match="floating-point code map"):
        resize_codes(bits.permute(0, 3, 1, 2), (8, 8))
    with pytest.raises(TTSVarError, match="floating-point code map"):
        add_scale(None, bits.permute(0, 3, 1, 2), last=False, final_size=(8, 8))
    # channels-first bits of growing scales: the widths differ, so they are not [B, h, w, d]
    with pytest.raises(TTSVarError, match="same B and d"):
        summed_codes_from_bits([torch.randint(0, 2, (1, 32, s, s)) for s in (1, 2, 4)])
    with pytest.raises(TTSVarError, match="largest grid"):
        summed_codes_from_bits([torch.randint(0, 2, (1, s, s, 32)) for s in (4, 2)])
    with pytest.raises(TTSVarError, match="go in with patchify=False"):
        summed_codes_from_bits([torch.randint(0, 2, (1, 1, s, s, 14)) for s in (2, 4)], patchify=True)


def test_vae_decode_bits_reads_8b_tokens_and_cells_alike(patchify_model):
    vae = patchify_model.vae
    g = torch.Generator().manual_seed(3)
    tokens = [torch.randint(0, 2, (1, 1, 1, 56), generator=g)]  # one 1x1 scale: 2x2 cells of 14 bits
    with torch.inference_mode():
        from_tokens = vae.decode_bits(tokens)
        from_cells = vae.decode_bits([unpatchify_bits(t) for t in tokens])
    assert torch.equal(from_tokens, from_cells)
    with pytest.raises(TTSVarError, match=r"expects bits \[B, h, w, 14\] \(or 8B tokens \[B, h, w, 56\]\)"):
        vae.decode_bits([torch.randint(0, 2, (1, 2, 2, 32))])
