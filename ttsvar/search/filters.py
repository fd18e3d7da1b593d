"""State-level search steps: cluster filter, reward resampling and final selection.

Each takes a `VarState` after some scale and returns a new one with fewer (or re-drawn)
candidates; the input state is never changed. Conventions:
- the number kept defaults to the batch schedule's size after the current scale;
- resampling draws with replacement (as the official TTS-VAR code) from weights exp(λ·P),
  with its own generator seeded from (seed, scale), so a run is reproducible end to end;
- a candidate drawn twice continues as two candidates with different randomness;
- with ``thumbnails`` > 0 each event also keeps tiny JPEG thumbnails of the images the step looked
  at (every candidate before it, in ``lineage_before`` order), so the search can be drawn.
"""

from __future__ import annotations

import hashlib

import torch

from ttsvar.decode import decode_images
from ttsvar.errors import TTSVarError
from ttsvar.scoring.base import FeatureExtractor, RewardModel
from ttsvar.search.clustering import cluster_representatives
from ttsvar.search.potentials import potential as potential_of
from ttsvar.search.resampling import resample_indices
from ttsvar.search.selection import top_k_indices
from ttsvar.sampler import segment_capacity
from ttsvar.state import VarState
from ttsvar.thumbnails import jpeg_thumbnails


def _check_sampled(state: VarState, step: str) -> int:
    if state.next_scale == 0:
        raise TTSVarError(f"{step} needs a state with at least one sampled scale: run Sample Scales first.")
    return state.next_scale - 1


def _keep(state: VarState, keep: int | None, step: str) -> int:
    scale = state.next_scale - 1
    keep = state.schedule.sizes[scale] if keep is None else int(keep)
    if not 1 <= keep <= state.num_candidates:
        raise TTSVarError(f"{step}: keep must be within 1..{state.num_candidates} (the current batch), got {keep}.")
    return keep


def score(state: VarState, reward: RewardModel, images: torch.Tensor) -> torch.Tensor:
    """Rewards [B] of the current candidates' decoded images, checked."""
    scores = reward.score(images, [state.prompt] * state.num_candidates)
    if not isinstance(scores, torch.Tensor) or scores.shape != (state.num_candidates,):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise TTSVarError(
            f"reward model '{getattr(reward, 'name', reward)}' returned {shape} for {state.num_candidates} images; "
            f"expected one score per image, shape ({state.num_candidates},)."
        )
    if not torch.isfinite(scores).all():
        raise TTSVarError(f"reward model '{reward.name}' returned NaN or infinite scores: {scores.tolist()}.")
    return scores.float().cpu()


def _pictures(images: torch.Tensor, size: int) -> dict:
    return {"thumbnails": jpeg_thumbnails(images, size)} if size > 0 else {}


def cluster_filter(state: VarState, extractor: FeatureExtractor, keep: int | None = None, seed: int = 0,
                   *, preview_size: bool = False, thumbnails: int = 0) -> VarState:
    """Keep `keep` structurally distinct candidates: features → K-Means++ → nearest to each centre.

    The event's ``nearest_kept`` says, for every candidate, which survivor (a position in ``kept``)
    is nearest to it in feature space: the group it was thinned into (close to, but not always
    the same as, its K-Means cluster)."""
    scale = _check_sampled(state, "cluster filter")
    keep = _keep(state, keep, "cluster filter")
    images = decode_images(state, extractor.input_size if preview_size else None)
    features = extractor.features(images)
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != state.num_candidates:
        raise TTSVarError(
            f"feature extractor '{extractor.name}' returned {getattr(features, 'shape', type(features))}; "
            f"expected one vector per image, shape ({state.num_candidates}, D)."
        )
    features = features.float().cpu()
    chosen = cluster_representatives(features, keep, seed).tolist()
    nearest = torch.cdist(features, features[torch.tensor(chosen)]).argmin(dim=1)
    event = {"kind": "cluster", "extractor": extractor.name, "centres": keep, "nearest_kept": nearest.tolist(),
             "reason": f"nearest to each of {keep} K-Means++ centres of {extractor.name} features",
             **_pictures(images, thumbnails)}
    return state.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def _draw_generator(state: VarState, scale: int) -> torch.Generator:
    digest = hashlib.blake2b(f"resample/{state.seed}/{scale}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def reward_resample(state: VarState, reward: RewardModel, *, potential: str = "value", lam: float = 10.0,
                    keep: int | None = None, preview_size: bool = False, thumbnails: int = 0) -> VarState:
    """Score, update the reward history, and draw the next batch ∝ exp(λ·potential), with replacement."""
    scale = _check_sampled(state, "reward resample")
    keep = _keep(state, keep, "reward resample")
    images = decode_images(state, reward.input_size if preview_size else None)
    scored = state.with_rewards(score(state, reward, images))
    potentials = potential_of(scored.rewards, potential)
    chosen = resample_indices(potentials, lam, keep, _draw_generator(state, scale)).tolist()
    event = {"kind": "resample", "reward": reward.name, "potential": potential, "lam": lam,
             "rewards": scored.rewards[:, -1].tolist(), "potentials": potentials.tolist(),
             "reason": f"drawn with replacement ∝ exp({lam}·{potential.upper()})", **_pictures(images, thumbnails)}
    return scored.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def select_best(state: VarState, reward: RewardModel, k: int = 1, *, images: torch.Tensor | None = None,
                thumbnails: int = 0) -> VarState:
    """Keep the `k` candidates with the highest reward at the current scale, best first.

    `images` are the candidates' decoded images when the caller has them already (no second decode).
    """
    _check_sampled(state, "select best")
    if not 1 <= int(k) <= state.num_candidates:
        raise TTSVarError(f"select best: k must be within 1..{state.num_candidates} (the current batch), got {k}.")
    if images is None:
        images = decode_images(state)
    scored = state.with_rewards(score(state, reward, images))
    rewards = scored.latest_rewards()
    chosen = top_k_indices(rewards, int(k)).tolist()
    event = {"kind": "select", "reward": reward.name, "rewards": rewards.tolist(),
             "reason": f"top {k} by {reward.name}", **_pictures(images, thumbnails)}
    return scored.select(chosen, event)
