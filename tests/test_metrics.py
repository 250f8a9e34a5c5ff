"""Clustering and classification metrics on hand-computed cases and against sklearn."""
import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from vitsom import metrics


def test_purity_hand_case():
    clusters = [0, 0, 0, 1, 1, 2]
    labels = [5, 5, 7, 7, 7, 9]
    # cluster 0 → 5 (2 of 3), cluster 1 → 7 (2), cluster 2 → 9 (1): 5/6
    assert metrics.purity(clusters, labels) == pytest.approx(5 / 6)


def test_purity_extremes():
    y = np.arange(20) % 4
    assert metrics.purity(np.arange(20), y) == 1.0            # one sample per cluster
    assert metrics.purity(np.zeros(20, int), y) == pytest.approx(0.25)


def test_clustering_accuracy_hungarian_hand_case():
    clusters = [0, 0, 1, 1, 1, 2]
    labels = [1, 1, 0, 0, 2, 2]
    # best one-to-one map 0→1, 1→0, 2→2: 2 + 2 + 1 = 5 of 6
    assert metrics.clustering_accuracy(clusters, labels) == pytest.approx(5 / 6)
    # a permutation of labels is perfect
    y = np.repeat(np.arange(5), 4)
    assert metrics.clustering_accuracy((y + 3) % 5, y) == 1.0


def test_accuracy_not_above_purity_with_more_clusters():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    c = rng.integers(0, 40, 500)
    assert metrics.clustering_accuracy(c, y) <= metrics.purity(c, y)


def test_nmi_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 300)
    c = (y * 3 + rng.integers(0, 3, 300)) % 17
    assert metrics.nmi(c, y) == pytest.approx(normalized_mutual_info_score(y, c))
    assert metrics.nmi(y, y) == pytest.approx(1.0)


def test_heldout_purity():
    train_c, train_y = [0, 0, 1, 1], [3, 3, 4, 4]
    test_c, test_y = [0, 1, 1, 2], [3, 4, 3, 4]   # unit 2 never seen in training → wrong
    assert metrics.heldout_purity(train_c, train_y, test_c, test_y) == pytest.approx(2 / 4)


def test_top1():
    assert metrics.top1_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


@pytest.mark.parametrize("bad", [([], []), ([0.5, 1.0], [0, 1]), ([0, 1, 2], [0, 1])])
def test_bad_inputs(bad):
    with pytest.raises(ValueError):
        metrics.purity(*bad)


def test_chance_purity_against_every_permutation():
    import itertools
    clusters = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([0, 0, 1, 1, 2, 2])
    perms = list(itertools.permutations(labels))
    exact = np.mean([metrics.purity(clusters, np.array(p)) for p in perms])     # 720 label deals
    assert metrics.chance_purity(clusters, labels, permutations=3000) == pytest.approx(exact, abs=0.01)
    # the true clustering here (purity 4/6) sits above chance; the baseline ignores how labels fall
    assert metrics.purity(clusters, labels) > exact


def test_chance_purity_extremes():
    y = np.repeat(np.arange(4), [8, 6, 4, 2])
    assert metrics.chance_purity(np.zeros(20, int), y) == pytest.approx(0.4)   # one cluster: largest class
    assert metrics.chance_purity(np.arange(20), y) == 1.0                      # singletons: 1 whatever the labels
    assert metrics.chance_purity(np.arange(20) % 5, y, seed=1) == metrics.chance_purity(np.arange(20) % 5, y, seed=1)
    with pytest.raises(ValueError, match="permutations"):
        metrics.chance_purity(np.zeros(20, int), y, permutations=0)
    with pytest.raises(ValueError, match="differ in length"):
        metrics.chance_purity(np.zeros(19, int), y)


def test_input_blind_l1_is_the_best_fixed_reconstruction():
    rng = np.random.default_rng(0)
    x = rng.beta(0.3, 1.5, size=(201, 5, 4))        # skewed like ink on paper: median ≠ mean
    best = metrics.input_blind_l1(x)
    flat = x.reshape(201, -1)
    assert best == pytest.approx(np.abs(flat - np.median(flat, 0)).mean())
    # no other fixed image does better: the mean image, zeros, and random nudges of the median
    assert best < np.abs(flat - flat.mean(0)).mean()
    assert best < np.abs(flat).mean()
    for _ in range(20):
        c = np.median(flat, 0) + rng.normal(0, 0.02, flat.shape[1])
        assert best <= np.abs(flat - c).mean() + 1e-12
    assert metrics.input_blind_l1(np.ones((3, 2))) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        metrics.input_blind_l1(np.zeros((0, 4)))
