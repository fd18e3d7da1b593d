"""Clustering-based diversity search: keep one representative per K-Means cluster (paper Sec. 4.2)."""

from __future__ import annotations

import numbers
import warnings

import torch

from ttsvar.errors import TTSVarError

#: K-Means runs. The official ``KMeans(n_clusters=k, random_state=0)`` leaves ``n_init`` at its
#: default, which is "auto" (one run with k-means++) from scikit-learn 1.4 on, the versions current
#: when the code was released; pinned here so older versions behave the same.
KMEANS_N_INIT = 1
#: The official ``random_state``: fixed, independent of the generation seed.
OFFICIAL_KMEANS_SEED = 0


def cluster_representatives(features: torch.Tensor, k: int, seed: int = OFFICIAL_KMEANS_SEED) -> torch.Tensor:
    """Pick ``k`` distinct, structurally different candidates, as the official ``extract_k_ids``.

    ``features`` is [B, D] (one vector per candidate, e.g. DINOv2 patch tokens reduced by PCA).
    Runs scikit-learn ``KMeans(n_clusters=k, init="k-means++", n_init=KMEANS_N_INIT,
    random_state=seed % 2**32)`` on **float32** features (the official code clusters
    ``scores.float().cpu().numpy()``), then for every cluster keeps the member nearest its
    centre (float32 Euclidean distance, ``np.linalg.norm``; ties → lower index, as ``np.argmin``).
    ``seed`` 0 is the official value.

    Always returns ``k`` **distinct** indices: when centres coincide or a cluster has no members
    (duplicated features; the official code would fail there), the centres left without a
    representative each take the nearest candidate not yet taken, in cluster order. ``k == B``
    returns every index without clustering.

    Returns an int64 tensor [k] on the CPU, **sorted ascending** by candidate index (the official
    code orders them by cluster id; the set is the same, and sorted indices keep the survivors in
    their original relative order). Deterministic for a given seed.

    Errors (:class:`TTSVarError`): k < 1, k > B, wrong shape, NaN/inf features.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise TTSVarError(f"features must be a tensor [candidates, dims] with both ≥ 1, got {shape}.")
    n = int(features.shape[0])
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise TTSVarError(f"number of clusters must be a whole number ≥ 1, got {k!r}.")
    if k > n:
        raise TTSVarError(
            f"cannot keep {k} clusters from {n} candidates; a cluster filter can only shrink the batch. "
            "Check the batch schedule (it must not increase)."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TTSVarError(f"clustering seed must be a whole number, got {seed!r}.")
    x = features.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(x).all()):
        i = int((~torch.isfinite(x)).any(dim=1).nonzero()[0, 0])
        raise TTSVarError(
            f"feature extractor output is not finite for candidate {i}; check the feature model "
            "(weights, precision, input images)."
        )
    if k == n:
        return torch.arange(n, dtype=torch.long)

    import numpy as np
    from sklearn.cluster import KMeans

    x_np = x.numpy()
    kmeans = KMeans(n_clusters=int(k), init="k-means++", n_init=KMEANS_N_INIT, random_state=int(seed) % 2**32)
    with warnings.catch_warnings():
        # duplicated features: "Number of distinct clusters (m) found smaller than n_clusters (k)"
        warnings.simplefilter("ignore")
        labels = kmeans.fit_predict(x_np)
    centres = kmeans.cluster_centers_

    def nearest(c: int, candidates: np.ndarray) -> int:
        return int(candidates[np.argmin(np.linalg.norm(x_np[candidates] - centres[c], axis=1))])

    chosen: list[int | None] = [None] * int(k)
    taken = np.zeros(n, dtype=bool)
    # pass 1: nearest member of each non-empty cluster (clusters partition the candidates: distinct)
    for c in range(int(k)):
        members = np.flatnonzero(labels == c)
        if members.size:
            chosen[c] = nearest(c, members)
            taken[chosen[c]] = True
    # pass 2: centres without a member take the nearest candidate not yet taken
    for c in range(int(k)):
        if chosen[c] is None:
            chosen[c] = nearest(c, np.flatnonzero(~taken))
            taken[chosen[c]] = True
    return torch.tensor(sorted(int(i) for i in chosen), dtype=torch.long)
