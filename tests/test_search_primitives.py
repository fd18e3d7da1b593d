"""Pure search primitives: potentials, reward resampling, K-Means representatives, top-k."""

import math

import pytest
import torch

from ttsvar.errors import TTSVarError
from ttsvar.search import (
    POTENTIAL_KINDS,
    cluster_representatives,
    potential,
    resample_indices,
    resampling_weights,
    top_k_indices,
)

chi2 = pytest.importorskip("scipy.stats").chi2  # scipy comes with scikit-learn


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- potentials
HISTORY = torch.tensor(
    [
        [0.1, 0.5, 0.2],
        [0.3, 0.0, 0.6],
        [-1.0, -0.5, -0.7],
    ]
)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("value", [0.2, 0.6, -0.7]),
        ("diff", [-0.3, 0.6, -0.2]),
        ("max", [0.5, 0.6, -0.5]),
        ("sum", [0.8, 0.9, -2.2]),
    ],
)
def test_potential_kinds(kind, expected):
    out = potential(HISTORY, kind)
    assert out.shape == (3,)
    # a few float32 additions of O(1) values vs decimal literals: rounding stays below 1e-6 on any CPU
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)


def test_potential_single_column_and_input_untouched():
    single = HISTORY[:, :1].clone()
    for kind in POTENTIAL_KINDS:
        assert torch.allclose(potential(single, kind), single[:, 0])  # DIFF == VALUE with T=1
    before = HISTORY.clone()
    potential(HISTORY, "value").add_(100)  # the result is not a view of the input
    assert torch.equal(HISTORY, before)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_potential_non_finite_names_reward_model(bad):
    h = HISTORY.clone()
    h[1, 0] = bad  # an old column: still an error, whatever the kind
    for kind in POTENTIAL_KINDS:
        with pytest.raises(TTSVarError, match="reward model output"):
            potential(h, kind)


def test_potential_bad_kind_and_shape():
    with pytest.raises(TTSVarError, match="value, diff, max, sum"):
        potential(HISTORY, "mean")
    with pytest.raises(TTSVarError, match="shape"):
        potential(HISTORY[:, 0], "value")
    with pytest.raises(TTSVarError, match="shape"):
        potential(HISTORY[:, :0], "value")


# ----------------------------------------------------------------------------- resampling
def counts(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(idx, minlength=n).to(torch.float64)


def chi2_pvalue(observed: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * observed.sum()
    stat = float(((observed - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, df=len(probs) - 1))


# Tolerance: with a fixed seed the draws are fixed, so these tests are deterministic; the p-value
# threshold 1e-3 says that, under the null hypothesis (the sampler is right), a random seed would
# fail with probability 0.1%, while a wrong distribution (e.g. exp(P) instead of exp(λP), or the
# official NaN flattening) gives p-values of ~0 at these sample sizes.
DRAWS = 200_000


def test_lambda_zero_is_uniform():
    p = torch.tensor([0.3, -2.0, 5.0, 1.0, 0.0])
    idx = resample_indices(p, 0.0, DRAWS, gen(1))
    assert idx.dtype == torch.long and idx.shape == (DRAWS,)
    assert chi2_pvalue(counts(idx, 5), torch.full((5,), 0.2, dtype=torch.float64)) > 1e-3


def test_frequencies_follow_softmax():
    p = torch.tensor([0.0, 0.1, 0.2, 0.05, -0.1])
    lam = 10.0
    probs = torch.softmax(lam * p.double(), dim=0)
    assert torch.allclose(resampling_weights(p, lam), probs)
    observed = counts(resample_indices(p, lam, DRAWS, gen(2)), 5)
    assert chi2_pvalue(observed, probs) > 1e-3
    # and each frequency is within 5 standard errors
    freq = observed / DRAWS
    se = torch.sqrt(probs * (1 - probs) / DRAWS)
    assert bool((torch.abs(freq - probs) < 5 * se).all())
    # a wrong temperature is clearly rejected by the same test
    assert chi2_pvalue(observed, torch.softmax(p.double(), dim=0)) < 1e-6


def test_huge_lambda_is_argmax_and_ties_share():
    p = torch.tensor([0.1, 0.9, 0.3, 0.89])
    idx = resample_indices(p, 1e6, 1000, gen(3))
    assert torch.equal(idx, torch.ones(1000, dtype=torch.long))
    tied = torch.tensor([0.5, 2.0, 2.0, -1.0])
    w = resampling_weights(tied, 1e6)
    assert torch.allclose(w, torch.tensor([0.0, 0.5, 0.5, 0.0], dtype=torch.float64))
    c = counts(resample_indices(tied, 1e6, 20_000, gen(4)), 4)
    assert c[0] == 0 and c[3] == 0 and chi2_pvalue(c[1:3], torch.tensor([0.5, 0.5], dtype=torch.float64)) > 1e-3


def test_no_overflow_with_large_potentials():
    p = torch.tensor([1e4, 1e4 - 0.1, -1e4], dtype=torch.float64)  # exp(λP) overflows at λ=10
    w = resampling_weights(p, 10.0)
    assert torch.isfinite(w).all() and math.isclose(float(w.sum()), 1.0)
    assert math.isclose(float(w[0] / w[1]), math.e, rel_tol=1e-9)


def test_resampling_is_deterministic_sorted_and_with_replacement():
    p = torch.tensor([0.2, 0.1, 0.25, 0.0])
    a = resample_indices(p, 10.0, 6, gen(7))
    b = resample_indices(p, 10.0, 6, gen(7))
    assert torch.equal(a, b)
    assert torch.equal(a, torch.sort(a).values)
    many = resample_indices(p, 10.0, 10, gen(0))  # more draws than candidates: allowed
    assert len(torch.unique(many)) < 10


def test_resampling_errors():
    p = torch.tensor([0.1, 0.2])
    with pytest.raises(TTSVarError, match="λ"):
        resample_indices(p, -1.0, 1, gen(0))
    with pytest.raises(TTSVarError, match="λ"):
        resample_indices(p, float("inf"), 1, gen(0))
    for k in (0, -3, 1.5):
        with pytest.raises(TTSVarError, match="draw"):
            resample_indices(p, 1.0, k, gen(0))
    with pytest.raises(TTSVarError, match="reward model"):
        resample_indices(torch.tensor([0.1, float("nan")]), 1.0, 1, gen(0))
    with pytest.raises(TTSVarError, match="Generator"):
        resample_indices(p, 1.0, 1, None)


# ----------------------------------------------------------------------------- clustering
def blobs(seed: int = 0, per: int = 4, dims: int = 16):
    g = gen(seed)
    centres = torch.randn(3, dims, generator=g) * 20
    points = torch.cat([c + torch.randn(per, dims, generator=g) for c in centres])
    perm = torch.randperm(3 * per, generator=g)  # interleave blobs over the batch
    points = points[perm]
    blob_of = (torch.arange(3 * per) // per)[perm]
    return points, blob_of


def test_planted_clusters_one_nearest_per_blob():
    x, blob_of = blobs()
    idx = cluster_representatives(x, 3, seed=0)
    assert idx.dtype == torch.long and torch.equal(idx, torch.sort(idx).values)
    assert sorted(blob_of[idx].tolist()) == [0, 1, 2]
    for b in range(3):
        members = torch.nonzero(blob_of == b).flatten()
        mean = x[members].double().mean(0)
        nearest = members[torch.argmin(((x[members].double() - mean) ** 2).sum(1))]
        assert int(nearest) in idx.tolist()


def test_duplicates_still_give_distinct_indices():
    row = torch.randn(1, 8, generator=gen(5))
    x = torch.cat([row.repeat(5, 1), row + 10, row + 10])  # 2 distinct points, 7 candidates
    for k in (3, 5, 6):
        idx = cluster_representatives(x, k, seed=1)
        assert len(set(idx.tolist())) == k
        assert {5, 6} & set(idx.tolist())  # the other structure survives
    all_same = row.repeat(6, 1)
    assert len(set(cluster_representatives(all_same, 4, seed=0).tolist())) == 4


def test_clustering_deterministic_for_seed():
    x = torch.randn(16, 32, generator=gen(9))
    a = cluster_representatives(x, 5, seed=123)
    assert torch.equal(a, cluster_representatives(x, 5, seed=123))
    assert torch.equal(a, cluster_representatives(x.clone(), 5, seed=123 + 2**32))  # seed taken mod 2**32
    assert len(set(a.tolist())) == 5


def test_clustering_k_equals_b_and_errors():
    x = torch.randn(4, 3, generator=gen(0))
    assert torch.equal(cluster_representatives(x, 4, seed=0), torch.arange(4))
    with pytest.raises(TTSVarError, match="5 clusters from 4 candidates"):
        cluster_representatives(x, 5, seed=0)
    with pytest.raises(TTSVarError, match="clusters"):
        cluster_representatives(x, 0, seed=0)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(TTSVarError, match="feature extractor output"):
        cluster_representatives(bad, 2, seed=0)
    with pytest.raises(TTSVarError, match="shape|dims"):
        cluster_representatives(x[0], 1, seed=0)


# ----------------------------------------------------------------------------- selection
def test_top_k_order_and_ties():
    r = torch.tensor([0.5, 2.0, -1.0, 2.0, 0.5, float("-inf")])
    assert top_k_indices(r, 6).tolist() == [1, 3, 0, 4, 2, 5]
    assert top_k_indices(r, 1).tolist() == [1]
    assert top_k_indices(r, 3).tolist() == [1, 3, 0]
    same = torch.zeros(20)
    assert top_k_indices(same, 20).tolist() == list(range(20))  # stable across sort implementations


def test_top_k_errors():
    r = torch.tensor([0.1, 0.2, 0.3])
    for k in (0, 4, -1, 1.0, True):
        with pytest.raises(TTSVarError, match="select"):
            top_k_indices(r, k)
    with pytest.raises(TTSVarError, match="NaN"):
        top_k_indices(torch.tensor([0.1, float("nan")]), 1)
    with pytest.raises(TTSVarError, match="rewards"):
        top_k_indices(torch.zeros(2, 2), 1)
