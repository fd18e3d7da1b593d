"""Potential scores: one number per candidate from its reward history (paper Sec. 4.3).

The potential P is the quantity resampling exponentiates (weights ∝ exp(λ·P), see
:mod:`ttsvar.search.resampling`); this module only combines rewards, it never exponentiates.
"""

from __future__ import annotations

import torch

from ttsvar.errors import TTSVarError

#: Accepted potential kinds (an API: nodes show them in a combo box).
POTENTIAL_KINDS = ("value", "diff", "max", "sum")


def potential(history: torch.Tensor, kind: str) -> torch.Tensor:
    """Combine each candidate's reward history into a potential.

    ``history`` is a float tensor [B, T]: row b holds candidate b's rewards at the T scales scored
    so far, oldest first; the last column is the current scale. Columns are *scored* scales only
    (the pipeline scores at resampling scales, not at every scale), so MAX and SUM run over those.

    * ``"value"``: r_T (the current reward; the paper's and official code's default);
    * ``"diff"``:  r_T − r_{T−1}; with a single column there is no previous reward and DIFF
      equals VALUE (the missing previous reward counts as 0);
    * ``"max"``:   max over the history;
    * ``"sum"``:   sum over the history.

    Returns a tensor [B] with the dtype of ``history`` (integers are promoted to float32) on its device.
    Raises :class:`TTSVarError` for an unknown kind, a wrong shape, or NaN/inf anywhere.
    """
    key = kind.strip().lower() if isinstance(kind, str) else kind
    if key not in POTENTIAL_KINDS:
        raise TTSVarError(f"unknown potential kind {kind!r}; choose one of: {', '.join(POTENTIAL_KINDS)}.")
    if not isinstance(history, torch.Tensor):
        raise TTSVarError(f"reward history must be a tensor [candidates, scored scales], got {type(history).__name__}.")
    if history.dim() != 2 or history.shape[0] == 0 or history.shape[1] == 0:
        raise TTSVarError(
            f"reward history must have shape [candidates, scored scales] with both ≥ 1, got {tuple(history.shape)}. "
            "For rewards of the current scale only, pass rewards[:, None]."
        )
    if not history.is_floating_point():
        history = history.to(torch.float32)
    bad = ~torch.isfinite(history)
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise TTSVarError(
            f"reward model output is not finite (value {history[b, t].item()} for candidate {b} at scored scale "
            f"column {t}). Check the reward model: its weights, its precision (try float32) and its input images."
        )
    if key == "value":
        return history[:, -1].clone()
    if key == "diff":
        if history.shape[1] == 1:
            return history[:, -1].clone()
        return history[:, -1] - history[:, -2]
    if key == "max":
        return history.max(dim=1).values
    return history.sum(dim=1)
