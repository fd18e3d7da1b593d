"""State-level search steps: cluster filter, reward resampling and final selection.

Each takes a `VarState` after some scale and returns a new one with fewer (or re-drawn)
candidates; the input state is never changed. Conventions:
- the number kept defaults to the batch schedule's size after the current scale;
- filters look at the official previews (:func:`ttsvar.decode.filter_previews`: full-resolution
  decode, 8-bit pixels); ``fast_filters=True`` decodes at the size the filter's model reads;
- clustering uses the official K-Means settings with the fixed seed 0 (not the generation seed);
- resampling draws with replacement (as the official TTS-VAR code) from weights exp(λ·P),
  with its own generator seeded from (seed, scale), so a run is reproducible end to end;
- a candidate drawn twice continues as two candidates with different randomness;
- with ``thumbnails`` > 0 each event also keeps tiny JPEG thumbnails of the images the step looked
  at (every candidate before it, in ``lineage_before`` order), so the search can be drawn.
- :func:`record_reward` / :func:`sample_scoring_each_scale` add rewards of scales no filter scores,
  so DIFF/MAX/SUM can run over every scale as the paper defines them.
- `random_drop` keeps a uniformly random subset: the ablation baseline that a cluster or a
  resampling step must beat (the paper's "random drop", Table 14).
"""

from __future__ import annotations

import hashlib

import torch

from ttsvar.decode import filter_previews
from ttsvar.errors import TTSVarError
from ttsvar.scoring.base import FeatureExtractor, RewardModel
from ttsvar.search.clustering import OFFICIAL_KMEANS_SEED, cluster_representatives
from ttsvar.search.potentials import potential as potential_of
from ttsvar.search.resampling import resample_indices
from ttsvar.search.selection import top_k_indices
from ttsvar.sampler import OnScale, checked_until, sample_scales, segment_capacity
from ttsvar.state import VarState
from ttsvar.thumbnails import jpeg_thumbnails

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


def score(state: VarState, reward: RewardModel, *, fast_filters: bool = False,
          images: torch.Tensor | None = None) -> torch.Tensor:
    """Rewards [B] of the current candidates' previews (decoded here unless given), checked."""
    if images is None:
        images = filter_previews(state, reward.input_size if fast_filters else None)
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


def cluster_filter(state: VarState, extractor: FeatureExtractor, keep: int | None = None,
                   seed: int = OFFICIAL_KMEANS_SEED, *, fast_filters: bool = False, thumbnails: int = 0) -> VarState:
    """Keep `keep` structurally distinct candidates: features → K-Means++ → nearest to each centre.
    `seed` is K-Means' random_state: 0 as the official code, whatever the generation seed.

    The event's ``nearest_kept`` says, for every candidate, which survivor (a position in ``kept``)
    is nearest to it in feature space: the group it was thinned into (close to, but not always
    the same as, its K-Means cluster)."""
    scale = _check_sampled(state, "cluster filter")
    keep = _keep(state, keep, "cluster filter")
    images = filter_previews(state, extractor.input_size if fast_filters else None)
    features = extractor.features(images)
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != state.num_candidates:
        raise TTSVarError(
            f"feature extractor '{extractor.name}' returned {getattr(features, 'shape', type(features))}; "
            f"expected one vector per image, shape ({state.num_candidates}, D)."
        )
    features = features.float().cpu()
    chosen = cluster_representatives(features, keep, seed).tolist()
    nearest = torch.cdist(features, features[torch.tensor(chosen)]).argmin(dim=1)
    event = {"kind": "cluster", "extractor": extractor.name, "centres": keep, "kmeans_seed": int(seed),
             "nearest_kept": nearest.tolist(),
             "reason": f"nearest to each of {keep} K-Means++ centres of {extractor.name} features",
             **_pictures(images, thumbnails)}
    return state.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def _draw_generator(state: VarState, scale: int, purpose: str = "resample") -> torch.Generator:
    digest = hashlib.blake2b(f"{purpose}/{state.seed}/{scale}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def record_reward(state: VarState, reward: RewardModel, *, fast_filters: bool = False) -> VarState:
    """Score the current scale and add it to the reward history, keeping every candidate."""
    _check_sampled(state, "scoring")
    return state.with_rewards(score(state, reward, fast_filters=fast_filters))


def sample_scoring_each_scale(state: VarState, reward: RewardModel, until: int | None = None, *,
                              fast_filters: bool = False, on_scale: OnScale | None = None) -> VarState:
    """Sample scales [next scale, until) like :func:`ttsvar.sampler.sample_scales`, scoring every
    one of them: the reward history over every scale that the paper's DIFF (r_k − r_{k−1}),
    MAX and SUM (over i ≤ k) are defined on. Costs one preview decode and one reward call per
    candidate per scale."""
    for k in range(state.next_scale, checked_until(state, until)):
        state = record_reward(sample_scales(state, until=k + 1, on_scale=on_scale), reward, fast_filters=fast_filters)
    return state


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
                    keep: int | None = None, fast_filters: bool = False, thumbnails: int = 0) -> VarState:
    """Score, update the reward history, and draw the next batch ∝ exp(λ·potential), with replacement.
    The potential runs over the scored scales in the history (every scale from s when the
    scales before were scored with :func:`sample_scoring_each_scale`)."""
    scale = _check_sampled(state, "reward resample")
    keep = _keep(state, keep, "reward resample")
    images = filter_previews(state, reward.input_size if fast_filters else None)
    scored = state.with_rewards(score(state, reward, images=images))
    potentials = potential_of(scored.rewards, potential)
    chosen = resample_indices(potentials, lam, keep, _draw_generator(state, scale)).tolist()
    event = {"kind": "resample", "reward": reward.name, "potential": potential, "lam": lam,
             "rewards": scored.rewards[:, -1].tolist(), "potentials": potentials.tolist(),
             "reason": f"drawn with replacement ∝ exp({lam}·{potential.upper()})", **_pictures(images, thumbnails)}
    return scored.select(chosen, event, capacity=segment_capacity(state, scale + 1))


def select_best(state: VarState, reward: RewardModel, k: int = 1, *, images: torch.Tensor | None = None,
                thumbnails: int = 0) -> VarState:
    """Keep the `k` candidates with the highest reward at the current scale, best first.

    `images` are the candidates' previews (:func:`ttsvar.decode.filter_previews`) when the caller
    has them already (no second decode).
    """
    _check_sampled(state, "select best")
    if not 1 <= int(k) <= state.num_candidates:
        raise TTSVarError(f"select best: k must be within 1..{state.num_candidates} (the current batch), got {k}.")
    if images is None:
        images = filter_previews(state)
    scored = state.with_rewards(score(state, reward, images=images))
    rewards = scored.latest_rewards()
    chosen = top_k_indices(rewards, int(k)).tolist()
    event = {"kind": "select", "reward": reward.name, "rewards": rewards.tolist(),
             "reason": f"top {k} by {reward.name}", **_pictures(images, thumbnails)}
    return scored.select(chosen, event)
