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

from ttsvar.decode import decode_images
from ttsvar.errors import TTSVarError
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.text import TextCondition
from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import FILTER_CLUSTER, FILTER_RESAMPLE, BatchSchedule, default_filters
from ttsvar.search.filters import FILTER_RANDOM, cluster_filter, random_drop, reward_resample, select_best
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
) -> SearchResult:
    """Run a whole search and return the finished images (the `keep` best when a reward is given).

    Filters look at fully decoded intermediate images, as the official code does; with
    `fast_filters` the code map is decoded at about the size the filter's model reads
    (`input_size`), a fraction of the decoding work for a slightly different preview.
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
    state = start_state(model, condition, sched, grid, cfg=cfg, tau=tau, top_p=top_p, seed=seed)
    for scale in sorted(filters):
        state = sample_scales(state, until=scale + 1, on_scale=on_scale)
        if filters[scale] == FILTER_CLUSTER:
            state = cluster_filter(state, extractor, seed=seed, preview_size=fast_filters)
        elif filters[scale] == FILTER_RANDOM:
            state = random_drop(state)
        else:
            state = reward_resample(state, reward, potential=potential, lam=lam, preview_size=fast_filters)
    if not state.finished:
        state = sample_scales(state, on_scale=on_scale)
    images = decode_images(state)
    if reward is not None:
        state = select_best(state, reward, k=min(keep, state.num_candidates), images=images)
        images = images[torch.tensor(state.events[-1]["kept"])]
    return SearchResult(images=images, state=state, record=state.record())
