"""The self-attention KV cache: preallocated per layer, filled scale by scale, gathered by row.

Rows are laid out as the CFG code expects: [cond rows of the B candidates; uncond rows]. The
capacity is chosen by the caller (the sampler allocates only up to the next filter, where the
batch shrinks), so a large early batch never reserves room for the long late scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(self, depth: int, rows: int, heads: int, head_dim: int, capacity: int, dtype: torch.dtype, device):
        shape = (rows, heads, capacity, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.length = 0

    @property
    def rows(self) -> int:
        return self.keys[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this scale's k, v [rows, H, L, d] after the filled part (in the cache's dtype); return
        all keys/values so far.

        The length only advances in `advance`, once every layer has written the same scale.
        """
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} tokens); reserve more first")
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Attention of one scale's queries: they see every cached key (block-causal by construction)."""
        return F.scaled_dot_product_attention(q, keys, values, scale=1.0)

    def advance(self, tokens: int) -> None:
        self.length += tokens

    def reserve(self, capacity: int) -> None:
        """Grow every layer to hold `capacity` tokens (one copy; no-op when already large enough)."""
        if capacity <= self.capacity:
            return
        self.keys = [_grown(t, self.length, capacity) for t in self.keys]
        self.values = [_grown(t, self.length, capacity) for t in self.values]

    def gather(self, rows: torch.Tensor | list[int], capacity: int | None = None, *, consume: bool = False) -> "KVCache":
        """A new cache holding `rows` of this one (in that order), with room for `capacity` tokens.

        With `consume`, each layer of this cache is released as soon as it is copied, so the peak
        is the new cache plus one old layer instead of both caches whole; this one is empty after.
        """
        capacity = max(capacity or self.capacity, self.length)
        picked = [int(r) for r in rows]
        new = KVCache.__new__(KVCache)
        new.length, new.keys, new.values = self.length, [], []
        for layer in range(len(self.keys)):
            new.keys.append(_select(self.keys[layer], picked, self.length, capacity))
            new.values.append(_select(self.values[layer], picked, self.length, capacity))
            if consume:
                self.keys[layer] = self.values[layer] = None
        if consume:
            self.keys, self.values, self.length = [], [], 0
        return new


def _grown(t: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    out = t.new_empty((t.shape[0], t.shape[1], capacity, t.shape[3]))
    out[:, :, :length] = t[:, :, :length]
    return out


def _select(t: torch.Tensor, rows: list[int], length: int, capacity: int) -> torch.Tensor:
    """Row by row, so the gather needs no transient copy of the whole layer."""
    out = t.new_empty((len(rows), t.shape[1], capacity, t.shape[3]))
    for i, r in enumerate(rows):
        out[i, :, :length] = t[r, :, :length]
    return out
