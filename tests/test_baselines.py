"""Baselines (vitsom.baselines): DESOM, the raw-pixel SOM and ResNet34 — shapes, sizes, presets,
and short real trainings on USPS that must beat the untrained model."""
import pytest
import torch

from vitsom import config as C
from vitsom.baselines import DESOM, PixelSOM, ResNet34Classifier, build_baseline
from vitsom.som import SOMLayer, SOMOutput
from vitsom.evaluation import evaluate
from vitsom.taskdata import load_task_data
from vitsom.train import build_model, param_groups, train
from vitsom.vit import count_parameters


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a CPU shared with other jobs, two threads per process are many
    times slower than one for these small matrices (oversubscription). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Short real runs: 1,500 USPS images, batch 32, 3 epochs = 138 steps. The presets' own smoke
# profile (1,024 images, 2 epochs, B 256 for DESOM → 8 steps) leaves DESOM's map on 2–3 units,
# about as collapsed as the untrained one, so learning would not be visible; 138 small steps are
# enough (DESOM: ≈ 45 units used, purity ≈ 0.54).
SHORT = ["train.max_train_samples=1500", "train.batch_size=32", "train.epochs=3", "train.checkpoint_every=0"]
# The raw SOM is cheap; it gets 2,000 images, batch 64, 5 epochs (155 steps). With 576 units for
# 2,000 images even random prototypes give purity ≈ 0.64 (few samples per unit), so the margin is
# checked on NMI and quantisation error as well.
SHORT_SOM = ["train.max_train_samples=2000", "train.batch_size=64", "train.epochs=5", "train.checkpoint_every=0"]


def _untrained_and_trained(preset, root, overrides):
    cfg = C.make_config(preset, "smoke", 0, overrides)
    data = load_task_data(cfg, root)
    torch.manual_seed(cfg.seed)
    before = evaluate(build_model(cfg), data.train, torch.device("cpu"), "clustering")
    rec = train(cfg, data_root=root, device="cpu", progress=False, log=lambda s: None)
    return cfg, before, rec


def test_desom_learns_on_usps(usps_root, isolated_results):
    cfg, before, rec = _untrained_and_trained("desom-usps", usps_root, SHORT)
    m = rec["metrics"]
    assert m["n"] == 1500 and rec["steps"] == 3 * (1500 // 32)
    # untrained: random prototypes in [0,1)^10 catch the latents on ~3 units (purity ≈ 0.18);
    # trained: ≈ 0.55 on ~45 units
    assert m["purity"] > before["purity"] + 0.2, (before, m)
    assert m["units_used"] > before["units_used"] + 10
    assert m["recon_l1"] < before["recon_l1"] - 0.05
    for k in ("kmeans_acc", "kmeans_nmi", "nmi", "quantization_error", "topographic_error"):
        assert k in m, k
    assert 0.0 < m["kmeans_acc"] <= 1.0 and 0.0 < m["kmeans_nmi"] <= 1.0
    # the chance baseline is a clustering diagnostic, for the baselines too (and only it: no ViT to measure)
    assert set(rec["diagnostics"]) == {"chance_purity"} and rec["diagnostics"]["chance_purity"]["purity"] == m["purity"]
    assert rec["diagnostics"]["chance_purity"]["chance_purity"] < m["purity"] - 0.2
    # the record describes the baseline, not a ViT
    assert rec["config"]["model"]["arch"] == "desom"
    assert rec["params"]["som"] == 64 * 10 and rec["params"]["decoder"] > 0 and rec["params"]["head"] == 0
    # Adam with lr 1e-3, no batch scaling, constant schedule (the DESOM recipe)
    assert all(h["lr"] == pytest.approx(1e-3) for h in rec["history"])
    assert all(h["gamma"] == pytest.approx(0.001) for h in rec["history"])


def test_raw_pixel_som_learns_on_usps(usps_root, isolated_results):
    cfg, before, rec = _untrained_and_trained("som-usps", usps_root, SHORT_SOM)
    m = rec["metrics"]
    # 576 random prototypes already hash pixels somewhat (purity ≈ 0.64); training reaches ≈ 0.85
    assert m["purity"] > before["purity"] + 0.12, (before, m)
    assert m["nmi"] > before["nmi"] + 0.1, (before, m)
    assert m["quantization_error"] < 0.7 * before["quantization_error"]
    assert "kmeans_acc" in m and "kmeans_nmi" in m and "recon_l1" not in m
    cp = rec["diagnostics"]["chance_purity"]
    assert cp["purity"] == m["purity"] and cp["units_used"] == m["units_used"] and cp["chance_purity"] < m["purity"]
    # no decoder: the only loss is γ·L_som with γ = 1 from the first step
    assert all(h["task_loss"] == 0.0 and h["gamma"] == 1.0 for h in rec["history"])
    assert rec["params"] == {"encoder": 0, "decoder": 0, "head": 0, "som": 24 * 24 * 256, "total": 24 * 24 * 256}


def test_parameter_counts():
    d = build_model(C.make_config("desom-mnist"))
    assert isinstance(d, DESOM) and isinstance(d.som, SOMLayer)
    c = count_parameters(d)
    # 784-500-500-2000-10 and mirror: 1,665,010 + 1,665,784 weights and biases (≈ 3.33M)
    assert c["encoder"] == 1_665_010 and c["decoder"] == 1_665_784
    assert c["total"] - c["som"] == 3_330_794 and c["som"] == 640
    s = build_model(C.make_config("som-mnist"))
    assert isinstance(s, PixelSOM) and count_parameters(s)["total"] == 451_584   # the paper's 451K
    r = build_model(C.make_config("resnet34-cifar10"))
    n = count_parameters(r)
    assert n["som"] == 0 and n["head"] == 512 * 10 + 10
    assert 21.2e6 < n["total"] < 21.4e6          # torchvision ResNet34 with a 3×3 stem, 10 classes


def test_desom_architecture_and_init():
    m = build_baseline(C.make_config("desom-usps"))
    lins = [l for l in m.ae.encoder if isinstance(l, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lins] == [(256, 500), (500, 500), (500, 2000), (2000, 10)]
    assert isinstance(m.ae.encoder[-1], torch.nn.Linear)            # no activation on the latent
    assert isinstance(m.ae.decoder[-1], torch.nn.Linear)            # identity output
    assert all(float(l.bias.detach().abs().max()) == 0.0 for l in lins)
    bound = (6 / (500 + 2000)) ** 0.5                               # Xavier-uniform
    assert float(lins[2].weight.detach().abs().max()) <= bound and float(lins[2].weight.detach().abs().max()) > 0.9 * bound
    assert m.som.distance == "manhattan" and m.som.num_units == 64
    x = torch.rand(3, 1, 16, 16)
    out = m(x, temperature=2.0)
    assert out.z.shape == (3, 10) and out.recon.shape == x.shape and out.logits is None
    assert isinstance(out.som, SOMOutput) and out.som.distances.shape == (3, 64)
    # the configurable widths are honoured
    cfg = C.make_config("desom-usps", overrides=["model.hidden=[32,8]"])
    assert build_model(cfg)(x).z.shape == (3, 8)


@pytest.mark.parametrize("shape,preset,classes", [((2, 3, 32, 32), "resnet34-cifar10", 10),
                                                  ((2, 3, 32, 32), "resnet34-cifar100", 100),
                                                  ((2, 1, 28, 28), "resnet34-mnist", 10)])
def test_resnet34_forward(shape, preset, classes):
    cfg = C.make_config(preset)
    assert (cfg.som.height, cfg.som.width, cfg.som.gamma, cfg.model.in_chans) == (0, 0, 0.0, shape[1])
    m = build_model(cfg)
    assert isinstance(m, ResNet34Classifier) and m.som is None
    conv1 = m.backbone.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.in_channels == shape[1]
    assert isinstance(m.backbone.maxpool, torch.nn.Identity)
    out = m(torch.randn(shape), temperature=1.0)
    assert out.logits.shape == (shape[0], classes) and out.som is None and out.recon is None
    assert out.z.shape == (shape[0], 512)
    # the head gets the head/SOM weight-decay group, conv weights the ViT decay, BN none
    groups = param_groups(m, cfg.train.weight_decay, cfg.train.som_weight_decay)
    assert [g["weight_decay"] for g in groups] == [cfg.train.weight_decay, 0.0, cfg.train.som_weight_decay]
    assert sum(p.numel() for p in groups[2]["params"]) == 512 * classes + classes


def test_resnet34_stem_follows_image_size():
    """Flowers17 (224×224) keeps the ImageNet stem and reaches the last stage at 7×7; Tiny-ImageNet
    (64×64) gets the small-image stem and reaches it at 8×8 (a 224 input through the small stem
    would cost 16× the FLOPs)."""
    big = build_model(C.make_config("resnet34-flowers17"))
    assert big.imagenet_stem and big.backbone.conv1.stride == (2, 2)
    assert isinstance(big.backbone.maxpool, torch.nn.MaxPool2d)
    small = build_model(C.make_config("resnet34-tinyimagenet"))
    assert not small.imagenet_stem and small.backbone.conv1.stride == (1, 1)
    feats = {}
    for name, m, size in (("big", big, 224), ("small", small, 64)):
        m.backbone.layer4.register_forward_hook(lambda mod, i, o, name=name: feats.__setitem__(name, o.shape[-2:]))
        with torch.no_grad():
            out = m.eval()(torch.randn(1, 3, size, size))
        assert out.logits.shape == (1, 17 if name == "big" else 200)
    assert feats == {"big": (7, 7), "small": (8, 8)}
    # a one-channel large image gets a one-channel 7×7 stem
    g = ResNet34Classifier(in_chans=1, num_classes=5, img_size=224)
    assert g.backbone.conv1.in_channels == 1 and g.backbone.conv1.kernel_size == (7, 7)
    with pytest.raises(ValueError, match="at least 8×8"):
        ResNet34Classifier(3, 10, img_size=4)


def test_baseline_presets():
    names = [f"desom-{d}" for d in ("mnist", "fmnist", "usps")] + [f"som-{d}" for d in ("mnist", "fmnist", "usps")] \
        + [f"resnet34-{d}" for d in ("mnist", "fmnist", "cifar10", "cifar100", "flowers17", "svhn",
                                     "tinyimagenet", "pathmnist")]
    for name in names:
        cfg = C.make_config(name)
        assert cfg.preset == name and cfg.model.arch == name.split("-")[0]
    d = C.make_config("desom-mnist")
    assert (d.task, d.split, d.train.epochs, d.train.batch_size, d.train.optimizer, d.train.schedule,
            d.train.lr, d.train.lr_batch_scaling, d.train.weight_decay, d.train.som_weight_decay) == \
        ("clustering", "all", 60, 128, "adam", "constant", 1e-3, False, 0.0, 0.0)
    assert (d.som.height, d.som.width, d.som.distance, d.som.t_max, d.som.t_min, d.som.gamma, d.som.gamma_warmup) == \
        (8, 8, "manhattan", 8.0, 0.1, 0.001, False)
    assert C.make_config("desom-fmnist").train.batch_size == C.make_config("desom-usps").train.batch_size == 256
    assert C.make_config("desom-usps").model.img_size == 16
    s = C.make_config("som-usps")
    assert (s.som.height, s.som.gamma, s.som.gamma_warmup, s.model.arch) == (24, 1.0, False, "som")
    r = C.make_config("resnet34-cifar10")
    assert r.task == "classification" and r.train == C.make_config("cifar10-classification").train
    assert C.make_config("resnet34-svhn").train == C.make_config("svhn-classification").train
    for ds, classes in (("flowers17", 17), ("tinyimagenet", 200)):
        r, v = C.make_config(f"resnet34-{ds}"), C.make_config(f"{ds}-classification")
        assert r.train == v.train and (r.model.img_size, r.model.num_classes) == (v.model.img_size, classes)
    # the new presets leave the existing ones alone
    assert C.make_config("usps-clustering").model.arch == "vit"


def test_bad_baseline_configs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model.arch"):
        build_model(C.make_config("desom-usps", overrides=["model.arch=mlp"]))
    with pytest.raises(ValueError, match="has no SOM"):
        build_model(C.make_config("resnet34-cifar10", overrides=["som.height=4", "som.width=4", "som.gamma=0.1"]))
    with pytest.raises(ValueError, match="clustering model"):
        build_model(C.make_config("desom-usps", overrides=["model.num_classes=10"]))


def test_resnet34_learns_on_mnist(mnist_root, isolated_results):
    """32 steps on 512 MNIST images through the real classification path (normalised input,
    BatchNorm, label-smoothed CE, eval mode, top-1 on val/test)."""
    from vitsom.taskdata import input_norm
    from vitsom.train import load_trained
    cfg = C.make_config("resnet34-mnist", "smoke", 0, ["train.max_train_samples=512", "train.batch_size=32",
                                                       "train.epochs=2", "train.warmup_epochs=0", "train.lr=0.004",
                                                       "train.checkpoint_every=0"])
    rec = train(cfg, data_root=mnist_root, device="cpu", progress=False, log=lambda s: None)
    assert rec["steps"] == 32 and rec["task"] == "classification"
    assert 0.0 <= rec["metrics"]["top1"] <= 1.0 and "purity" not in rec["metrics"]
    assert rec["params"]["som"] == 0 and rec["params"]["head"] == 5130
    h = rec["history"]
    assert all(e["som_loss"] == 0.0 for e in h)
    # chance with label smoothing 0.1 is ln 10 ≈ 2.30; measured 1.59 → 0.78
    assert h[-1]["task_loss"] < 0.65 * h[0]["task_loss"], h
    # After 32 fast steps the BatchNorm running statistics lag the weights, so the record's eval-mode
    # top-1 is still near chance (measured 0.10), as in the first epoch of any ResNet run. The
    # weights themselves generalise: with the statistics recomputed on training images (same
    # weights, no gradient) the held-out top-1 is about 0.9.
    model, _ = load_trained(rec)
    data = load_task_data(cfg, mnist_root)
    mean, std = input_norm(cfg, torch.device("cpu"))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                       # cumulative average over the passes below
    model.train()
    with torch.no_grad():
        for i in range(0, 512, 128):
            model((data.train.float_batch(slice(i, i + 128)) - mean) / std)
        model.eval()
        test = data.eval_sets["test"]
        pred = model((test.float_batch(slice(0, 256)) - mean) / std).logits.argmax(1)
    assert (pred == test.labels[:256]).float().mean().item() > 0.5


def test_vit_som_8x8_learns_and_scores_held_out(usps_root, isolated_results):
    """The equal-clusters row (8×8 map) under the held-out protocol: fit on USPS train only, label
    the units there, score the test split."""
    cfg, before, rec = _untrained_and_trained(
        "usps-clustering-8x8", usps_root,
        ["split=train", "train.max_train_samples=2000", "train.batch_size=64", "train.epochs=5",
         "train.warmup_epochs=1", "som.t_max=3.0", "som.t_min=0.05", "train.lr=0.02", "train.checkpoint_every=0"])
    m, test = rec["metrics"], rec["eval"]["test"]
    assert rec["config"]["som"]["height"] == rec["config"]["som"]["width"] == 8 and m["units_used"] <= 64
    assert m["purity"] > before["purity"] + 0.25, (before, m)
    # units labelled from the 2,000 training images, scored on 500 test images nobody trained on
    assert test["n"] == 500 and test["heldout_purity"] > 0.45, test
    assert "kmeans_acc" in m and "nmi" in m


def test_vit_cls_and_vit_som_cls_learn_on_mnist(mnist_root, isolated_results):
    """The small-data pair: ViT-cls is the same model and recipe with γ = 0. A short run (93 steps,
    1,000 images, an 8×8 map to keep it cheap, lr raised) must beat chance (≈ 0.10 here) for both."""
    recs = {}
    for gamma in (0.0, 0.05):
        cfg = C.make_config("mnist-classification", "smoke", 0, [
            f"som.gamma={gamma}", "train.lr=0.01", "som.height=8", "som.width=8", "train.max_train_samples=1000",
            "train.batch_size=32", "train.epochs=3", "train.checkpoint_every=0"])
        recs[gamma] = train(cfg, data_root=mnist_root, device="cpu", progress=False, log=lambda s: None)
    for gamma, rec in recs.items():
        assert rec["task"] == "classification" and rec["steps"] == 3 * (1000 // 32)
        assert rec["metrics"]["top1"] > 0.18, (gamma, rec["metrics"])
        assert rec["eval"]["val"]["n"] == 250 and rec["eval"]["test"]["n"] == 500
    assert all(h["gamma"] == 0.0 for h in recs[0.0]["history"])
    assert recs[0.05]["history"][-1]["gamma"] > 0 and recs[0.05]["history"][-1]["som_loss"] > 0


@pytest.mark.parametrize("recon_loss", ["l1", "mse"])
def test_reconstruction_term_is_the_configured_loss(recon_loss):
    """``train.recon_loss`` picks the clustering task term: L1 (the authors') or the squared error of
    the original DESOM; the SOM term and the total follow L = L_task + γ·L_som either way."""
    from vitsom.train import loss_terms
    cfg = C.make_config("desom-usps", "smoke", 0, [f"train.recon_loss={recon_loss}"])
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.rand(8, 1, 16, 16)
    loss, task, som = loss_terms(model, cfg, x, torch.zeros(8, dtype=torch.long), torch.tensor(0), 10, None)
    recon = model(x).recon
    expected = (recon - x).pow(2).mean() if recon_loss == "mse" else (recon - x).abs().mean()
    assert task.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx(task.item() + cfg.som.gamma * som.item(), rel=1e-5)
