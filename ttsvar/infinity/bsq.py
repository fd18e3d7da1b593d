"""Multi-scale BSQ for training: a differentiable quantiser for the VAE, and the transformer's targets.

Both follow the conventions of `BSQVAE.encode` (official `MultiScaleBSQ`): on each grid the
residual is area-downsampled (the last grid is the latent grid itself), every token is
L2-normalised and sign-quantised to ±1/√d, the quantised map is resized bilinearly (the official
trilinear with t = 1) to the latent grid and subtracted from the residual.

* `quantize_ste` is the VAE's bottleneck in training: the straight-through estimator passes the
  decoder's gradient to the normalised residual of every scale (the residual update itself is
  detached, as in the official quantiser), and a commitment term pulls the normalised residuals
  towards the corners they are quantised to.
* `self_correcting_targets` is Infinity's Bitwise Self-Correction (official
  `BitwiseSelfCorrection.flip_requant`): after quantising a scale, a random fraction of its bits is
  flipped and the residual is re-computed from the flipped codes, so the transformer's input shows
  the kind of errors its own sampling makes and the next scales' targets correct them. The
  strength is drawn per scale, uniformly from {0, 0.01, …, max_flip}, shared by the batch (0.3 and
  every scale in the official training scripts).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ttsvar.infinity.codes import add_scale, bits_to_codes, next_scale_input, resize_codes

OFFICIAL_MAX_FLIP = 0.3


def _scale_residual(residual: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The residual on one grid: area-downsampled, or as it is on the latent grid."""
    if tuple(grid) == tuple(residual.shape[-2:]):
        return residual
    return F.adaptive_avg_pool2d(residual, grid)


def quantize_ste(features: torch.Tensor, grids: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Encoder features [B, d, H, W] → (summed codes [B, d, H, W] with straight-through gradients,
    bits per scale [B, h, w, d] int64, commitment loss: mean squared distance of the normalised
    residuals to their codes)."""
    d = features.shape[1]
    code = 1.0 / math.sqrt(d)
    residual, summed, bits_per_scale, commit = features, 0.0, [], 0.0
    for grid in grids:
        z = F.normalize(_scale_residual(residual, grid), dim=1)
        q = torch.where(z > 0, code, -code)
        commit = commit + (z - q).pow(2).sum(1).mean()
        up = resize_codes(z + (q - z).detach(), tuple(features.shape[-2:]))
        residual = residual - up.detach()
        summed = summed + up
        bits_per_scale.append((z > 0).to(torch.int64).permute(0, 2, 3, 1))
    return summed, bits_per_scale, commit / len(grids)


@torch.no_grad()
def self_correcting_targets(
    features: torch.Tensor, grids: Sequence[tuple[int, int]], max_flip: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder features [B, d, H, W] → (transformer inputs of scales 1..K-1 [B, L - 1, d], target bits [B, L, d]).

    With `max_flip` 0 the targets are `BSQVAE.encode`'s bits and the inputs `teacher_inputs` of them.
    Random numbers come from `generator` (on the CPU), so a training step is reproducible.
    """
    final = tuple(features.shape[-2:])
    residual, summed, inputs, targets = features, None, [], []
    for k, grid in enumerate(grids):
        bits = (F.normalize(_scale_residual(residual, grid), dim=1) > 0).permute(0, 2, 3, 1)
        targets.append(bits.reshape(bits.shape[0], -1, bits.shape[-1]))
        strength = int(torch.randint(0, round(100 * max_flip) + 1, (), generator=generator)) / 100
        flip = torch.rand(bits.shape, generator=generator) < strength
        codes = bits_to_codes(bits ^ flip.to(bits.device), dtype=features.dtype)
        residual = residual - resize_codes(codes, final)
        summed = add_scale(summed, codes, last=k == len(grids) - 1, final_size=final)
        if k + 1 < len(grids):
            inputs.append(next_scale_input(summed, grids[k + 1]))
    return torch.cat(inputs, dim=1), torch.cat(targets, dim=1).to(torch.uint8)
