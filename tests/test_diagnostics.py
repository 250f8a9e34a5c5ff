"""The SOM gradient-share diagnostic against the training loss itself (brute force by autograd)."""
import math

import pytest
import torch

from vitsom.config import make_config
from vitsom.diagnostics import encoder_parameters, som_gradient_share
from vitsom.train import build_model, loss_terms


@pytest.mark.parametrize("preset", ["usps-clustering", "mnist-classification"])
def test_share_matches_the_training_loss_gradients(preset):
    cfg = make_config(preset, "smoke", 0, ["som.height=6", "som.width=6", "som.gamma=0.3", "som.t_max=2.0"])
    torch.manual_seed(0)
    model = build_model(cfg)
    size, ch = cfg.model.img_size, cfg.model.in_chans
    x, y = torch.rand(16, ch, size, size), torch.randint(0, 10, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    model.eval()
    share = som_gradient_share(model, cfg, x, y, step=30, total_steps=40)
    assert not model.training                                     # mode restored
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # brute force: the encoder gradient of the whole training loss minus that of the task loss alone
    params = encoder_parameters(model)
    model.train()
    step_t = torch.tensor(30.0)
    loss, task, _ = loss_terms(model, cfg, x, y, step_t, 40, None)
    g_all = torch.autograd.grad(loss, params, retain_graph=True)
    g_task = torch.autograd.grad(task, params)
    som_part = math.sqrt(sum(float((a - b).double().pow(2).sum()) for a, b in zip(g_all, g_task)))
    task_norm = math.sqrt(sum(float(b.double().pow(2).sum()) for b in g_task))
    assert share["task_grad_norm"] == pytest.approx(task_norm, rel=1e-5)
    assert share["som_grad_norm"] == pytest.approx(som_part, rel=1e-3)
    assert share["ratio"] == pytest.approx(som_part / task_norm, rel=1e-3)
    assert -1.0 <= share["cosine"] <= 1.0 and share["gamma_t"] == pytest.approx(0.3)   # warm-up done at 3/4
    # linear in γ; the task gradient does not depend on γ
    double = som_gradient_share(model, cfg, x, y, step=30, total_steps=40, gamma=0.6)
    assert double["ratio"] == pytest.approx(2 * share["ratio"], rel=1e-6)
    assert double["task_grad_norm"] == pytest.approx(share["task_grad_norm"], rel=1e-9)


def test_share_refuses_models_without_a_comparison():
    cfg = make_config("som-usps", "smoke", 0)
    with pytest.raises(ValueError, match="no encoder parameters|no task loss"):
        som_gradient_share(build_model(cfg), cfg, torch.rand(4, 1, 16, 16), torch.zeros(4, dtype=torch.long), 0, 10)


def test_prototype_gradient_matches_the_training_loss():
    """γ_t·∂L_som/∂W from the diagnostic equals the prototypes' gradient of the whole training loss
    (only the SOM term reaches them), over all units and over the batch's BMU rows."""
    from vitsom.diagnostics import prototype_gradient
    cfg = make_config("usps-clustering", "smoke", 0, ["som.height=6", "som.width=6", "som.gamma=0.3",
                                                       "som.t_max=2.0", "train.eps=1e-6"])
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.rand(16, 1, 16, 16)
    pg = prototype_gradient(model, cfg, x, step=10, total_steps=40)
    model.train()
    loss, _, _ = loss_terms(model, cfg, x, torch.zeros(16, dtype=torch.long), torch.tensor(10.0), 40, None)
    g, = torch.autograd.grad(loss, [model.som.prototypes])
    with torch.no_grad():
        bmu = torch.unique(model(x, temperature=pg["temperature"]).som.bmu)
    assert pg["rms"] == pytest.approx(float(g.double().pow(2).mean().sqrt()), rel=1e-4)
    assert pg["rms_bmu_rows"] == pytest.approx(float(g[bmu].double().pow(2).mean().sqrt()), rel=1e-4)
    assert pg["adam_eps"] == 1e-6 and pg["rms_bmu_rows_over_eps"] == pytest.approx(pg["rms_bmu_rows"] / 1e-6)
    assert pg["gamma_t"] == pytest.approx(0.3 * 10 / 20)            # warm-up: γ·t/⌊S/2⌋


def test_mean_pairwise_cosine_matches_a_loop():
    from vitsom.diagnostics import mean_pairwise_cosine
    torch.manual_seed(0)
    z = torch.randn(7, 5) + 0.5
    loop = [float(torch.nn.functional.cosine_similarity(z[i], z[j], dim=0))
            for i in range(7) for j in range(7) if i != j]
    assert mean_pairwise_cosine(z) == pytest.approx(sum(loop) / len(loop), abs=1e-6)
    one_direction = torch.ones(4, 3) * torch.arange(1, 5.0)[:, None]
    assert mean_pairwise_cosine(one_direction) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="n ≥ 2"):
        mean_pairwise_cosine(torch.ones(1, 3))


def test_run_diagnostics_measure_latent_spread_even_at_gamma_zero():
    """Every ViT-SOM record gets the SOM inputs' spread; the gradient diagnostics only when γ > 0."""
    from vitsom.data import ImageArrays
    from vitsom.diagnostics import mean_pairwise_cosine, run_diagnostics
    arrays = ImageArrays(torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8), torch.zeros(40, dtype=torch.long),
                         "usps", 10)
    for gamma, expected in ((0.005, {"latent_spread", "som_gradient", "prototype_gradient"}), (0.0, {"latent_spread"})):
        cfg = make_config("usps-clustering", "smoke", 0, ["som.height=4", "som.width=4", "train.batch_size=16",
                                                           f"som.gamma={gamma}"])
        torch.manual_seed(0)
        model = build_model(cfg)
        diag = run_diagnostics(model, cfg, arrays, torch.device("cpu"), None, total_steps=10)
        assert set(diag) == expected, diag
        with_bmu = run_diagnostics(model, cfg, arrays, torch.device("cpu"), None, total_steps=10,
                                   bmu_labels=(torch.arange(40) % 4, torch.arange(40) % 10))
        assert set(with_bmu) == expected | {"chance_purity"}
        assert with_bmu["chance_purity"]["units_used"] == 4 and with_bmu["chance_purity"]["purity"] == pytest.approx(0.2)
        # no training batch to measure on: the ViT diagnostics record an error, the chance baseline still comes
        broken = run_diagnostics(model, cfg, None, torch.device("cpu"), None, total_steps=10,
                                 bmu_labels=(torch.arange(40) % 4, torch.arange(40) % 10))
        assert "error" in broken["som_gradient"] and broken["chance_purity"]["purity"] == pytest.approx(0.2)
        ls = diag["latent_spread"]
        assert ls["batch"] == 16 and ls["dim"] == 64 * 16 and -1.0 <= ls["mean_pairwise_cosine"] <= 1.0
        from vitsom.diagnostics import first_training_batch
        x, _ = first_training_batch(cfg, arrays, torch.device("cpu"), None)
        with torch.no_grad():
            assert ls["mean_pairwise_cosine"] == pytest.approx(mean_pairwise_cosine(model(x).z), rel=1e-6)


def test_diagnose_adds_only_what_a_record_lacks(usps_root, isolated_results):
    """`python -m vitsom diagnose` on a record made before a diagnostic existed: the missing one is
    measured from the saved weights and marked as measured after training; the others stay as the run
    wrote them, unless --redo."""
    import json
    from vitsom.__main__ import main
    from vitsom.records import record_path
    from vitsom.train import train
    cfg = make_config("usps-clustering", "smoke", 0, ["train.epochs=1", "train.max_train_samples=256",
                                                       "som.height=4", "som.width=4", "train.checkpoint_every=0"])
    rec = train(cfg, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    path = record_path(cfg)
    written = rec["diagnostics"]["latent_spread"]
    chance = rec["diagnostics"]["chance_purity"]
    # the chance baseline is taken on the evaluated split's BMUs: same purity as the record's
    assert chance["purity"] == rec["metrics"]["purity"] and chance["units_used"] == rec["metrics"]["units_used"]
    assert 0 < chance["chance_purity"] <= chance["purity"] + 0.05
    old = json.loads(path.read_text())
    del old["diagnostics"]["latent_spread"], old["diagnostics"]["chance_purity"]   # a record from before them
    path.write_text(json.dumps(old))
    assert main(["diagnose", str(path), "--data", str(usps_root)]) == 0
    new = json.loads(path.read_text())["diagnostics"]
    assert new["latent_spread"]["mean_pairwise_cosine"] == pytest.approx(written["mean_pairwise_cosine"], rel=1e-6)
    assert "measured_after_training" in new["latent_spread"]
    # re-forwarded from the saved weights: the same BMUs, so the same purity and the same baseline
    assert new["chance_purity"]["purity"] == chance["purity"]
    assert new["chance_purity"]["chance_purity"] == pytest.approx(chance["chance_purity"], abs=1e-12)
    assert new["som_gradient"] == old["diagnostics"]["som_gradient"]     # untouched
    assert main(["diagnose", str(path), "--data", str(usps_root), "--redo"]) == 0
    assert "measured_after_training" in json.loads(path.read_text())["diagnostics"]["som_gradient"]
