"""The Infinity transformer: text conditioning, cosine-attention blocks with shared AdaLN, bitwise head.

Written from the official architecture (FoundationVision/Infinity) with plain PyTorch: SDPA
instead of flash-attn, no torch.compile, a preallocated KV cache, and the text's cross-attention
K/V computed once per generation instead of once per block per scale. Parameter names follow
the official checkpoints (blocks are flattened from `block_chunks.{c}.module.{j}` on load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ttsvar.infinity.kv_cache import KVCache
from ttsvar.infinity.rope import apply_rope

NORM_EPS = 1e-6
MAX_SCALE_MUL = math.log(100.0)


@dataclass(frozen=True)
class InfinityArch:
    """Sizes of a transformer, all readable from a checkpoint's tensor shapes."""

    depth: int
    embed_dim: int
    num_heads: int
    text_channels: int
    pool_heads: int
    token_bits: int  # bits per token: 32 for 2B, 56 (= 4 × 14, spatial patchify) for 8B
    ffn_hidden: int
    text_maxlen: int = 512
    num_levels: int = 15

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def name(self) -> str:
        known = {(32, 2048): "infinity-2b", (40, 3584): "infinity-8b"}
        return known.get((self.depth, self.embed_dim), f"infinity-d{self.depth}-c{self.embed_dim}")


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.weight


def ada_layer_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """LayerNorm without affine in float32, modulated: the official fused AdaLN."""
    x = F.layer_norm(x.float(), (x.shape[-1],), eps=NORM_EPS)
    return x * (scale + 1) + shift


class SelfAttention(nn.Module):
    """Cosine attention: L2-normalised q and k, q scaled per head by a learned, capped factor."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.mat_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int, rope: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.mat_qkv.weight, bias.to(self.mat_qkv.weight.dtype))
        q, k, v = qkv.view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        with torch.autocast(x.device.type, enabled=False):
            scale = self.scale_mul_1H11.float().clamp_max(MAX_SCALE_MUL).exp()
            q = apply_rope(F.normalize(q.float(), dim=-1, eps=1e-12) * scale, rope)
            k = apply_rope(F.normalize(k.float(), dim=-1, eps=1e-12), rope)
        keys, values = cache.append(layer, k, v)
        q = q.to(values.dtype)
        out = cache.attend(q, keys, values)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class CrossAttention(nn.Module):
    """Attention from image tokens to the text; K/V come precomputed from `TextContext`."""

    def __init__(self, dim: int, text_dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.mat_q = nn.Linear(dim, dim)
        self.mat_kv = nn.Linear(text_dim, 2 * dim, bias=False)
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def text_kv(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [1, H, L_text, d] of one text's projected features [L_text, C]."""
        bias = torch.cat([torch.zeros_like(self.v_bias), self.v_bias])
        kv = F.linear(text, self.mat_kv.weight, bias.to(self.mat_kv.weight.dtype))
        k, v = kv.view(text.shape[0], 2, self.heads, self.head_dim).permute(1, 2, 0, 3).unbind(0)
        return k.unsqueeze(0), v.unsqueeze(0)

    def forward(self, x: torch.Tensor, text_kv, groups) -> torch.Tensor:
        """`groups` [(start, stop, text)] say which rows follow which entry (k, v) of `text_kv`;
        None means `text_kv` is one padded (k, v, key_mask) [B, H, L_text, d] with a text per row."""
        B, L, C = x.shape
        q = self.mat_q(x).view(B, L, self.heads, self.head_dim)
        if groups is None:
            k, v, key_mask = text_kv
            out = F.scaled_dot_product_attention(q.transpose(1, 2).to(v.dtype), k, v, attn_mask=key_mask)
            return self.proj(out.transpose(1, 2).reshape(B, L, C))
        out = torch.empty_like(q)
        for start, stop, text in groups:  # rows sharing one text attend to it as one long query
            n = stop - start
            k, v = text_kv[text]
            q_group = q[start:stop].permute(2, 0, 1, 3).reshape(1, self.heads, n * L, self.head_dim)
            o = F.scaled_dot_product_attention(q_group.to(v.dtype), k, v)
            out[start:stop] = o.reshape(self.heads, n, L, self.head_dim).permute(1, 2, 0, 3).to(out.dtype)
        return self.proj(out.reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, arch: InfinityArch):
        super().__init__()
        c = arch.embed_dim
        self.ada_gss = nn.Parameter(torch.zeros(1, 1, 6, c))
        self.sa = SelfAttention(c, arch.num_heads)
        self.ca = CrossAttention(c, c, arch.num_heads)
        self.ca_norm = nn.LayerNorm(c, eps=NORM_EPS)
        self.ffn = FFN(c, arch.ffn_hidden)

    def forward(self, x, gss, text_kv, groups, cache: KVCache, layer: int, rope) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = (self.ada_gss.float() + gss).unbind(2)
        x = x + self.sa(ada_layer_norm(x, scale1, shift1), cache, layer, rope).float() * gamma1
        n = self.ca_norm
        x = x + self.ca(F.layer_norm(x.float(), n.normalized_shape, n.weight.float(), n.bias.float(), NORM_EPS), text_kv, groups).float()
        return x + self.ffn(ada_layer_norm(x, scale2, shift2)).float() * gamma2


class AttentivePool(nn.Module):
    """Pools a text into one vector with a learned query: the start token and the AdaLN condition."""

    def __init__(self, dim: int, text_dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.mat_q = nn.Parameter(torch.zeros(1, heads, self.head_dim))
        self.mat_kv = nn.Linear(text_dim, 2 * dim, bias=False)
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        bias = torch.cat([torch.zeros_like(self.v_bias), self.v_bias])
        kv = F.linear(text, self.mat_kv.weight, bias)
        k, v = kv.view(text.shape[0], 2, self.heads, self.head_dim).permute(1, 2, 0, 3).unbind(0)
        out = F.scaled_dot_product_attention(self.mat_q.unsqueeze(2), k, v)  # [1, H, 1, d]
        return self.proj(out.reshape(1, -1))


class PoolWrapper(nn.Module):
    """Keeps the official key prefix `text_proj_for_sos.ca.`."""

    def __init__(self, dim: int, text_dim: int, heads: int):
        super().__init__()
        self.ca = AttentivePool(dim, text_dim, heads)


class HeadNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, x.shape[-1]).unbind(2)
        return ada_layer_norm(x, scale, shift)


@dataclass
class TextContext:
    """Everything the blocks need from the text, computed once per generation.

    One entry per unique text, each at its own length (no padding); `rows(row_text)` expands
    them to a batch whose row i follows text `row_text[i]` (cond rows, then uncond rows).
    """

    pooled: torch.Tensor  # [U, C] start token / AdaLN condition per unique text
    gss: torch.Tensor  # [U, 1, 6, C] shared AdaLN output per unique text
    block_kv: list[list[tuple[torch.Tensor, torch.Tensor]]]  # [block][text] -> (k, v)

    def to(self, device: torch.device) -> "TextContext":
        """This context on `device` (itself when already there: the model may have been moved)."""
        if self.pooled.device == torch.device(device):
            return self
        return TextContext(
            pooled=self.pooled.to(device), gss=self.gss.to(device),
            block_kv=[[(k.to(device), v.to(device)) for k, v in block] for block in self.block_kv],
        )

    def rows(self, row_text: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int]]]:
        index = torch.tensor(row_text, device=self.pooled.device)
        groups, start = [], 0
        for i in range(1, len(row_text) + 1):
            if i == len(row_text) or row_text[i] != row_text[start]:
                groups.append((start, i, row_text[start]))
                start = i
        return self.pooled[index], self.gss[index], groups


class InfinityTransformer(nn.Module):
    def __init__(self, arch: InfinityArch):
        super().__init__()
        self.arch = arch
        c, t = arch.embed_dim, arch.text_channels
        self.cfg_uncond = nn.Parameter(torch.zeros(arch.text_maxlen, t))
        self.text_norm = RMSNorm(t)
        self.text_proj_for_sos = PoolWrapper(c, t, arch.pool_heads)
        self.text_proj_for_ca = nn.Sequential(nn.Linear(t, c), nn.GELU(approximate="tanh"), nn.Linear(c, c))
        self.pos_start = nn.Parameter(torch.zeros(1, 1, c))
        self.lvl_embed = nn.Embedding(arch.num_levels, c)
        self.word_embed = nn.Linear(arch.token_bits, c)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.depth))
        self.head_nm = HeadNorm(c)
        self.head = nn.Linear(c, 2 * arch.token_bits)

    @property
    def block_dtype(self) -> torch.dtype:
        return self.blocks[0].sa.mat_qkv.weight.dtype

    def uncond_text(self, length: int) -> torch.Tensor:
        """The learned null text, truncated to the prompt's own length (as the official CFG does)."""
        if length > self.arch.text_maxlen:
            raise ValueError(f"text of {length} tokens is longer than the model's {self.arch.text_maxlen}")
        return self.cfg_uncond[:length]

    def encode_texts(self, texts: list[torch.Tensor]) -> TextContext:
        """Per unique text [L_i, text_channels]: pooled condition, AdaLN output and each block's K/V."""
        dev = self.pos_start.device
        with torch.autocast(dev.type, enabled=False):
            normed = [self.text_norm(t.to(dev, torch.float32)) for t in texts]
            pooled = torch.cat([self.text_proj_for_sos.ca(n) for n in normed])
            gss = self.shared_ada_lin(pooled).view(len(texts), 1, 6, -1)
            projected = [self.text_proj_for_ca(n) for n in normed]
        block_kv = [[b.ca.text_kv(p.to(self.block_dtype)) for p in projected] for b in self.blocks]
        return TextContext(pooled=pooled, gss=gss, block_kv=block_kv)

    def start_tokens(self, pooled_rows: torch.Tensor) -> torch.Tensor:
        return pooled_rows.unsqueeze(1) + self.pos_start

    def embed_tokens(self, codes_BLd: torch.Tensor) -> torch.Tensor:
        """Next-scale input: the running code map resized to the grid, [B, L, d] -> [B, L, C]."""
        return self.word_embed(codes_BLd.to(self.word_embed.weight.dtype)).float()

    def forward_scale(
        self,
        x: torch.Tensor,
        scale: int,
        text: TextContext,
        row_text: list[int],
        cache: KVCache,
        rope: torch.Tensor,
        *,
        guided: bool,
        cfg: float,
        tau: float,
        cfg_layer: int = 0,
    ) -> torch.Tensor:
        """One scale: x [R, L, C] -> logits [B, L, 2·bits], divided by tau and guided.

        With `guided`, the R = 2B rows are [cond rows; uncond rows]; `cfg_layer` 0 mixes the
        logits, a negative -j mixes the hidden states after block depth-j (both halves then go
        on from the mix). At a scale whose cfg is 1 the cond rows' logits are used as they are.
        """
        pooled, gss, groups = text.rows(row_text)
        B = len(row_text) // 2 if guided else len(row_text)
        mix = guided and cfg != 1
        mix_at = self.arch.depth + cfg_layer if cfg_layer < 0 else None
        x = x.float() + self.lvl_embed.weight[scale].float()
        autocast = torch.autocast(x.device.type, dtype=self.block_dtype, enabled=self.block_dtype != torch.float32)
        with autocast:
            for i, block in enumerate(self.blocks):
                x = block(x, gss, text.block_kv[i], groups, cache, i, rope)
                if mix and i == mix_at:
                    mixed = cfg * x[:B] + (1 - cfg) * x[B:]
                    x = torch.cat([mixed, mixed])
        cache.advance(x.shape[1])
        with torch.autocast(x.device.type, enabled=False):
            if mix and cfg_layer == 0:
                logits = self.head(self.head_nm(x, pooled)) / tau
                return cfg * logits[:B] + (1 - cfg) * logits[B:]
            return self.head(self.head_nm(x[:B], pooled[:B])) / tau
