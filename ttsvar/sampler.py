"""Start a search and advance its candidates scale by scale.

Each candidate draws its bits from (seed, scale, lineage id) alone, so the same candidate gets
the same bits whether the scales were sampled in one call or several, whether its KV cache was
reused or rebuilt, and whatever other candidates shared its batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from ttsvar.errors import TTSVarError
from ttsvar.infinity.generate import SamplingSettings, ScaleRun, candidate_seed, encode_texts, sample_bits
from ttsvar.infinity.grids import ScaleGrid
from ttsvar.infinity.text import TextCondition
from ttsvar.schedule import BatchSchedule
from ttsvar.state import CacheSlot, VarState

OnScale = Callable[[int, VarState], None]


def start_state(
    model, condition: TextCondition, schedule: BatchSchedule, grid: ScaleGrid, *, cfg: float = 3.0,
    tau: float = 0.5, top_p: float = 0.97, seed: int = 0, cfg_insertion_layer: int = 0,
) -> VarState:
    """A search before its first scale: sizes[0] candidates with lineage ids 0..sizes[0]-1."""
    schedule.validate(grid.num_scales)
    if condition.channels != model.text_channels:
        raise TTSVarError(
            f"the prompt was encoded with {condition.encoder or 'a text encoder'} ({condition.channels} channels) "
            f"but {model.name} expects {model.text_channels}: encode the prompt with this model's text encoder."
        )
    settings = SamplingSettings.build(
        grid.num_scales, cfg=cfg, tau=tau, top_p=top_p, cfg_layer=cfg_insertion_layer, depth=model.transformer.arch.depth
    )
    negatives = [condition.negative_features] if condition.negative_features is not None else None
    text = encode_texts(model, [condition.features], negatives, settings.guided)
    return VarState(
        model=model, condition=condition, text=text, grid=grid, schedule=schedule, settings=settings,
        seed=int(seed), lineage=tuple(range(schedule.sizes[0])),
    )


def segment_capacity(state: VarState, scale: int) -> int:
    """Tokens a cache must hold for the current batch: through the next scale after which the
    batch shrinks (the filter there gathers into a new, right-sized cache), or the whole grid."""
    sizes, grid = state.schedule.sizes, state.grid
    for k in range(max(scale, 1), grid.num_scales):
        if sizes[k] < sizes[k - 1]:
            return grid.token_offset(k + 1)
    return grid.total_tokens


def _run_for(state: VarState) -> ScaleRun:
    """The working set that continues `state`: its own cache if still there and on the model's
    device (a host like ComfyUI may have moved the model since), else rebuilt."""
    prompts = [0] * state.num_candidates
    capacity = segment_capacity(state, state.next_scale)
    device = state.model.device
    text = state.text.to(device)
    cache = state.cache_slot.take()
    if cache is not None and cache.length == state.grid.token_offset(state.next_scale) and cache.device == device:
        cache.reserve(capacity)
        return ScaleRun(state.model, state.grid, state.settings, text, prompts, 1, cache=cache,
                        summed=state.code_map.to(device), next_scale=state.next_scale)
    del cache
    run = ScaleRun(state.model, state.grid, state.settings, text, prompts, 1, capacity=capacity)
    run.replay(state.bits)
    return run


def check_batch(state: VarState, scale: int) -> None:
    """Scale k>0 is sampled with sizes[k-1] candidates: a missing filter is a clear error."""
    if scale == 0:
        return
    expected = state.schedule.sizes[scale - 1]
    if state.num_candidates != expected:
        raise TTSVarError(
            f"the batch schedule keeps {expected} candidates after scale {scale - 1}, but this state has "
            f"{state.num_candidates}: add a cluster filter or reward resample after scale {scale - 1} "
            f"(or sample only up to scale {scale})."
        )


def checked_until(state: VarState, until: int | None) -> int:
    """The exclusive end scale of a sampling call (None = the last scale), checked against the state."""
    until = state.num_scales if until is None else int(until)
    if not state.next_scale < until <= state.num_scales:
        raise TTSVarError(
            f"'until' scale must be within {state.next_scale + 1}..{state.num_scales} for a state whose next "
            f"scale is {state.next_scale} (of {state.num_scales}), got {until}."
        )
    return until


def sample_scales(state: VarState, until: int | None = None, *, on_scale: OnScale | None = None) -> VarState:
    """Sample scales [state.next_scale, until) and return the new state (the input is untouched).

    `on_scale(k, state_after_k)` runs after every scale: progress, previews, and cancellation
    (raise in it to stop).
    """
    until = checked_until(state, until)
    for k in range(state.next_scale, until):
        check_batch(state, k)
    run = _run_for(state)
    bits = list(state.bits)
    with torch.inference_mode():
        for k in range(state.next_scale, until):
            logits = run.forward()
            seeds = [candidate_seed(state.seed, k, lineage) for lineage in state.lineage]
            new_bits = sample_bits(logits, state.settings.top_p, seeds).reshape(run.batch, *state.grid.scales[k], -1)
            run.commit(new_bits)
            bits.append(new_bits.cpu())
            if on_scale is not None and k + 1 < until:
                on_scale(k, replace(state, bits=tuple(bits), code_map=run.summed, cache_slot=CacheSlot()))
    done = replace(state, bits=tuple(bits), code_map=run.summed, cache_slot=CacheSlot(run.cache))
    if on_scale is not None:
        on_scale(until - 1, done)
    return done
