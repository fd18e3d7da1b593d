"""The training forward (every scale at once, block-causal) against the inference path (KV cache)."""

from __future__ import annotations

import torch

from ttsvar.infinity.bsq import self_correcting_targets
from ttsvar.infinity.generate import SamplingSettings, teacher_force
from ttsvar.infinity.grids import resolve_grid
from ttsvar.infinity.tiny import random_model
from ttsvar.infinity.training import SequenceLayout, encode_text_batch, forward_sequence, teacher_inputs


def _bits(grid, batch: int, d: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, (batch, h, w, d), generator=g, dtype=torch.uint8) for h, w in grid.scales]


def test_block_causal_forward_equals_kv_cache_teacher_forcing():
    model = random_model("tiny", seed=3)
    t = model.transformer
    grid = resolve_grid(aspect=1.0, pn="0.06M")
    g = torch.Generator().manual_seed(0)
    texts = [torch.randn(n, t.arch.text_channels, generator=g) for n in (5, 9)]  # unequal lengths: padding masked
    bits = _bits(grid, len(texts), t.arch.token_bits, seed=1)
    settings = SamplingSettings.build(grid.num_scales, cfg=1.0, tau=1.0)
    expected, _ = teacher_force(model, grid, settings, texts, bits)
    layout = SequenceLayout.build(grid, t.arch.head_dim)
    with torch.no_grad():
        logits = forward_sequence(t, encode_text_batch(t, texts), teacher_inputs(bits), layout)
    # float32 both ways; the same weights and ops, only the attention is batched differently
    # (one masked product over 521 keys vs. per-scale products over the cached keys, and padded vs.
    # unpadded text keys), which reorders float32 sums: differences of a few ulp of logits ~O(1).
    torch.testing.assert_close(logits, torch.cat(expected, dim=1), rtol=1e-4, atol=1e-4)


def test_unflipped_self_correction_inputs_are_teacher_inputs():
    """`self_correcting_targets` with no flips gives the same inputs as teacher forcing its own bits."""
    grid = resolve_grid(aspect=1.0, pn="0.06M")
    features = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    inputs, targets = self_correcting_targets(features, grid.scales, 0.0, torch.Generator().manual_seed(0))
    splits = torch.split(targets, list(grid.token_counts), dim=1)
    bits = [s.view(2, h, w, 16) for s, (h, w) in zip(splits, grid.scales)]
    torch.testing.assert_close(inputs, teacher_inputs(bits), rtol=1e-6, atol=1e-6)


def test_coarse_prefix_is_computed_as_in_the_whole_sequence():
    """Block-causal: the first scales do not see the later ones, so a prefix pass gives their logits."""
    model = random_model("tiny", seed=4)
    t = model.transformer
    grid = resolve_grid(aspect=1.0, pn="0.06M")
    g = torch.Generator().manual_seed(2)
    texts = [torch.randn(6, t.arch.text_channels, generator=g)]
    inputs = teacher_inputs(_bits(grid, 1, t.arch.token_bits, seed=5))
    layout = SequenceLayout.build(grid, t.arch.head_dim)
    prefix = grid.token_offset(4)
    with torch.no_grad():
        text = encode_text_batch(t, texts)
        whole = forward_sequence(t, text, inputs, layout)
        part = forward_sequence(t, text, inputs[:, : prefix - 1], layout.prefix(prefix))
    # same ops on fewer keys: float32 reordering only (see the test above)
    torch.testing.assert_close(part, whole[:, :prefix], rtol=1e-4, atol=1e-4)
