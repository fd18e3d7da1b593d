"""Search strategies on one engine: raw, Best-of-N, importance sampling and TTS-VAR.

They differ only in the batch schedule and in which filter runs after which scale:
- raw: one candidate, no filter;
- best-of-n: N candidates throughout, best by reward at the end;
- importance-sampling: N candidates, reward resampling after every scale but the last, best at the end;
- tts-var: the paper's descending schedule ×N, clustering where the batch first drops twice,
  resampling where it drops later (after scales 2, 5 | 6, 9 for 13 scales), best at the end.

Ablations change the filter plan, not the engine: `filters` may name "random" (a uniform random
subset, `random_drop`) after any scale, e.g. in place of the cluster steps ("no clustering").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ttsvar.decode import decode_images, quantize_like_official
from ttsvar.errors import TTSVarError
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.text import TextCondition
from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import FILTER_CLUSTER, FILTER_RESAMPLE, BatchSchedule, default_filters
from ttsvar.search.filters import FILTER_RANDOM, cluster_filter, random_drop, record_reward, reward_resample, select_best
from ttsvar.state import VarState

STRATEGIES = ("raw", "best-of-n", "importance-sampling", "tts-var")


@dataclass
class SearchResult:
    images: torch.Tensor  # [k, 3, H, W] in 0..1, best first when a reward ranked them
    state: VarState
    record: dict


def plan(strategy: str, n: int, num_scales: int, schedule: BatchSchedule | None = None) -> tuple[BatchSchedule, dict[int, str]]:
    """The schedule and the filter after each scale ({scale: 'cluster'|'resample'}) of a strategy."""
    if strategy not in STRATEGIES:
        raise TTSVarError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{strategy}'.")
    if n < 1:
        raise TTSVarError(f"N (number of candidates) must be at least 1, got {n}.")
    if strategy == "raw":
        return BatchSchedule.preset("raw", 1, num_scales), {}
    if strategy == "best-of-n":
        return schedule or BatchSchedule.best_of_n(n, num_scales), {}
    if strategy == "importance-sampling":
        sched = schedule or BatchSchedule.best_of_n(n, num_scales)
        return sched, {k: FILTER_RESAMPLE for k in range(num_scales - 1)}
    sched = schedule or BatchSchedule.tts_var(n, num_scales)
    return sched, default_filters(sched, num_scales)


def run_strategy(
    model, condition: TextCondition, *, strategy: str, n: int, grid: ScaleGrid, reward=None, extractor=None,
    cfg: float = 3.0, tau: float = 0.5, top_p: float = 0.97, seed: int = 0, potential: str = "value",
    lam: float = 10.0, schedule: BatchSchedule | None = None, filters: dict[int, str] | None = None,
    keep: int = 1, on_scale: Callable[[int, VarState], None] | None = None, fast_filters: bool = False,
    score_from: int | None = None, thumbnails: int = 0,
) -> SearchResult:
    """Run a whole search and return the finished images (the `keep` best when a reward is given).

    Defaults follow the official code: filters look at full-resolution previews quantised to
    8 bits, clustering uses K-Means' fixed seed 0 (whatever `seed` is), and the reward history
    holds the scales a filter scored. Options:

    * `fast_filters`: previews decoded at about the size the filter's model reads
      (`input_size`), a fraction of the decoding work for slightly different previews;
    * `score_from`: also score every scale from this index on (up to the last), so DIFF, MAX
      and SUM run over every scale as the paper defines them (from scale 0) rather than over the
      scored scales only; each extra scale costs a preview decode and a reward call per candidate;
    * `thumbnails` > 0 keeps JPEG thumbnails of that size of what each step looked at in the record.
    """
    sched, default_plan = plan(strategy, n, grid.num_scales, schedule)
    filters = default_plan if filters is None else filters
    needs = set(filters.values())
    unknown = needs - {FILTER_CLUSTER, FILTER_RESAMPLE, FILTER_RANDOM}
    if unknown:
        raise TTSVarError(f"unknown filter kind(s) {sorted(unknown)}: use '{FILTER_CLUSTER}', '{FILTER_RESAMPLE}' or '{FILTER_RANDOM}'.")
    if FILTER_CLUSTER in needs and extractor is None:
        raise TTSVarError(f"strategy '{strategy}' clusters candidates: give it a feature extractor (e.g. DINOv2).")
    if (FILTER_RESAMPLE in needs or sched.sizes[-1] > 1) and reward is None:
        raise TTSVarError(f"strategy '{strategy}' ranks candidates: give it a reward model (e.g. ImageReward).")
    if score_from is not None:
        if reward is None:
            raise TTSVarError("score_from scores every scale from there on: give it a reward model (e.g. ImageReward).")
        if not 0 <= int(score_from) < grid.num_scales:
            raise TTSVarError(f"score_from must be a scale index within 0..{grid.num_scales - 1}, got {score_from}.")
    scored = set(range(int(score_from), grid.num_scales - 1)) if score_from is not None else set()
    state = start_state(model, condition, sched, grid, cfg=cfg, tau=tau, top_p=top_p, seed=seed)
    for scale in sorted(set(filters) | scored):
        state = sample_scales(state, until=scale + 1, on_scale=on_scale)
        if scale in scored and filters.get(scale) != FILTER_RESAMPLE:  # resampling scores by itself
            state = record_reward(state, reward, fast_filters=fast_filters)
        if filters.get(scale) == FILTER_CLUSTER:
            state = cluster_filter(state, extractor, fast_filters=fast_filters, thumbnails=thumbnails)
        elif filters.get(scale) == FILTER_RESAMPLE:
            state = reward_resample(state, reward, potential=potential, lam=lam, fast_filters=fast_filters,
                                    thumbnails=thumbnails)
        elif filters.get(scale) == FILTER_RANDOM:
            state = random_drop(state)
    if not state.finished:
        state = sample_scales(state, on_scale=on_scale)
    images = decode_images(state)
    if reward is not None:
        previews = quantize_like_official(images, model.vae.dtype)  # the final scoring sees 8-bit pixels too
        state = select_best(state, reward, k=min(keep, state.num_candidates), images=previews,
                            thumbnails=thumbnails)
        images = images[torch.tensor(state.events[-1]["kept"])]
    return SearchResult(images=images, state=state, record=state.record())


def compare_choices(first: SearchResult, second: SearchResult) -> dict:
    """Where two runs of one search plan kept different candidates. Candidates are compared by
    lineage id, which names the same candidate (same bits) in both runs.

    Returns ``{"same_choice": bool, "first_difference": scale or None, "filters": [{"after_scale",
    "kind", "first", "second", "same"}]}``: per filter the lineage ids each run kept, and whether
    the final selection is the same candidates.
    """
    rows = []
    for a, b in zip(first.state.events, second.state.events):
        rows.append({"after_scale": a["after_scale"], "kind": a["kind"], "first": a["lineage_after"],
                     "second": b["lineage_after"], "same": a["lineage_after"] == b["lineage_after"]})
    differs = next((r["after_scale"] for r in rows if not r["same"]), None)
    same = list(first.state.lineage) == list(second.state.lineage)
    return {"same_choice": same, "first_difference": differs, "filters": rows}


def compare_fast_filters(model, condition: TextCondition, **search) -> dict:
    """Run one search twice, with the official previews and with fast filters, and say whether
    the choices differ (:func:`compare_choices`; "first" = official, "second" = fast). `search`
    takes the keyword arguments of :func:`run_strategy` except `fast_filters`; both results are
    returned too, under "exact" and "fast"."""
    if "fast_filters" in search:
        raise TTSVarError("compare_fast_filters runs both settings itself; leave out fast_filters.")
    exact = run_strategy(model, condition, fast_filters=False, **search)
    fast = run_strategy(model, condition, fast_filters=True, **search)
    return {**compare_choices(exact, fast), "exact": exact, "fast": fast}
