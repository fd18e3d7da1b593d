"""The transformer's training forward: every scale at once, teacher-forced, with a block-causal mask.

Infinity trains on the whole token sequence of an image in one pass (official `Infinity.forward`):
the start token and the inputs of scales 1..K-1 (the running code map resized to each grid) go
through the blocks together, and a token of scale i attends to every token of the scales ≤ i,
which is exactly what the KV cache gives a token at inference. This module drives the very same
`Block`, `SelfAttention`, `CrossAttention` and head modules as `InfinityTransformer.forward_scale`
(the mask takes the KV cache's place), so training and inference cannot drift; a test checks that
the logits of both paths agree.

Texts come one per row at their own lengths (captions differ): they are padded and the padding
is masked out of cross-attention, which equals attending to each text alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ttsvar.infinity.codes import add_scale, bits_to_codes, next_scale_input
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.rope import rope_tables
from ttsvar.infinity.transformer import InfinityTransformer


class BlockCausal:
    """Stands in for the KV cache in a full-sequence pass: keys are this pass's own, masked by scale.

    The last scale's queries see every key, so they are attended without a mask and the mask covers
    only the earlier scales: a quarter less attention work for a 7-scale sequence, the same result.
    """

    def __init__(self, attn_mask: torch.Tensor):
        self.last_start = int(attn_mask.all(dim=1).long().argmax())
        self.head_mask = attn_mask[: self.last_start, : self.last_start]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return k.to(v.dtype), v

    def advance(self, tokens: int) -> None:
        pass

    def attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        n = self.last_start
        if n == 0:  # one scale: nothing is masked
            return F.scaled_dot_product_attention(q, keys, values, scale=1.0)
        head = F.scaled_dot_product_attention(q[:, :, :n], keys[:, :, :n], values[:, :, :n], attn_mask=self.head_mask,
                                              scale=1.0)
        return torch.cat([head, F.scaled_dot_product_attention(q[:, :, n:], keys, values, scale=1.0)], dim=2)


@dataclass(frozen=True)
class SequenceLayout:
    """Per-token facts of a grid's sequence: scale index, RoPE table, block-causal mask, loss weight."""

    scale_of_token: torch.Tensor  # [L] int64
    rope: torch.Tensor  # [2, L, head_dim/2]
    attn_mask: torch.Tensor  # [L, L] bool: True where query i may attend to key j
    loss_weight: torch.Tensor  # [L] float32, see `bitwise_loss`

    @classmethod
    def build(cls, grid: ScaleGrid, head_dim: int, device: torch.device | str = "cpu") -> "SequenceLayout":
        counts = torch.tensor(grid.token_counts)
        scale_of_token = torch.repeat_interleave(torch.arange(grid.num_scales), counts).to(device)
        mask = scale_of_token[:, None] >= scale_of_token[None, :]
        rope = torch.cat(rope_tables(grid, head_dim, device), dim=1)
        areas = counts.to(torch.float32)
        weight = (areas[-1] / areas).sqrt().to(device)[scale_of_token]
        return cls(scale_of_token, rope, mask, weight)

    def prefix(self, tokens: int) -> "SequenceLayout":
        """The layout of the first `tokens` tokens (whole scales): with the block-causal mask they are
        computed exactly as in the whole sequence, so a model can be trained on its coarse scales alone."""
        return SequenceLayout(self.scale_of_token[:tokens], self.rope[:, :tokens],
                              self.attn_mask[:tokens, :tokens], self.loss_weight[:tokens])


@dataclass
class TextBatch:
    """The text conditioning of a batch with one text per row (the training counterpart of `TextContext`)."""

    pooled: torch.Tensor  # [B, C] start token / AdaLN condition per row
    gss: torch.Tensor  # [B, 1, 6, C] shared AdaLN output per row
    block_kv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # per block: k, v [B, H, L_max, d], key mask


def encode_text_batch(model: InfinityTransformer, texts: Sequence[torch.Tensor]) -> TextBatch:
    """Row i follows text i [L_i, text_channels]; differentiable (gradients reach the texts)."""
    lengths = torch.tensor([t.shape[0] for t in texts])
    normed = [model.text_norm(t.float()) for t in texts]
    pooled = torch.cat([model.text_proj_for_sos.ca(n) for n in normed])
    gss = model.shared_ada_lin(pooled).view(len(texts), 1, 6, -1)
    padded = torch.nn.utils.rnn.pad_sequence(normed, batch_first=True)  # [B, L_max, Ct]
    B, L_max = padded.shape[:2]
    projected = model.text_proj_for_ca(padded).reshape(B * L_max, -1)
    key_mask = (torch.arange(L_max) < lengths[:, None]).to(padded.device).view(B, 1, 1, L_max)
    block_kv = []
    for block in model.blocks:
        k, v = block.ca.text_kv(projected)  # [1, H, B·L_max, d]
        k, v = (t.view(t.shape[1], B, L_max, -1).transpose(0, 1) for t in (k, v))
        block_kv.append((k, v, key_mask))
    return TextBatch(pooled=pooled, gss=gss, block_kv=block_kv)


def forward_sequence(
    model: InfinityTransformer, text: TextBatch, scale_inputs: torch.Tensor, layout: SequenceLayout
) -> torch.Tensor:
    """Logits [B, L, 2·bits] of every token of every scale (tau 1, no guidance), float32.

    `scale_inputs` [B, L - 1, bits] are the inputs of scales 1..K-1 in order (see `teacher_inputs`);
    scale 0 is the start token made from the pooled text, as at inference.
    """
    x = torch.cat([model.start_tokens(text.pooled), model.embed_tokens(scale_inputs)], dim=1)
    x = x.float() + model.lvl_embed.weight[layout.scale_of_token].float()
    attention = BlockCausal(layout.attn_mask)
    for i, block in enumerate(model.blocks):
        x = block(x, text.gss, text.block_kv[i], None, attention, i, layout.rope)
    return model.head(model.head_nm(x, text.pooled))


def teacher_inputs(bits_per_scale: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inputs [B, L - 1, d] of scales 1..K-1 when scales 0..K-2 took the given bits [B, h, w, d]
    (the same running code map and resizing as the sampler's `ScaleRun`)."""
    final = tuple(bits_per_scale[-1].shape[1:3])
    summed, inputs = None, []
    for k in range(len(bits_per_scale) - 1):
        summed = add_scale(summed, bits_to_codes(bits_per_scale[k]), last=False, final_size=final)
        inputs.append(next_scale_input(summed, tuple(bits_per_scale[k + 1].shape[1:3])))
    return torch.cat(inputs, dim=1)


def bitwise_loss(logits: torch.Tensor, target_bits: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
    """Bitwise cross-entropy, tokens weighted as the official `reweight_loss_by_scale`.

    A token of an h×w scale weighs sqrt(area of the last scale / h·w) (normalised to sum to 1
    per image over the tokens of `layout`), so the coarse scales, with few tokens, still count;
    each bit's two logits are (class 0, class 1) as in `sample_bits`.
    """
    B, L, two_d = logits.shape
    per_bit = F.cross_entropy(logits.reshape(B * L * two_d // 2, 2), target_bits.reshape(-1).long(), reduction="none")
    per_token = per_bit.view(B, L, -1).mean(-1)
    weight = layout.loss_weight.to(logits.device)
    return (per_token * (weight / weight.sum())).sum(-1).mean()
