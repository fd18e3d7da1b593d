"""Confidence intervals for accuracies measured on a prompt set (numpy, no torch).

* `wilson_interval`: the Wilson score interval of one accuracy (k of n correct). Unlike the
  normal approximation p ± z·√(p(1−p)/n) it stays inside [0, 1] and does not collapse to a
  point at 0 or n correct, which matters at the accuracies and set sizes of a benchmark.
* `paired_bootstrap_interval`: the interval of a *difference* of accuracies between two
  strategies run on the same prompts. The two results on one prompt are correlated (same
  prompt, same seed: often the same image), so two independent Wilson intervals would be far
  too wide; resampling prompts and keeping each prompt's pair together respects that.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ttsvar.errors import TTSVarError

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (lower, upper) for `correct` successes in `total` trials."""
    if total < 1 or not 0 <= correct <= total:
        raise TTSVarError(f"a Wilson interval needs 0 <= correct <= total and total >= 1, got {correct} of {total}.")
    p = correct / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z / (1 + z2 / total) * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == total else centre + half)


def paired_bootstrap_interval(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """(mean(a) − mean(b), lower, upper): a percentile bootstrap over paired units.

    `a[i]` and `b[i]` are the scores of two strategies on unit i (a prompt's accuracy over its
    samples, 0/1 with one sample per prompt). Each resample draws units with replacement and
    keeps their pairs; the interval is the central `confidence` part of the resampled
    differences. Deterministic for a `seed`.
    """
    if len(a) != len(b) or not a:
        raise TTSVarError(f"a paired bootstrap needs two equally long, non-empty score lists, got {len(a)} and {len(b)}.")
    if not 0 < confidence < 1 or resamples < 1:
        raise TTSVarError(f"confidence must be within (0, 1) and resamples >= 1, got {confidence} and {resamples}.")
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[picks].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    lower, upper = np.percentile(means, [tail, 100 - tail])
    return float(diffs.mean()), float(lower), float(upper)
