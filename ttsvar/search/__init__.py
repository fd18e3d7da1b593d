"""Search primitives: pure tensor functions with no model and no state.

* :func:`potential` — reward history → potential (VALUE, DIFF, MAX, SUM);
* :func:`resample_indices` — draw survivors ∝ exp(λ·P), with replacement, sorted ascending;
* :func:`cluster_representatives` — K-Means++ on features (the official settings), one distinct member per cluster;
* :func:`top_k_indices` — best rewards first, ties to the lower index.

All return int64 index tensors on the CPU. scikit-learn is imported only when clustering runs.
"""

from ttsvar.search.clustering import KMEANS_N_INIT, OFFICIAL_KMEANS_SEED, cluster_representatives
from ttsvar.search.potentials import POTENTIAL_KINDS, potential
from ttsvar.search.resampling import resample_indices, resampling_weights
from ttsvar.search.selection import top_k_indices

__all__ = [
    "KMEANS_N_INIT",
    "OFFICIAL_KMEANS_SEED",
    "POTENTIAL_KINDS",
    "cluster_representatives",
    "potential",
    "resample_indices",
    "resampling_weights",
    "top_k_indices",
]
