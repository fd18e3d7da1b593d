"""The search primitives against the official TTS-VAR formulas, re-stated here from what the
official code (ali-vilab/TTS-VAR, ``tts-var/utils_model.py``) does, so a change of defaults cannot
drift away from it silently:

* previews: ``scale_img = (vae.decode(summed_codes) + 1) / 2`` then ``.mul_(255).to(torch.uint8)``;
* PCA features: per image ``U, S, V = torch.svd(x_centered.float())``, ``x_centered @ V[:, 0]``;
* clustering: ``KMeans(n_clusters=k, random_state=0)`` (scikit-learn ≥ 1.4 defaults) on float32
  features, then per cluster the member nearest its centre (``np.linalg.norm``, ``np.argmin``);
* resampling weights: ``exp(λ·reward)``, normalised by ``torch.multinomial``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttsvar.sampler import sample_scales, start_state
from ttsvar.schedule import BatchSchedule


# ---------------------------------------------------------------- official re-statements

def official_previews(model, code_map: torch.Tensor) -> torch.Tensor:
    """8-bit previews as float k/255: full decode, (x + 1) / 2, ×255, truncated to uint8."""
    with torch.inference_mode():
        x = model.vae.decode(code_map)  # clamped to [-1, 1], like the official vae.decode
    return ((x + 1) / 2).mul(255).to(torch.uint8).float().cpu() / 255


def official_pca(tokens: torch.Tensor) -> torch.Tensor:
    rows = []
    for x in tokens:
        centred = x - x.mean(dim=0, keepdim=True)
        _, _, v = torch.svd(centred.float())
        rows.append(centred @ v[:, 0])
    return torch.stack(rows)


def official_cluster_ids(features: np.ndarray, k: int) -> list[int]:
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=k, random_state=0, n_init="auto")  # "auto" is the default from 1.4 on
    kmeans.fit(features)
    chosen = []
    for c in range(k):
        members = np.where(kmeans.labels_ == c)[0]
        distances = np.linalg.norm(features[members] - kmeans.cluster_centers_[c], axis=1)
        chosen.append(int(members[np.argmin(distances)]))
    return chosen


# ---------------------------------------------------------------- previews

class _Recorder:
    """A verifier that records the images it is shown."""

    name, input_size = "recorder", 16

    def __init__(self):
        self.seen = []

    def features(self, images):
        self.seen.append(images.clone())
        return images.flatten(1)[:, :8].float()

    def score(self, images, prompts):
        self.seen.append(images.clone())
        return images.float().mean(dim=(1, 2, 3))


def test_filters_see_the_official_8_bit_previews(tiny_model, tiny_condition, grid):
    """Cluster filter and final selection (reward resampling scores through the same function)."""
    from ttsvar.search.filters import cluster_filter, select_best

    schedule = BatchSchedule((2, 2, 1, 1, 1, 1, 1))
    state = sample_scales(start_state(tiny_model, tiny_condition, schedule, grid, seed=1), until=3)
    expected = official_previews(tiny_model, state.code_map)
    features, reward = _Recorder(), _Recorder()
    state = sample_scales(cluster_filter(state, features))
    final_expected = official_previews(tiny_model, state.code_map)
    select_best(state, reward)
    # exact: the same decoder on the same code map, then the same arithmetic
    assert torch.equal(features.seen[0], expected)
    assert expected.shape == (2, 3, 256, 256)  # full resolution, not the verifier's 16 px
    assert torch.equal(reward.seen[0], final_expected)


def test_quantisation_truncates_in_the_decoder_dtype():
    from ttsvar.decode import quantize_like_official

    x = torch.tensor([-1.0, -0.3, 0.0, 0.2929, 0.9999, 1.0])
    y = (x + 1) / 2
    assert torch.equal(quantize_like_official(y), ((x + 1) / 2).mul(255).to(torch.uint8).float() / 255)
    bf = x.to(torch.bfloat16)  # a bf16 decoder: the official arithmetic runs in bf16
    expected = ((bf + 1) / 2).mul(255).to(torch.uint8).float() / 255
    assert torch.equal(quantize_like_official((bf.float() + 1) / 2, torch.bfloat16), expected)


# ---------------------------------------------------------------- PCA features

def test_pca_features_equal_the_official_svd_values_and_signs():
    from ttsvar.scoring import pca_first_component

    g = torch.Generator().manual_seed(0)
    # 8 images of 256 patch tokens (a 16×16 map; ViT-L has 1024 channels, 256 keep the test quick):
    # a few dominant directions plus noise, as DINOv2 patch tokens have
    layout = torch.randn(8, 256, 3, generator=g) * torch.tensor([6.0, 3.0, 1.5])
    tokens = layout @ torch.randn(8, 3, 256, generator=g) + torch.randn(8, 256, 256, generator=g)
    ours, official = pca_first_component(tokens), official_pca(tokens)
    # the same LAPACK call on the same matrices; the projections differ only by float32 rounding
    # (measured ≈1e-5 of values ≈10), while a flipped sign would differ by 2·|f|
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- clustering

def _feature_sets(count: int, n: int, dim: int = 256):
    g = torch.Generator().manual_seed(11)
    for i in range(count):
        if i % 2:  # loosely grouped candidates, as structurally similar images give
            centres = torch.randn(3, dim, generator=g) * 4
            yield centres[torch.arange(n) % 3] + torch.randn(n, dim, generator=g) * 3
        else:  # no structure: where K-Means' initialisation decides most
            yield torch.randn(n, dim, generator=g) * 5


@pytest.mark.parametrize("n,k", [(8, 6), (6, 4)])
def test_cluster_sets_equal_the_official_kmeans(n, k):
    from ttsvar.search.clustering import cluster_representatives

    for features in _feature_sets(12, n):
        ours = cluster_representatives(features, k, seed=0).tolist()
        assert ours == sorted(official_cluster_ids(features.float().numpy(), k))


def test_clustering_seed_is_fixed_whatever_the_generation_seed(tiny_model, tiny_condition, grid, monkeypatch):
    import ttsvar.search.filters as filters
    from ttsvar.pipelines import run_strategy
    from ttsvar.scoring.classic import ThumbnailFeatures

    seeds = []
    real = filters.cluster_representatives

    def spy(features, k, seed=0):
        seeds.append(seed)
        return real(features, k, seed)

    monkeypatch.setattr(filters, "cluster_representatives", spy)

    class Brightness:
        name, input_size = "brightness", 16

        def score(self, images, prompts):
            return images.mean(dim=(1, 2, 3))

    # drops after scales 2, 4 (clustered) and 5 (resampled)
    run_strategy(tiny_model, tiny_condition, strategy="tts-var", n=1, grid=grid, schedule=BatchSchedule((4, 4, 3, 3, 2, 1, 1)),
                 reward=Brightness(), extractor=ThumbnailFeatures(side=4), seed=5, fast_filters=True)
    assert seeds == [0, 0]


# ---------------------------------------------------------------- resampling weights

def test_resampling_weights_equal_the_official_exp_lambda_reward():
    from ttsvar.search import potential, resampling_weights

    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        rewards = torch.rand(4, generator=g) * 4 - 2  # ImageReward-like scores
        official = torch.exp(10.0 * rewards)  # float32 on the official GPU
        official = official / official.sum()
        ours = resampling_weights(potential(rewards[:, None], "value"), 10.0)
        # float64 softmax vs the float32 exp: equal to float32 precision
        torch.testing.assert_close(ours.float(), official, rtol=2e-6, atol=1e-30)
