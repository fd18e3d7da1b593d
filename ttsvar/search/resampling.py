"""Reward resampling: draw survivors with probability ∝ exp(λ·P) (paper Sec. 4.3)."""

from __future__ import annotations

import math
import numbers

import torch

from ttsvar.errors import TTSVarError


def _check_potentials(potentials: torch.Tensor) -> torch.Tensor:
    if not isinstance(potentials, torch.Tensor):
        raise TTSVarError(f"potentials must be a tensor [candidates], got {type(potentials).__name__}.")
    if potentials.dim() != 1 or potentials.numel() == 0:
        raise TTSVarError(f"potentials must have shape [candidates] with at least one entry, got {tuple(potentials.shape)}.")
    p = potentials.detach().to(torch.float64)
    bad = ~torch.isfinite(p)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise TTSVarError(
            f"potentials are not finite (candidate {i}: {p[i].item()}); they come from the reward model output, "
            "so check the reward model (weights, precision, input images)."
        )
    return p


def _check_lam(lam: float) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not math.isfinite(float(lam)) or lam < 0:
        raise TTSVarError(
            f"resampling temperature λ must be a finite number ≥ 0, got {lam!r}. "
            "0 draws uniformly, the paper uses 10, larger values approach picking the best."
        )
    return float(lam)


def resampling_weights(potentials: torch.Tensor, lam: float) -> torch.Tensor:
    """softmax(λ·P) in float64 on the CPU, computed as exp(λ·(P − max P)) / Σ, so it never overflows.

    λ = 0 gives uniform weights; a huge λ puts all mass on the maximum (shared equally by ties).
    """
    p = _check_potentials(potentials).cpu()
    lam = _check_lam(lam)
    z = (p - p.max()) * lam  # ≤ 0; exactly 0 at the maximum, so the sum is ≥ 1
    w = torch.exp(z)
    return w / w.sum()


def resample_indices(potentials: torch.Tensor, lam: float, k: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``k`` candidate indices **with replacement** from weights softmax(λ·P).

    Same convention as the official code (``torch.multinomial(weights, k, replacement=True)``):
    one candidate may be drawn several times (its copies diverge in later scales); ``k`` may be
    smaller than, equal to or larger than the number of candidates.

    The drawn indices are returned **sorted ascending**: with replacement the draw order carries
    no meaning, and sorted indices keep survivors in their original relative order with copies of
    one parent adjacent, which keeps lineage readable. The result is a deterministic function of
    (potentials, λ, k, generator state). The draw uses ``generator`` on its own device; the result
    is an int64 tensor [k] on the CPU.

    Errors (:class:`TTSVarError`): λ negative or not finite, k < 1, NaN/inf potentials.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise TTSVarError(f"number of candidates to draw must be a whole number ≥ 1, got {k!r}.")
    if not isinstance(generator, torch.Generator):
        raise TTSVarError(
            f"resampling needs a torch.Generator (seeded from the run's seed and scale) so results repeat, "
            f"got {type(generator).__name__}."
        )
    weights = resampling_weights(potentials, lam)
    drawn = torch.multinomial(weights.to(generator.device), int(k), replacement=True, generator=generator)
    return torch.sort(drawn.cpu()).values.to(torch.long)
