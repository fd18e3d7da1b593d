"""The scale loop: one forward pass per scale, bits sampled or teacher-forced, running code map.

`ScaleRun` is the mutable working set of one batch of candidates (KV cache, code map, text
context). The immutable `VarState` of the search wraps it; plain generation and the parity
tests drive it directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.codes import add_scale, as_token_bits, bits_to_codes, next_scale_input, unpatchify_bits
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.kv_cache import KVCache
from ttsvar.infinity.rope import rope_tables
from ttsvar.infinity.transformer import TextContext


@dataclass(frozen=True)
class SamplingSettings:
    """Per-scale guidance and temperature, top-p on each bit's two classes, where CFG applies."""

    cfg: tuple[float, ...]
    tau: tuple[float, ...]
    top_p: float = 0.97
    cfg_layer: int = 0  # 0: guide the logits; -j: mix hidden states after block depth-j

    @property
    def guided(self) -> bool:
        return any(c != 1 for c in self.cfg)

    @classmethod
    def build(
        cls, num_scales: int, *, cfg: float | Sequence[float] = 3.0, tau: float | Sequence[float] = 0.5,
        top_p: float = 0.97, cfg_layer: int = 0, depth: int | None = None,
    ) -> "SamplingSettings":
        cfgs = _per_scale("cfg", cfg, num_scales)
        taus = _per_scale("tau", tau, num_scales)
        if any(t <= 0 for t in taus):
            raise TTSVarError(f"tau must be positive at every scale, got {list(taus)}.")
        if not 0.0 <= top_p <= 1.0:
            raise TTSVarError(f"top_p must be within 0..1 (0 disables it), got {top_p}.")
        if cfg_layer > 0 or (depth is not None and cfg_layer <= -depth):
            raise TTSVarError(
                f"cfg_layer must be 0 (guidance on logits) or -1..-{(depth or 2) - 1} (on the hidden state "
                f"after that many blocks from the end), got {cfg_layer}."
            )
        return cls(cfgs, taus, float(top_p), int(cfg_layer))

    def to_dict(self) -> dict:
        return {"cfg": list(self.cfg), "tau": list(self.tau), "top_p": self.top_p, "cfg_layer": self.cfg_layer}


def _per_scale(name: str, value, num_scales: int) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * num_scales
    values = tuple(float(v) for v in value)
    if len(values) != num_scales:
        raise TTSVarError(f"{name} list has {len(values)} entries but the grid has {num_scales} scales.")
    return values


def candidate_seed(seed: int, scale: int, lineage: int) -> int:
    """Randomness of one candidate at one scale: a hash of (seed, scale, lineage), nothing else,
    so results never depend on batch composition, call splitting or cache rebuilding."""
    digest = hashlib.blake2b(f"{seed}/{scale}/{lineage}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def sample_bits(logits: torch.Tensor, top_p: float, seeds: Sequence[int]) -> torch.Tensor:
    """Bits [B, L, d] (uint8) from logits [B, L, 2d]; pair (2i, 2i+1) are bit i's classes (0, 1).

    Top-p on two classes (as the official sampler): a class whose probability is at most 1 - top_p
    is removed. Each candidate draws its uniforms on the CPU from its own seed, so a candidate's
    bits do not depend on the device or on which other candidates share the batch.
    """
    B, L, two_d = logits.shape
    p1 = logits.float().view(B, L, two_d // 2, 2).softmax(-1)[..., 1]
    if top_p > 0:
        floor = 1.0 - top_p
        p1 = torch.where(p1 <= floor, torch.zeros_like(p1), p1)
        p1 = torch.where(1 - p1 <= floor, torch.ones_like(p1), p1)
    uniforms = torch.stack(
        [torch.rand(L * two_d // 2, generator=torch.Generator().manual_seed(s)) for s in seeds]
    ).view(B, L, two_d // 2)
    return (uniforms.to(p1.device) < p1).to(torch.uint8)


class ScaleRun:
    """Mutable working set for one batch: advance it scale by scale.

    Candidates are rows [0, B); with guidance the transformer runs 2B rows [cond; uncond].
    `prompt_of[i]` says which of the run's texts candidate i follows.
    """

    def __init__(self, model, grid: ScaleGrid, settings: SamplingSettings, text: TextContext, prompt_of: list[int],
                 num_prompts: int, *, capacity: int | None = None, cache: KVCache | None = None,
                 summed: torch.Tensor | None = None, next_scale: int = 0):
        self.model, self.grid, self.settings, self.text = model, grid, settings, text
        self.prompt_of, self.num_prompts = list(prompt_of), num_prompts
        self.next_scale, self.summed = next_scale, summed
        self.rope = rope_tables(grid, model.transformer.arch.head_dim, model.device)
        t = model.transformer
        self.cache = cache or KVCache(
            t.arch.depth, self.rows, t.arch.num_heads, t.arch.head_dim,
            capacity or grid.total_tokens, t.block_dtype, model.device,
        )

    @property
    def batch(self) -> int:
        return len(self.prompt_of)

    @property
    def rows(self) -> int:
        return self.batch * (2 if self.settings.guided else 1)

    @property
    def row_text(self) -> list[int]:
        uncond = [self.num_prompts + p for p in self.prompt_of] if self.settings.guided else []
        return self.prompt_of + uncond

    def _inputs(self) -> torch.Tensor:
        t, k = self.model.transformer, self.next_scale
        if k == 0:
            pooled, _, _ = self.text.rows(self.row_text)
            return t.start_tokens(pooled)
        x = t.embed_tokens(next_scale_input(self.summed, self.grid.scales[k], patchify=self.model.patchify))
        return torch.cat([x, x]) if self.settings.guided else x

    def forward(self) -> torch.Tensor:
        """Logits [B, h·w, 2·bits] of the next scale (filling the KV cache)."""
        k = self.next_scale
        if k >= self.grid.num_scales:
            raise TTSVarError(f"all {self.grid.num_scales} scales are sampled already.")
        self.cache.reserve(self.grid.token_offset(k + 1))
        s = self.settings
        return self.model.transformer.forward_scale(
            self._inputs(), k, self.text, self.row_text, self.cache, self.rope[k],
            guided=s.guided, cfg=s.cfg[k], tau=s.tau[k], cfg_layer=s.cfg_layer,
        )

    def token_bits(self, bits: torch.Tensor, scale: int) -> torch.Tensor:
        """`bits` of `scale` for this batch as [B, h, w, token_bits]; see `as_token_bits` for the
        layouts accepted (the official ones included). A wrong shape is an error."""
        if not 0 <= scale < self.grid.num_scales:
            raise TTSVarError(f"bits were given for scale {scale}, but the grid has {self.grid.num_scales} scales.")
        return as_token_bits(bits, self.grid.scales[scale], self.model.transformer.arch.token_bits,
                             patchify=self.model.patchify, batch=self.batch, name=f"bits of scale {scale}")

    def replay(self, bits_per_scale: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Teacher forcing: run the given bits of the next scales through the model (filling the
        cache and code map); returns each scale's logits. Every scale's bits are checked before
        the first forward pass."""
        bits_per_scale = [self.token_bits(b, self.next_scale + i) for i, b in enumerate(bits_per_scale)]
        logits = []
        with torch.inference_mode():
            for bits in bits_per_scale:
                logits.append(self.forward())
                self.commit(bits)
        return logits

    def commit(self, bits: torch.Tensor) -> None:
        """Add this scale's bits (any layout `token_bits` accepts) to the code map and move to the
        next scale."""
        k = self.next_scale
        bits = self.token_bits(bits, k)
        if self.model.patchify:
            bits = unpatchify_bits(bits)
        last = k == self.grid.num_scales - 1
        final = self.model.latent_size(self.grid)
        codes = bits_to_codes(bits.to(self.model.device))
        self.summed = add_scale(self.summed, codes, last, final_size=final)
        self.next_scale += 1


def encode_texts(model, prompts: Sequence[torch.Tensor], negatives: Sequence[torch.Tensor | None] | None,
                 guided: bool) -> TextContext:
    """Context for texts [prompt_0..prompt_{P-1}, uncond_0..uncond_{P-1}] (uncond only with guidance)."""
    t = model.transformer
    texts = list(prompts)
    if guided:
        negatives = negatives or [None] * len(prompts)
        texts += [n if n is not None else t.uncond_text(p.shape[0]) for p, n in zip(prompts, negatives)]
    channels = {x.shape[-1] for x in texts}
    if channels != {t.arch.text_channels}:
        raise TTSVarError(
            f"text features have {sorted(channels)} channels but the model expects {t.arch.text_channels}: "
            "the text encoder does not belong to this model (Infinity uses Flan-T5-XL, 2048 channels)."
        )
    with torch.inference_mode():
        return t.encode_texts(texts)


def teacher_force(model, grid: ScaleGrid, settings: SamplingSettings, prompts: Sequence[torch.Tensor],
                  bits: Sequence[torch.Tensor], negatives: Sequence[torch.Tensor | None] | None = None):
    """Run the given bits (one tensor [B, h, w, token_bits] per scale, a prefix of the grid) through
    the model; returns (per-scale logits, the ScaleRun with its filled cache and code map).
    The official layouts are accepted too (`[B, 1, h, w, token_bits]`; for 8B the VAE cells
    `[B, 1, 2h, 2w, token_bits/4]` of `gt_ls_Bl`); any other shape is an error.

    Candidate b follows prompt b (one prompt per candidate); the parity tests compare these
    logits with the official model's. (The sampler rebuilds a state's cache the same way.)
    """
    text = encode_texts(model, prompts, negatives, settings.guided)
    run = ScaleRun(model, grid, settings, text, list(range(len(prompts))), len(prompts))
    return run.replay(bits), run
