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
