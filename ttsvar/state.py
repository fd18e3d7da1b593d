"""`VarState`: the candidates of a search, their history, and the KV cache that continues them.

A state is never changed once returned (ComfyUI hands one node output to many consumers and
re-uses it in later runs). The stored bits are the truth; everything else (code map, cache)
can be rebuilt from them. The KV cache is the one expensive part: a state owns it until the
next step takes it over, so memory does not grow with the length of a node chain. A state whose
cache was taken and that is used again rebuilds it with one teacher-forced pass.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.generate import SamplingSettings
from ttsvar.infinity.kv_cache import KVCache
from ttsvar.infinity.text import TextCondition
from ttsvar.infinity.transformer import TextContext
from ttsvar.schedule import BatchSchedule


class CacheSlot:
    """A box for one KV cache that exactly one consumer can take (thread-safe)."""

    def __init__(self, cache: KVCache | None = None):
        self._cache, self._lock = cache, threading.Lock()

    def take(self) -> KVCache | None:
        with self._lock:
            cache, self._cache = self._cache, None
            return cache

    @property
    def holds_cache(self) -> bool:
        return self._cache is not None


def copy_lineage(parent: int, copy: int) -> int:
    """The id of the `copy`-th extra copy of a candidate picked several times by resampling:
    a fresh id, so the copies draw different bits from then on."""
    digest = hashlib.blake2b(f"{parent}+{copy}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True, eq=False)
class VarState:
    model: object  # InfinityModel (untyped here to keep this module light)
    condition: TextCondition
    text: TextContext = field(repr=False)
    grid: ScaleGrid
    schedule: BatchSchedule
    settings: SamplingSettings
    seed: int
    lineage: tuple[int, ...]
    bits: tuple[torch.Tensor, ...] = ()  # per finished scale: uint8 [B, h, w, token_bits], CPU
    code_map: torch.Tensor | None = field(default=None, repr=False)  # [B, d, H, W] running code map
    rewards: torch.Tensor | None = None  # [B, T] reward of each candidate at each scored scale
    reward_scales: tuple[int, ...] = ()
    events: tuple[dict, ...] = ()
    cache_slot: CacheSlot = field(default_factory=CacheSlot, repr=False)

    def __post_init__(self) -> None:
        """The stored bits are the truth everything is rebuilt from: their layout is checked
        here, once, rather than misread later."""
        b, grid = self.num_candidates, self.grid
        if len(self.bits) > grid.num_scales:
            raise TTSVarError(f"a state holds bits of {len(self.bits)} scales but its grid has {grid.num_scales}.")
        token_bits = self.model.transformer.arch.token_bits
        for k, bits in enumerate(self.bits):
            expected = (b, *grid.scales[k], token_bits)
            if tuple(bits.shape) != expected:
                raise TTSVarError(
                    f"a state's bits of scale {k} must be {list(expected)} (candidates, token grid, bits per "
                    f"token), got {list(bits.shape)}."
                )
        if self.code_map is not None:
            expected = (b, self.model.vae.codebook_dim, *self.model.latent_size(grid))
            if tuple(self.code_map.shape) != expected:
                raise TTSVarError(
                    f"a state's code map must be {list(expected)} (candidates, VAE code width, final latent grid), "
                    f"got {list(self.code_map.shape)}."
                )

    @property
    def num_candidates(self) -> int:
        return len(self.lineage)

    @property
    def next_scale(self) -> int:
        return len(self.bits)

    @property
    def num_scales(self) -> int:
        return self.grid.num_scales

    @property
    def finished(self) -> bool:
        return self.next_scale == self.num_scales

    @property
    def prompt(self) -> str:
        return self.condition.prompt

    def latest_rewards(self) -> torch.Tensor | None:
        """Rewards at the current scale, if this scale was scored."""
        if self.rewards is None or not self.reward_scales or self.reward_scales[-1] != self.next_scale - 1:
            return None
        return self.rewards[:, -1]

    def select(self, keep: Sequence[int], event: dict, *, capacity: int | None = None) -> "VarState":
        """A new state with candidates `keep` (repeats allowed), its cache gathered from this one's.

        The first pick of a candidate keeps its lineage id (so it continues exactly as it would
        have without the others); further copies get fresh ids.
        """
        keep = [int(i) for i in keep]
        if not keep or min(keep) < 0 or max(keep) >= self.num_candidates:
            raise TTSVarError(f"selection {keep} is out of range for {self.num_candidates} candidates.")
        seen: dict[int, int] = {}
        lineage = []
        for i in keep:
            parent = self.lineage[i]
            lineage.append(parent if i not in seen else copy_lineage(parent, seen[i]))
            seen[i] = seen.get(i, 0) + 1
        index = torch.tensor(keep)
        cache = self.cache_slot.take()
        if cache is not None:
            rows = keep + [self.num_candidates + i for i in keep] if self.settings.guided else keep
            cache = cache.gather(rows, capacity, consume=True)
        record = {
            **event,
            "after_scale": self.next_scale - 1,
            "batch_before": self.num_candidates,
            "kept": keep,
            "lineage_before": [str(x) for x in self.lineage],
            "lineage_after": [str(x) for x in lineage],
        }
        return replace(
            self,
            lineage=tuple(lineage),
            bits=tuple(b[index] for b in self.bits),
            code_map=None if self.code_map is None else self.code_map[index.to(self.code_map.device)],
            rewards=None if self.rewards is None else self.rewards[index],
            events=self.events + (record,),
            cache_slot=CacheSlot(cache),
        )

    def with_rewards(self, scores: torch.Tensor) -> "VarState":
        """A new state with this scale's rewards appended to the history (the cache moves along)."""
        scale = self.next_scale - 1
        scores = scores.detach().float().cpu().reshape(-1, 1)
        if self.reward_scales and self.reward_scales[-1] == scale:
            history, scales = self.rewards[:, :-1], self.reward_scales[:-1]
        else:
            history, scales = self.rewards, self.reward_scales
        history = scores if history is None else torch.cat([history, scores], dim=1)
        return replace(self, rewards=history, reward_scales=scales + (scale,), cache_slot=CacheSlot(self.cache_slot.take()))

    def record(self) -> dict:
        """The search so far as JSON-ready data: settings, and per filter what was kept and why."""
        return {
            "prompt": self.condition.prompt,
            "negative_prompt": self.condition.negative,
            "model": getattr(self.model, "name", "?"),
            "seed": self.seed,
            "grid": self.grid.to_dict(),
            "schedule": list(self.schedule.sizes),
            "sampling": self.settings.to_dict(),
            "next_scale": self.next_scale,
            "candidates": [str(x) for x in self.lineage],
            "reward_scales": list(self.reward_scales),
            "rewards": [] if self.rewards is None else self.rewards.tolist(),
            "events": list(self.events),
        }
