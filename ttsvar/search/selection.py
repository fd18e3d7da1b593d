"""Final selection: the best candidates by reward (Best-of-N's last step)."""

from __future__ import annotations

import numbers

import torch

from ttsvar.errors import TTSVarError


def top_k_indices(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest rewards, best first; ties go to the lower index.

    ``rewards`` is a float tensor [B]. ±inf rewards sort normally; NaN is an error. Returns an
    int64 tensor [k] on the CPU. Errors (:class:`TTSVarError`): k < 1, k > B, NaN, wrong shape.
    """
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1 or rewards.numel() == 0:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise TTSVarError(f"rewards must be a tensor [candidates] with at least one entry, got {shape}.")
    n = rewards.numel()
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise TTSVarError(f"number of candidates to select must be a whole number in 1..{n} (the candidates there are), got {k!r}.")
    r = rewards.detach().cpu()
    if not r.is_floating_point():
        r = r.to(torch.float64)
    if bool(torch.isnan(r).any()):
        i = int(torch.isnan(r).nonzero()[0, 0])
        raise TTSVarError(
            f"reward model output is NaN for candidate {i}; cannot rank. Check the reward model "
            "(weights, precision, input images)."
        )
    order = torch.sort(r, descending=True, stable=True).indices
    return order[: int(k)].to(torch.long)
