"""Bits → BSQ codes, the running code map, and the 8B spatial-patchify reshapes.

These are the conventions pinned down by `tests/data/infinity_tiny/README.md`
("Conventions") and the official per-scale loop (notes §2.9):

* bit b of channel i maps to (2b − 1)/√d, and each token's d-vector is L2-normalised;
* the running map `summed` is the sum over scales of each scale's codes resized to the final
  grid (trilinear with t = 1, align_corners=False, no antialias); the last scale is added as is;
* the input of the next scale is `summed` resized (same interpolation) to that scale's grid,
  flattened row-major with channels last.

All functions are pure: they never modify their inputs and always return new tensors.
Tensors are channels-first 2-D maps `[B, d, h, w]`; the official code carries an extra
T = 1 axis (`[B, d, 1, h, w]`), which these functions accept and drop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ttsvar.errors import TTSVarError

__all__ = [
    "bits_to_codes",
    "add_scale",
    "summed_codes_from_bits",
    "resize_codes",
    "next_scale_input",
    "unpatchify_bits",
    "patchify_bits",
    "patchify_map",
    "unpatchify_map",
    "as_token_bits",
]


def _as_bhwd(bits: torch.Tensor) -> torch.Tensor:
    """Accept [B, h, w, d] or the official [B, 1, h, w, d]; return [B, h, w, d]."""
    if bits.ndim == 5:
        if bits.shape[1] != 1:
            raise TTSVarError(f"bits with a time axis must have T = 1, got shape {tuple(bits.shape)}.")
        bits = bits[:, 0]
    if bits.ndim != 4:
        raise TTSVarError(f"bits must be [B, h, w, d] (or [B, 1, h, w, d]), got shape {tuple(bits.shape)}.")
    return bits


def _check_bit_values(bits: torch.Tensor, name: str = "bits") -> None:
    """Bits are bool or integer 0/1: a float tensor here is a code map or logits, not bits."""
    if bits.dtype == torch.bool:
        return
    if bits.is_floating_point() or bits.is_complex():
        raise TTSVarError(f"{name} must be 0/1 integers or booleans, got {bits.dtype} (codes or logits are not bits).")
    if bits.numel() and (int(bits.min()) < 0 or int(bits.max()) > 1):
        raise TTSVarError(f"{name} must be 0/1, got values in {int(bits.min())}..{int(bits.max())}.")


def _as_bdhw(x: torch.Tensor, name: str) -> torch.Tensor:
    """Accept [B, d, h, w] or the official [B, d, 1, h, w]; return [B, d, h, w]."""
    if not x.is_floating_point():
        raise TTSVarError(f"{name} must be a floating-point code map [B, d, h, w], got {x.dtype} (bits are not codes).")
    if x.ndim == 5:
        if x.shape[2] != 1:
            raise TTSVarError(f"{name} with a time axis must have T = 1, got shape {tuple(x.shape)}.")
        x = x[:, :, 0]
    if x.ndim != 4:
        raise TTSVarError(f"{name} must be [B, d, h, w], got shape {tuple(x.shape)}.")
    return x


def bits_to_codes(bits: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bits `[B, h, w, d]` (bool or integer 0/1) → unit-length codes `[B, d, h, w]`.

    Each bit becomes (2b − 1)/√d, then every token's d-vector is L2-normalised (as the official
    `BSQ.indices_to_codes(..., 'bit_label')`; the vector already has unit length, so the
    normalisation only removes rounding).
    """
    bits = _as_bhwd(bits)
    _check_bit_values(bits)
    d = bits.shape[-1]
    scale = 1.0 / math.sqrt(d)
    b = bits.to(torch.float32)
    codes = b * (2.0 * scale) - scale
    codes = F.normalize(codes, dim=-1)
    return codes.permute(0, 3, 1, 2).contiguous().to(dtype)


def resize_codes(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a code map `[B, d, h, w]` to `size` = (H, W) the way the official code does.

    The official call is `F.interpolate(x5d, size=(1, H, W), mode='trilinear')` on a
    `[B, d, 1, h, w]` tensor with align_corners=False and no antialias. With T = 1 → 1 the
    time axis is an identity, so this is exactly 2-D bilinear with align_corners=False
    (checked numerically in tests/test_vae.py). Same size → a copy.
    """
    x = _as_bdhw(x, "code map")
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x.clone()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def add_scale(
    summed: torch.Tensor | None,
    codes: torch.Tensor,
    last: bool,
    *,
    final_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Running code map after one more scale: `summed + resize(codes → final grid)`.

    `summed` is `[B, d, H, W]` (or None before the first scale; then pass `final_size`, or the
    codes' own size is the final grid when `last`). The last scale is added as is (official:
    `summed_codes += codes`), so its grid must already be the final one.
    """
    codes = _as_bdhw(codes, "codes")
    if summed is not None:
        summed = _as_bdhw(summed, "summed codes")
        target = tuple(summed.shape[-2:])
        if final_size is not None and tuple(final_size) != target:
            raise TTSVarError(f"final_size {tuple(final_size)} disagrees with summed codes grid {target}.")
    elif final_size is not None:
        target = (int(final_size[0]), int(final_size[1]))
    elif last:
        target = tuple(codes.shape[-2:])
    else:
        raise TTSVarError("add_scale: the first scale needs final_size (the last scale's grid).")

    if last:
        if tuple(codes.shape[-2:]) != target:
            raise TTSVarError(
                f"the last scale's codes have grid {tuple(codes.shape[-2:])}, but the final grid is {target}."
            )
        up = codes
    else:
        up = resize_codes(codes, target)
    if summed is None:
        return up.clone()
    if summed.shape[:2] != up.shape[:2]:
        raise TTSVarError(f"summed codes {tuple(summed.shape)} and codes {tuple(codes.shape)} differ in batch/width.")
    return summed + up.to(summed.dtype)


def summed_codes_from_bits(bits_per_scale: list[torch.Tensor], *, patchify: bool = False) -> torch.Tensor:
    """The decoder input `[B, d, H, W]` from every scale's bits (in order, last = final grid).

    With `patchify=True` (8B), each scale's bits are `[B, h, w, 4d']` transformer tokens and are
    first unpacked to `[B, 2h, 2w, d']` (see `unpatchify_bits`).
    """
    if not bits_per_scale:
        raise TTSVarError("summed_codes_from_bits needs at least one scale.")
    grids = [_as_bhwd(b) for b in bits_per_scale]
    layouts = {(b.shape[0], b.shape[-1]) for b in grids}
    if len(layouts) > 1:
        shapes = [tuple(b.shape) for b in grids]
        raise TTSVarError(f"every scale's bits must be [B, h, w, d] with the same B and d, got {shapes}.")
    if patchify:
        if grids[0].shape[-1] % 4:
            raise TTSVarError(
                f"with patchify, bits are 8B transformer tokens [B, h, w, 4d'], got width {grids[0].shape[-1]}; "
                "bits of 2x2 VAE cells [B, 2h, 2w, d'] (the official layout) go in with patchify=False."
            )
        grids = [unpatchify_bits(b) for b in grids]
    final = tuple(grids[-1].shape[1:3])
    if any(b.shape[1] > final[0] or b.shape[2] > final[1] for b in grids):
        shapes = [tuple(b.shape) for b in bits_per_scale]
        raise TTSVarError(f"the last scale's bits must be on the largest grid (bits are [B, h, w, d]), got {shapes}.")
    summed = None
    for k, b in enumerate(grids):
        summed = add_scale(summed, bits_to_codes(b), last=k == len(grids) - 1, final_size=final)
    return summed


def next_scale_input(
    summed: torch.Tensor, size: tuple[int, int], *, patchify: bool = False
) -> torch.Tensor:
    """The transformer input of the next scale: `[B, h·w, d]` (or `[B, h·w, 4d]` with patchify).

    `summed` `[B, d, H, W]` is resized (trilinear, t = 1, align_corners=False, no antialias) to
    the next grid `size` = (h, w), flattened row-major (index = y·w + x), channels last.

    With `patchify=True` (8B), `size` is the *transformer* grid (h, w): the map is resized to the
    VAE grid (2h, 2w) and each 2×2 cell is packed into 4d channels by `pixel_unshuffle(2)`, as the
    official loop does (`interpolate` → `pixel_unshuffle(2)` → reshape → permute).
    """
    summed = _as_bdhw(summed, "summed codes")
    h, w = int(size[0]), int(size[1])
    if patchify:
        x = patchify_map(resize_codes(summed, (2 * h, 2 * w)))
    else:
        x = resize_codes(summed, (h, w))
    b, c = x.shape[:2]
    return x.reshape(b, c, h * w).permute(0, 2, 1).contiguous()


# ---- 8B spatial patchify: a token with 4·d' bits ↔ a 2×2 cell of d' bits --------------------


def unpatchify_bits(bits: torch.Tensor) -> torch.Tensor:
    """Token bits `[B, h, w, 4d']` → cell bits `[B, 2h, 2w, d']` (official step 4, 8B).

    Official order: permute to `[B, 4d', h, w]`, `pixel_shuffle(2)` → `[B, d', 2h, 2w]`,
    permute back to `[B, 2h, 2w, d']`. So token channel `c·4 + i·2 + j` is bit c of the cell
    at (2y + i, 2x + j).
    """
    bits = _as_bhwd(bits)
    if bits.shape[-1] % 4:
        raise TTSVarError(f"patchified bits need a multiple of 4 channels, got {bits.shape[-1]}.")
    x = bits.permute(0, 3, 1, 2)
    x = F.pixel_shuffle(x, 2)
    return x.permute(0, 2, 3, 1).contiguous()


def patchify_bits(bits: torch.Tensor) -> torch.Tensor:
    """Cell bits `[B, 2h, 2w, d']` → token bits `[B, h, w, 4d']`; the inverse of `unpatchify_bits`."""
    bits = _as_bhwd(bits)
    if bits.shape[1] % 2 or bits.shape[2] % 2:
        raise TTSVarError(f"patchify needs an even grid, got {tuple(bits.shape[1:3])}.")
    x = bits.permute(0, 3, 1, 2)
    x = F.pixel_unshuffle(x, 2)
    return x.permute(0, 2, 3, 1).contiguous()


def patchify_map(x: torch.Tensor) -> torch.Tensor:
    """Code map `[B, d', 2h, 2w]` → `[B, 4d', h, w]` by `pixel_unshuffle(2)` (official step 6)."""
    x = _as_bdhw(x, "code map")
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise TTSVarError(f"patchify needs an even grid, got {tuple(x.shape[-2:])}.")
    return F.pixel_unshuffle(x, 2).contiguous()


def unpatchify_map(x: torch.Tensor) -> torch.Tensor:
    """`[B, 4d', h, w]` → `[B, d', 2h, 2w]` by `pixel_shuffle(2)`; the inverse of `patchify_map`."""
    x = _as_bdhw(x, "code map")
    if x.shape[1] % 4:
        raise TTSVarError(f"patchified maps need a multiple of 4 channels, got {x.shape[1]}.")
    return F.pixel_shuffle(x, 2).contiguous()


# ---- the boundary: one scale's bits as the transformer reads them ---------------------------


def as_token_bits(
    bits: torch.Tensor, grid: tuple[int, int], token_bits: int, *, patchify: bool, batch: int | None = None,
    name: str = "bits",
) -> torch.Tensor:
    """One scale's bits in the transformer's token layout `[B, h, w, token_bits]`, or an error.

    `grid` is the scale's token grid (h, w). Accepted layouts, told apart by their shape alone:

    * tokens `[B, h, w, token_bits]`, or the official `[B, 1, h, w, token_bits]`;
    * with `patchify` (8B) also VAE cells `[B, 2h, 2w, token_bits/4]` or `[B, 1, 2h, 2w, token_bits/4]`,
      the layout the official code keeps its bits in (`gt_ls_Bl`); they are packed by `patchify_bits`.

    Anything else is refused with the expected shapes; the bits are never reshaped blindly, which
    would read one layout as the other.
    """
    h, w = int(grid[0]), int(grid[1])
    if not isinstance(bits, torch.Tensor):
        raise TTSVarError(f"{name} must be a tensor, got {type(bits).__name__}.")
    shape = tuple(bits.shape)
    b = batch if batch is not None else (shape[0] if shape else 0)
    tokens = (b, h, w, token_bits)
    cells = (b, 2 * h, 2 * w, token_bits // 4) if patchify else None
    plain = bits[:, 0] if bits.ndim == 5 and shape[1] == 1 else bits
    if tuple(plain.shape) == tokens:
        out = plain
    elif cells is not None and tuple(plain.shape) == cells:
        out = patchify_bits(plain)
    else:
        expected = f"[{b}, {h}, {w}, {token_bits}] (tokens)"
        if cells is not None:
            expected += f" or [{b}, {2 * h}, {2 * w}, {token_bits // 4}] (2x2 VAE cells per token)"
        raise TTSVarError(
            f"{name} have shape {list(shape)} but this scale expects {expected}, optionally with a time axis of "
            "1 after the batch."
        )
    _check_bit_values(out, name)
    return out
