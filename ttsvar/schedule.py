"""Batch schedules: how many candidates live through each scale, and what that costs.

Convention (the official code's `bs_sis`; scales are numbered from 0):

* ``sizes[k]`` is the number of candidates kept **after** scale ``k``.
* Scale 0 is generated with ``sizes[0]`` candidates; scale ``k > 0`` is generated with
  ``sizes[k-1]`` candidates (what survived the previous scale) — see :meth:`BatchSchedule.generated_batch`.
* Where ``sizes[k] < sizes[k-1]`` a filter after scale ``k`` picks ``sizes[k]`` of the
  ``sizes[k-1]`` candidates (:meth:`BatchSchedule.drop_scales`). After the last scale the final
  selection picks the best of ``sizes[-1]`` candidates, so ``sizes[-1]`` plays the role of the
  "N" of Best-of-N.

With the paper's 13-scale schedule 8,8,6,6,6,4,2,2,2,1,1,1,1 (×N) the scales are generated
with 8,8,8,6,6,6,4,2,2,2,1,1,1 (×N) candidates and the filters run after scales 2, 5, 6 and 9.

This module is pure Python (no torch import) so that nodes and the CLI can build, validate and
cost schedules cheaply.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Mapping, Sequence

from ttsvar.errors import TTSVarError

__all__ = [
    "BatchSchedule",
    "CostEstimate",
    "PRESETS",
    "PAPER_SCHEDULES",
    "FILTER_CLUSTER",
    "FILTER_RESAMPLE",
    "default_filters",
]

#: Preset names accepted by :meth:`BatchSchedule.preset` (an API: nodes show them in a combo box).
PRESETS = ("tts-var", "best-of-n", "importance-sampling", "raw", "custom")

#: The tts-var preset's descending schedules, in units of N, keyed by the number of scales
#: (one for every scale count an Infinity pixel budget gives: 7, 10, 12, 13).
#:
#: * 13 scales (pn 1M, 1024²): the paper's (Sec. 4.1; the official default ``bs_sis``). Drops after
#:   scales 2 and 5 (cluster), 6 and 9 (resample): 8 → 6 → 4 → 2 → 1.
#: * 10 scales (pn 0.25M, 512²): the paper's for Infinity-8B (appendix). Same drops, except that the
#:   last resample moves from 9 (the last scale there) to 8.
#: * 12 and 7 scales (pn 0.60M and 0.06M): derived here, by the one rule that reproduces both paper
#:   schedules. The scale grids of every pixel budget are prefixes of the 1M grids (same aspect
#:   template), so a filter after scale k sees the same token grid at every budget. Rule: the same
#:   four drops with the same counts (8 → 6 → 4 → 2 → 1; two cluster, then two resample points),
#:   each at the paper's 13-scale position (2, 5, 6, 9) when that leaves room for the later ones
#:   before the last scale, otherwise as late as that allows:
#:   ``drop_i = min(paper_i, K - 2 - (3 - i))``. The last drop is thus never at the last scale:
#:   there at least one scale is left after the last filter, so the four-filter example graph
#:   ("Sample Scales (0) → filter" four times, then "Sample Scales (-1) → Select Best") runs
#:   unchanged at every resolution, and the final selection always sees finished candidates
#:   that were sampled after the last resampling (a resample at the last scale would leave
#:   resampled duplicates with no scale to diverge in).
#:
#:   - 12 scales: 2, 5, 6, 9, exactly the paper's filters on exactly the paper's grids
#:     (4×4, 12×12 | 16×16, 32×32 at 1:1); only the 64×64 scale is missing at the end.
#:   - 7 scales (the grids end at 16×16): cluster after 2 (4×4, the paper's first cluster grid)
#:     and 3 (6×6), resample after 4 (8×8) and 5 (12×12); scale 6 (16×16) is sampled by the
#:     survivors alone. Only scales 2..5 can hold four drops before the last scale once the first
#:     stays on the paper's 4×4 grid, so the later filters look at coarser images than at 1024²:
#:     at this budget the whole image is 16×16 tokens, and 12×12 is already most of its structure.
PAPER_SCHEDULES: dict[int, tuple[int, ...]] = {
    13: (8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1, 1),
    12: (8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1),
    10: (8, 8, 6, 6, 6, 4, 2, 2, 1, 1),
    7: (8, 8, 6, 4, 2, 1, 1),
}

FILTER_CLUSTER = "cluster"
FILTER_RESAMPLE = "resample"

_INPUT = "batch schedule"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_n(n: Any) -> int:
    if not _is_int(n) or int(n) < 1:
        raise TTSVarError(f"N (candidates per prompt) must be a whole number ≥ 1, got {n!r}. Set N to 1 or more.")
    return int(n)


def _check_num_scales(num_scales: Any) -> int:
    if not _is_int(num_scales) or int(num_scales) < 1:
        raise TTSVarError(
            f"number of scales must be a whole number ≥ 1, got {num_scales!r}. "
            "It comes from the model's scale grid (13 at 1024², 10 at 512²)."
        )
    return int(num_scales)


def _fmt(sizes: Sequence[Any]) -> str:
    return ",".join(str(s) for s in sizes)


def _suggest(num_scales: int) -> str:
    """A descending example list of the right length: the tts-var schedule when there is one
    (it works with the four-filter example graph), else stretched from the 13-scale one."""
    if num_scales in PAPER_SCHEDULES:
        return _fmt(PAPER_SCHEDULES[num_scales])
    base = PAPER_SCHEDULES[13]
    if num_scales == 1:
        return "1"
    picks = [base[round(i * (len(base) - 1) / (num_scales - 1))] for i in range(num_scales)]
    return _fmt(picks)


@dataclass(frozen=True)
class BatchSchedule:
    """Number of candidates kept after each scale (see the module docstring for the convention).

    The constructor checks the form (non-empty, whole numbers ≥ 1, non-increasing); the length
    against a model's scale count is checked by :meth:`validate`.
    """

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        raw = self.sizes
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise TTSVarError(
                f"{_INPUT} must be a list of whole numbers, got {raw!r}. "
                "Use BatchSchedule.parse('8,8,6,...', num_scales) for text."
            )
        object.__setattr__(self, "sizes", tuple(raw))
        self._check_form()
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def tts_var(cls, n: int, num_scales: int) -> "BatchSchedule":
        """The tts-var descending schedule ×N for 7, 10, 12 or 13 scales (:data:`PAPER_SCHEDULES`)."""
        n = _check_n(n)
        num_scales = _check_num_scales(num_scales)
        base = PAPER_SCHEDULES.get(num_scales)
        if base is None:
            supported = ", ".join(str(k) for k in sorted(PAPER_SCHEDULES))
            raise TTSVarError(
                f"the tts-var schedule is defined for {supported} scales (the Infinity pixel budgets), "
                f"not for {num_scales}. Give a custom schedule of {num_scales} non-increasing counts "
                f"(each multiplied by N), for example '{_suggest(num_scales)}'."
            )
        return cls(tuple(s * n for s in base))

    @classmethod
    def best_of_n(cls, n: int, num_scales: int) -> "BatchSchedule":
        """N candidates through every scale; only the final selection picks."""
        n = _check_n(n)
        return cls((n,) * _check_num_scales(num_scales))

    @classmethod
    def parse(cls, text: str, num_scales: int, n: int = 1) -> "BatchSchedule":
        """Parse a custom list such as ``"8,8,6,6,6,4,2,2,2,1,1,1,1"`` or ``"8 8 6 …"``.

        Separators: commas, spaces, semicolons; surrounding brackets are ignored. Every entry is
        multiplied by ``n``; an entry may carry an ``N`` suffix (``"8N"``) which means the same.
        The result is validated against ``num_scales``.
        """
        n = _check_n(n)
        num_scales = _check_num_scales(num_scales)
        if not isinstance(text, str):
            raise TTSVarError(f"{_INPUT} text must be a string like '8,8,6,...', got {type(text).__name__}.")
        body = text.strip().strip("[](){}").strip()
        tokens = [tok for tok in re.split(r"[\s,;]+", body) if tok]
        if not tokens:
            raise TTSVarError(
                f"{_INPUT} is empty; expected {num_scales} comma- or space-separated whole numbers, "
                f"for example '{_suggest(num_scales)}'."
            )
        values = []
        for pos, tok in enumerate(tokens):
            digits = tok[:-1] if tok[-1:] in ("n", "N") else tok
            if not re.fullmatch(r"[+-]?\d+", digits):
                raise TTSVarError(
                    f"{_INPUT}: entry {pos} ({tok!r}) is not a whole number. "
                    f"Write whole numbers separated by commas or spaces, e.g. '{_suggest(num_scales)}'."
                )
            value = int(digits)
            if value < 1:
                raise TTSVarError(
                    f"{_INPUT}: entry {pos} is {value}; every scale needs at least 1 candidate. "
                    "Use counts ≥ 1."
                )
            values.append(value * n)
        schedule = cls(tuple(values))
        schedule.validate(num_scales)
        return schedule

    @classmethod
    def preset(cls, name: str, n: int, num_scales: int, custom: str = "") -> "BatchSchedule":
        """One of :data:`PRESETS`.

        * ``tts-var``: the paper's descending schedule ×N (:meth:`tts_var`);
        * ``best-of-n`` and ``importance-sampling``: N at every scale;
        * ``raw``: one candidate at every scale (N is ignored);
        * ``custom``: :meth:`parse` of ``custom`` with each entry ×N.
        """
        key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
        if key == "tts-var":
            return cls.tts_var(n, num_scales)
        if key in ("best-of-n", "importance-sampling"):
            return cls.best_of_n(n, num_scales)
        if key == "raw":
            return cls((1,) * _check_num_scales(num_scales))
        if key == "custom":
            return cls.parse(custom, num_scales, n)
        raise TTSVarError(f"unknown schedule preset {name!r}; choose one of: {', '.join(PRESETS)}.")

    # ------------------------------------------------------------------ checks
    def _check_form(self) -> None:
        sizes = self.sizes
        if len(sizes) == 0:
            raise TTSVarError(f"{_INPUT} is empty; give one candidate count per scale.")
        for pos, value in enumerate(sizes):
            if not _is_int(value):
                raise TTSVarError(
                    f"{_INPUT}: entry {pos} ({value!r}) is not a whole number. "
                    "Use whole candidate counts ≥ 1."
                )
            if value < 1:
                raise TTSVarError(
                    f"{_INPUT}: entry {pos} is {value}; every scale needs at least 1 candidate. "
                    "Use counts ≥ 1."
                )
        for pos in range(1, len(sizes)):
            if sizes[pos] > sizes[pos - 1]:
                raise TTSVarError(
                    f"{_INPUT}: entry {pos} is {sizes[pos]}, more than entry {pos - 1} ({sizes[pos - 1]}); "
                    "filters can only keep or drop candidates, so counts must not increase "
                    f"(schedule was {_fmt(sizes)})."
                )

    def validate(self, num_scales: int) -> "BatchSchedule":
        """Check the schedule against a model with ``num_scales`` scales; returns ``self``.

        Raises :class:`TTSVarError` naming the ``batch schedule``, the offending position and value.
        """
        num_scales = _check_num_scales(num_scales)
        self._check_form()
        if len(self.sizes) != num_scales:
            raise TTSVarError(
                f"{_INPUT} has {len(self.sizes)} entries ({_fmt(self.sizes)}) but the model generates "
                f"{num_scales} scales at this resolution; give exactly {num_scales} counts, "
                f"for example '{_suggest(num_scales)}'."
            )
        return self

    # ------------------------------------------------------------------ queries
    @property
    def num_scales(self) -> int:
        return len(self.sizes)

    @property
    def final_size(self) -> int:
        """Candidates reaching the final selection (the N of an equivalent Best-of-N)."""
        return self.sizes[-1]

    def generated_batch(self, k: int) -> int:
        """How many candidates scale ``k`` is sampled with: ``sizes[0]`` for k=0, else ``sizes[k-1]``."""
        if not _is_int(k) or not 0 <= k < len(self.sizes):
            raise TTSVarError(f"scale index must be in 0..{len(self.sizes) - 1}, got {k!r}.")
        return self.sizes[0] if k == 0 else self.sizes[k - 1]

    def drop_scales(self) -> list[int]:
        """Scale indices k ≥ 1 after which a filter shrinks the batch (``sizes[k] < sizes[k-1]``)."""
        return [k for k in range(1, len(self.sizes)) if self.sizes[k] < self.sizes[k - 1]]

    def cost(
        self,
        token_counts: Sequence[int],
        width: int = 2048,
        n: int | None = None,
    ) -> "CostEstimate":
        """Relative transformer compute and KV-cache memory of this schedule.

        Model (per transformer layer, per CFG row; t_k = tokens of scale k = h_k·w_k,
        T_k = t_0 + … + t_k the cached sequence length through scale k, C = ``width``):

        * FLOPs_k  = b_k · (24·C²·t_k + 4·C·t_k·T_k)
          (24·C²: QKV, output and a 4× MLP at 2 FLOPs per multiply-add;
          4·C·t_k·T_k: the scores QKᵀ and the weighted sum AV over the cache),
          i.e. ∝ b_k · t_k · (1 + attention_weight · T_k) with attention_weight = 1/(6·C);
        * KV_k     = b_k · T_k · 2·C values (K and V) held at the end of scale k, before the filter;

        where b_k = :meth:`generated_batch`. Left out: cross-attention to the text, the embeddings and
        the head, the VAE decodes and the reward/feature models; depth and CFG multiply every scale
        alike and cancel in the ratios. ``compute`` is normalised by one candidate's whole run and
        ``kv_memory`` by one candidate's cache after the last scale.

        ``n`` is the N of the Best-of-N reference (default: :attr:`final_size`, the number of
        candidates reaching the final selection).
        """
        counts = list(token_counts) if isinstance(token_counts, Sequence) and not isinstance(token_counts, str) else None
        if counts is None or len(counts) != len(self.sizes):
            got = len(counts) if counts is not None else repr(token_counts)
            raise TTSVarError(
                f"token counts must list one count per scale ({len(self.sizes)} for this {_INPUT}), got {got}. "
                "Pass h·w of every scale of the model's scale grid."
            )
        for pos, t in enumerate(counts):
            if not _is_int(t) or t < 1:
                raise TTSVarError(f"token counts: entry {pos} ({t!r}) must be a whole number ≥ 1 (h·w of scale {pos}).")
        if not _is_int(width) or width < 1:
            raise TTSVarError(f"width must be the model's hidden size (e.g. 2048 for Infinity-2B), got {width!r}.")
        ref_n = self.final_size if n is None else _check_n(n)
        counts = [int(t) for t in counts]
        cum = list(accumulate(counts))
        c = float(width)
        single_flops = [24.0 * c * c * t + 4.0 * c * t * tt for t, tt in zip(counts, cum)]
        gen = [self.generated_batch(k) for k in range(len(self.sizes))]
        total_single = sum(single_flops)
        compute = tuple(b * f / total_single for b, f in zip(gen, single_flops))
        kv_memory = tuple(b * tt / cum[-1] for b, tt in zip(gen, cum))
        return CostEstimate(
            token_counts=tuple(counts),
            generated=tuple(gen),
            compute=compute,
            kv_memory=kv_memory,
            reference_n=ref_n,
            width=int(width),
            single_flops_per_layer=total_single,
            single_kv_values_per_layer=2.0 * c * cum[-1],
        )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"sizes": [...]}``."""
        return {"sizes": list(self.sizes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BatchSchedule":
        if not isinstance(data, Mapping) or "sizes" not in data:
            raise TTSVarError(f"{_INPUT} data must be a mapping with a 'sizes' list, got {data!r}.")
        sizes = data["sizes"]
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TTSVarError(f"{_INPUT} data: 'sizes' must be a list of whole numbers, got {sizes!r}.")
        return cls(tuple(sizes))

    def to_text(self) -> str:
        """Comma-separated counts; ``BatchSchedule.parse(s.to_text(), s.num_scales)`` gives ``s`` back."""
        return _fmt(self.sizes)

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class CostEstimate:
    """Per-scale relative cost of a schedule; see :meth:`BatchSchedule.cost` for the model.

    ``compute[k]``: FLOPs of scale k (with its whole batch) over one candidate's whole run.
    ``kv_memory[k]``: KV-cache size at the end of scale k over one candidate's final cache.
    """

    token_counts: tuple[int, ...]
    generated: tuple[int, ...]
    compute: tuple[float, ...]
    kv_memory: tuple[float, ...]
    reference_n: int
    width: int
    single_flops_per_layer: float  # one candidate, one CFG row, one layer, whole run
    single_kv_values_per_layer: float  # one candidate, one CFG row, one layer, after the last scale

    @property
    def total_compute(self) -> float:
        """Total FLOPs relative to a single candidate (raw inference)."""
        return float(sum(self.compute))

    @property
    def peak_kv_memory(self) -> float:
        """Largest KV cache over the run, relative to a single candidate's final cache."""
        return float(max(self.kv_memory))

    def relative_to_best_of_n(self) -> float:
        """Total compute over Best-of-N's with N = ``reference_n`` (1.0 for a constant schedule)."""
        return self.total_compute / self.reference_n

    def kv_relative_to_best_of_n(self) -> float:
        """Peak KV memory over Best-of-N's peak (N candidates at full length)."""
        return self.peak_kv_memory / self.reference_n

    def tflops(self, depth: int, cfg: bool = True) -> float:
        """Absolute estimate in TFLOP for a model with ``depth`` layers (doubled with CFG)."""
        return self.total_compute * self.single_flops_per_layer * depth * (2 if cfg else 1) / 1e12

    def peak_kv_gib(self, depth: int, cfg: bool = True, bytes_per_value: int = 2) -> float:
        """Absolute estimate of the peak KV cache in GiB (bf16 by default, doubled with CFG)."""
        values = self.peak_kv_memory * self.single_kv_values_per_layer * depth * (2 if cfg else 1)
        return values * bytes_per_value / 2**30

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the totals and ratios included."""
        return {
            "token_counts": list(self.token_counts),
            "generated": list(self.generated),
            "compute": list(self.compute),
            "kv_memory": list(self.kv_memory),
            "reference_n": self.reference_n,
            "width": self.width,
            "single_flops_per_layer": self.single_flops_per_layer,
            "single_kv_values_per_layer": self.single_kv_values_per_layer,
            "total_compute": self.total_compute,
            "peak_kv_memory": self.peak_kv_memory,
            "compute_vs_best_of_n": self.relative_to_best_of_n(),
            "kv_vs_best_of_n": self.kv_relative_to_best_of_n(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CostEstimate":
        try:
            return cls(
                token_counts=tuple(int(x) for x in data["token_counts"]),
                generated=tuple(int(x) for x in data["generated"]),
                compute=tuple(float(x) for x in data["compute"]),
                kv_memory=tuple(float(x) for x in data["kv_memory"]),
                reference_n=int(data["reference_n"]),
                width=int(data["width"]),
                single_flops_per_layer=float(data["single_flops_per_layer"]),
                single_kv_values_per_layer=float(data["single_kv_values_per_layer"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TTSVarError(f"cost estimate data is incomplete or malformed ({exc!r}); rebuild it with BatchSchedule.cost().") from None


def default_filters(schedule: BatchSchedule, num_scales: int) -> dict[int, str]:
    """The paper's filter plan: which filter runs after each drop scale.

    Rule: the first two drop scales (where the batch shrinks) use ``"cluster"`` (structure is
    visible but rewards are not yet reliable), every later drop scale uses ``"resample"``.
    13- and 12-scale tts-var schedules → {2: cluster, 5: cluster, 6: resample, 9: resample};
    10-scale (8B/512²) → {2: cluster, 5: cluster, 6: resample, 8: resample};
    7-scale → {2: cluster, 3: cluster, 4: resample, 5: resample} (see :data:`PAPER_SCHEDULES`).
    The final selection after the last scale is not part of the plan (it always runs); a drop at
    the last scale gets a filter like any other and the final selection follows it.
    A constant schedule (Best-of-N, importance sampling) has no drop scales, so the plan is empty:
    importance sampling's same-size resampling steps are chosen by the pipeline, not here.
    """
    if not isinstance(schedule, BatchSchedule):
        raise TTSVarError(f"{_INPUT} must be a BatchSchedule, got {type(schedule).__name__}.")
    schedule.validate(num_scales)
    drops = schedule.drop_scales()
    return {k: (FILTER_CLUSTER if i < 2 else FILTER_RESAMPLE) for i, k in enumerate(drops)}
