"""Clustering and classification scores (pure functions on integer label arrays)."""
from __future__ import annotations

import numpy as np


def _as_int_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a.cpu() if hasattr(a, "cpu") else a).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def contingency(clusters, labels) -> np.ndarray:
    """Counts matrix C[cluster, label] over the *observed* cluster and label values."""
    c = _as_int_array(clusters, "clusters")
    y = _as_int_array(labels, "labels")
    if c.shape != y.shape:
        raise ValueError(f"clusters and labels differ in length: {c.size} vs {y.size}")
    _, ci = np.unique(c, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    m = np.zeros((ci.max() + 1, yi.max() + 1), dtype=np.int64)
    np.add.at(m, (ci, yi), 1)
    return m


def purity(clusters, labels) -> float:
    """Each cluster is mapped to its majority label; purity = Σ_clusters max_label count / N."""
    m = contingency(clusters, labels)
    return float(m.max(axis=1).sum() / m.sum())


def chance_purity(clusters, labels, permutations: int = 10, seed: int = 0) -> float:
    """The purity a clustering with the same cluster sizes gets when the labels are dealt out at
    random: the mean purity over ``permutations`` random shuffles of ``labels``.

    Purity rises with the number of clusters whatever they hold (one image per cluster scores 1),
    so a map's purity means something only next to this baseline."""
    if permutations < 1:
        raise ValueError(f"permutations must be ≥ 1, got {permutations}")
    c = _as_int_array(clusters, "clusters")
    y = _as_int_array(labels, "labels")
    if c.shape != y.shape:
        raise ValueError(f"clusters and labels differ in length: {c.size} vs {y.size}")
    rng = np.random.default_rng(seed)
    return float(np.mean([purity(c, rng.permutation(y)) for _ in range(permutations)]))


def cluster_to_label_map(clusters, labels) -> dict[int, int]:
    """Majority label of each observed cluster (ties go to the smallest label)."""
    c = _as_int_array(clusters, "clusters")
    y = _as_int_array(labels, "labels")
    cu = np.unique(c)
    yu = np.unique(y)
    m = contingency(c, y)
    return {int(k): int(yu[row.argmax()]) for k, row in zip(cu, m)}


def heldout_purity(train_clusters, train_labels, test_clusters, test_labels) -> float:
    """Purity on a test split with each unit labelled from the train split only.

    Test samples whose unit was never hit in training count as wrong."""
    mapping = cluster_to_label_map(train_clusters, train_labels)
    c = _as_int_array(test_clusters, "test_clusters")
    y = _as_int_array(test_labels, "test_labels")
    pred = np.array([mapping.get(int(k), -1) for k in c])
    return float((pred == y).mean())


def nmi(clusters, labels) -> float:
    """Normalized mutual information (sklearn, arithmetic normalisation)."""
    from sklearn.metrics import normalized_mutual_info_score
    return float(normalized_mutual_info_score(_as_int_array(labels, "labels"),
                                              _as_int_array(clusters, "clusters")))


def clustering_accuracy(clusters, labels) -> float:
    """Best one-to-one cluster→label matching accuracy (Hungarian); for k = number of classes."""
    from scipy.optimize import linear_sum_assignment
    m = contingency(clusters, labels)
    rows, cols = linear_sum_assignment(-m)
    return float(m[rows, cols].sum() / m.sum())


def top1_accuracy(predictions, labels) -> float:
    p = _as_int_array(predictions, "predictions")
    y = _as_int_array(labels, "labels")
    if p.shape != y.shape:
        raise ValueError(f"predictions and labels differ in length: {p.size} vs {y.size}")
    return float((p == y).mean())


def input_blind_l1(images) -> float:
    """The lowest mean L1 reconstruction error of any reconstruction that ignores its input.

    Such a reconstruction is one fixed image; the mean absolute error Σ_i |x_ip − c_p| is smallest
    pixel by pixel at the median c_p = median_i x_ip, so the bound is mean |x − per-pixel median|.
    An autoencoder whose L1 sits near this value has learnt (almost) nothing about its input.
    ``images``: (N, …) floats in the scale the loss sees (here [0, 1])."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, ...) array, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    return float(np.abs(x - np.median(x, axis=0)).mean())
