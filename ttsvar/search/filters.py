"""State-level search steps: cluster filter, reward resampling and final selection.

Each takes a `VarState` after some scale and returns a new one with fewer (or re-drawn)
candidates; the input state is never changed. Conventions:
- the number kept defaults to the batch schedule's size after the current scale;
- resampling draws with replacement (as the official TTS-VAR code) from weights exp(λ·P),
  with its own generator seeded from (seed, scale), so a run is reproducible end to end;
- a candidate drawn twice continues as two candidates with different randomness;
- `random_drop` keeps a uniformly random subset: the ablation baseline that a cluster or a
  resampling step must beat (the paper's "random drop", Table 14).
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

#: The filter kind of `random_drop` in a strategy's filter plan (next to "cluster" and "resample").
FILTER_RANDOM = "random"


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


def score(state: VarState, reward: RewardModel, *, preview_size: bool = False,
          images: torch.Tensor | None = None) -> torch.Tensor:
    """Rewards [B] of the current candidates' images (decoded here unless given), checked."""
    if images is None:
        images = decode_images(state, reward.input_size if preview_size else None)
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


def cluster_filter(state: VarState, extractor: FeatureExtractor, keep: int | None = None, seed: int = 0,
                   *, preview_size: bool = False) -> VarState:
    """Keep `keep` structurally distinct candidates: features → K-Means++ → nearest to each centre."""
    scale = _check_sampled(state, "cluster filter")
    keep = _keep(state, keep, "cluster filter")
    images = decode_images(state, extractor.input_size if preview_size else None)
    features = extractor.features(images)
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != state.num_candidates:
        raise TTSVarError(
            f"feature extractor '{extractor.name}' returned {getattr(features, 'shape', type(features))}; "
            f"expected one vector per image, shape ({state.num_candidates}, D)."
        )
    chosen = cluster_representatives(features.float().cpu(), keep, seed).tolist()
    event = {"kind": "cluster", "extractor": extractor.name, "centres": keep,
             "reason": f"nearest to each of {keep} K-Means++ centres of {extractor.name} features"}
    return state.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def _draw_generator(state: VarState, scale: int, purpose: str = "resample") -> torch.Generator:
    digest = hashlib.blake2b(f"{purpose}/{state.seed}/{scale}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def random_drop(state: VarState, keep: int | None = None) -> VarState:
    """Keep `keep` distinct candidates chosen uniformly at random (no verifier looks at them).

    Stands in for a cluster filter or a reward resampling in ablations ("no clustering",
    "no resampling"): same schedule, same compute, only the choice is uninformed. The draw has
    its own generator seeded from (seed, scale), so a run is reproducible.
    """
    scale = _check_sampled(state, "random drop")
    keep = _keep(state, keep, "random drop")
    generator = _draw_generator(state, scale, "random")
    chosen = sorted(torch.randperm(state.num_candidates, generator=generator)[:keep].tolist())
    event = {"kind": FILTER_RANDOM, "reason": f"{keep} of {state.num_candidates} drawn uniformly without replacement"}
    return state.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def reward_resample(state: VarState, reward: RewardModel, *, potential: str = "value", lam: float = 10.0,
                    keep: int | None = None, preview_size: bool = False) -> VarState:
    """Score, update the reward history, and draw the next batch ∝ exp(λ·potential), with replacement."""
    scale = _check_sampled(state, "reward resample")
    keep = _keep(state, keep, "reward resample")
    scored = state.with_rewards(score(state, reward, preview_size=preview_size))
    potentials = potential_of(scored.rewards, potential)
    chosen = resample_indices(potentials, lam, keep, _draw_generator(state, scale)).tolist()
    event = {"kind": "resample", "reward": reward.name, "potential": potential, "lam": lam,
             "rewards": scored.rewards[:, -1].tolist(), "potentials": potentials.tolist(),
             "reason": f"drawn with replacement ∝ exp({lam}·{potential.upper()})"}
    return scored.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def select_best(state: VarState, reward: RewardModel, k: int = 1, *, images: torch.Tensor | None = None) -> VarState:
    """Keep the `k` candidates with the highest reward at the current scale, best first.

    `images` are the candidates' decoded images when the caller has them already (no second decode).
    """
    _check_sampled(state, "select best")
    if not 1 <= int(k) <= state.num_candidates:
        raise TTSVarError(f"select best: k must be within 1..{state.num_candidates} (the current batch), got {k}.")
    scored = state.with_rewards(score(state, reward, images=images))
    rewards = scored.latest_rewards()
    chosen = top_k_indices(rewards, int(k)).tolist()
    event = {"kind": "select", "reward": reward.name, "rewards": rewards.tolist(),
             "reason": f"top {k} by {reward.name}"}
    return scored.select(chosen, event)
