"""The classical SOM baseline (vitsom.batch_som): the batch-map maths against brute-force loops,
its presets and config errors, and a real run on USPS that learns, resumes exactly and is scored
like every other model."""
import math

import pytest
import torch

from vitsom import config as C
from vitsom.batch_som import batch_map_update, sigma_at, unit_sums
from vitsom.evaluation import evaluate
from vitsom.som import grid_coordinates, grid_sq_distances
from vitsom.taskdata import load_task_data
from vitsom.train import build_model, load_trained, train


def test_unit_sums_match_a_loop():
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(37, 5, generator=g), torch.rand(6, 5, generator=g)
    S, n, sse = unit_sums(x, w, chunk=8)               # several chunks, the last one partial
    S_ref, n_ref, sse_ref = torch.zeros(6, 5, dtype=torch.float64), torch.zeros(6, dtype=torch.float64), 0.0
    for xi in x:
        d = [float(((xi - wk) ** 2).sum()) for wk in w]
        j = min(range(6), key=d.__getitem__)
        S_ref[j] += xi.double()
        n_ref[j] += 1
        sse_ref += d[j]
    assert torch.allclose(S, S_ref) and torch.equal(n, n_ref)
    assert sse == pytest.approx(sse_ref, rel=1e-5)
    assert n.sum() == 37


def test_batch_map_update_matches_the_formula():
    coords = grid_coordinates(2, 3)
    grid_sq = grid_sq_distances(coords)
    g = torch.Generator().manual_seed(1)
    S, n = torch.rand(6, 4, generator=g, dtype=torch.float64), torch.tensor([3., 0., 1., 2., 0., 5.], dtype=torch.float64)
    w_old = torch.rand(6, 4, generator=g)
    sigma = 0.8
    new = batch_map_update(S, n, grid_sq, sigma, w_old)
    for k in range(6):
        h = [math.exp(-float(((coords[k] - coords[j]) ** 2).sum()) / (2 * sigma ** 2)) for j in range(6)]
        num = sum(h[j] * S[j] for j in range(6))
        den = sum(h[j] * n[j] for j in range(6))
        assert torch.allclose(new[k].double(), num / den, atol=1e-6), k


def test_batch_map_with_a_vanishing_neighbourhood_is_a_k_means_step():
    """σ → 0: each unit becomes the mean of its own images; a unit with none keeps its prototype."""
    grid_sq = grid_sq_distances(grid_coordinates(1, 3))
    x = torch.tensor([[0., 0.], [0., 2.], [10., 10.]])
    w = torch.tensor([[0., 1.], [50., 50.], [9., 9.]])
    S, n, _ = unit_sums(x, w)
    new = batch_map_update(S, n, grid_sq, 0.05, w)
    assert torch.allclose(new, torch.tensor([[0., 1.], [50., 50.], [10., 10.]]))
    with pytest.raises(ValueError, match="positive"):
        batch_map_update(S, n, grid_sq, 0.0, w)


def test_sigma_schedule_ends_at_its_bounds():
    assert sigma_at(0, 30, 12.0, 1.0) == pytest.approx(12.0)
    assert sigma_at(29, 30, 12.0, 1.0) == pytest.approx(1.0)
    widths = [sigma_at(e, 30, 12.0, 1.0) for e in range(30)]
    assert all(a > b for a, b in zip(widths, widths[1:]))


def test_presets_and_config_errors():
    for ds, side in (("mnist", 28), ("fmnist", 28), ("usps", 16)):
        for name, grid in ((f"ksom-{ds}", 24), (f"ksom-{ds}-8x8", 8)):
            c = C.make_config(name)
            assert (c.model.arch, c.som.distance, c.train.optimizer) == ("som", "euclidean", "batch-map")
            assert (c.som.height, c.som.width, c.som.t_max, c.som.t_min) == (grid, grid, grid / 2, 1.0)
            assert c.model.img_size == side and c.train.epochs == 30
    with pytest.raises(ValueError, match="batch-map.*raw-pixel SOM"):
        C.make_config("usps-clustering", overrides=["train.optimizer=batch-map"])
    with pytest.raises(ValueError, match="euclidean"):
        C.make_config("ksom-usps", overrides=["som.distance=cosine"])
    with pytest.raises(ValueError, match="adamw, adam or batch-map"):
        C.make_config("ksom-usps", overrides=["train.optimizer=sgd"])


SHORT = ["train.max_train_samples=2000", "train.epochs=6"]


def test_classical_som_learns_and_resumes_exactly(usps_root, isolated_results):
    cfg = C.make_config("ksom-usps", "smoke", 0, SHORT)
    data = load_task_data(cfg, usps_root)
    torch.manual_seed(0)
    before = evaluate(build_model(cfg), data.train, torch.device("cpu"), "clustering")
    quiet = dict(data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    cut = train(cfg, stop_after_steps=2, **quiet)
    assert cut["interrupted"] and cut["step"] == 2
    resumed = train(cfg, **quiet)
    m = resumed["metrics"]
    # untrained U[0,1) prototypes put the images on a handful of units (purity ≈ 0.2); ≈ 0.85 after
    assert m["purity"] > before["purity"] + 0.3 and m["units_used"] > 200, (before, m)
    assert m["quantization_error"] < 0.5 * before["quantization_error"]
    assert resumed["algorithm"].startswith("Kohonen batch map") and resumed["steps"] == 6
    h = resumed["history"]
    assert [e["epoch"] for e in h] == list(range(6)) and h[0]["sigma"] == 12.0 and h[-1]["sigma"] == pytest.approx(1.0)
    assert h[-1]["mean_sq_error"] < h[1]["mean_sq_error"]
    assert resumed["diagnostics"]["chance_purity"]["chance_purity"] < m["purity"] - 0.3
    # the same config from scratch, uninterrupted, ends on the same prototypes and scores
    model_resumed, _ = load_trained(resumed)
    again = train(cfg, force=True, **dict(quiet))
    model_again, _ = load_trained(again)
    assert torch.equal(model_resumed.som.prototypes, model_again.som.prototypes)
    assert again["metrics"] == m
    # a repeat of the batch map is filed apart and says so; the record stays
    rep = train(cfg, repeat="again", **quiet)
    assert rep["repeat"] == "again" and rep["metrics"] == m and rep["algorithm"].startswith("Kohonen batch map")
    assert (isolated_results / "results" / "smoke" / cfg.preset / "repeats" / f"{cfg.key()}.again.json").exists()
    assert train(cfg, **quiet)["created"] == again["created"]
