"""How hard does the SOM pull on the encoder?

ViT-SOM's claim is that the SOM term shapes the ViT's features: ``L = L_task + γ_t·L_som``. The
encoder only feels the SOM through ∂(γ_t·L_som)/∂θ_enc, so the size of that gradient next to the
task loss's says whether the SOM can matter at all. :func:`som_gradient_share` measures both on one
training batch: the two gradient norms over the encoder's parameters, their ratio and the cosine
between them. Every ViT-SOM run record carries it (``diagnostics.som_gradient``), measured on the
trained model at the recipe's final γ and temperature.

With the authors' loss scale (``L_som`` a mean over batch *and* the K units) the ratio is tiny
(about 1e-5 for the 40×40 classifier), which is why the γ = 0 control trains to the same accuracy.

The prototypes feel only the SOM term, through Adam(W): an update is lr·m/(√v + ε). When the
gradient is far below ε (1e-8 by default), that is ≈ lr·g/ε, plain SGD whose step grows linearly
with γ, instead of Adam's scale-free step of about lr. :func:`prototype_gradient` measures where the
prototypes sit: the RMS of γ_t·∂L_som/∂W over the units that are some image's BMU, next to ε.

What the map is given to sort matters as much: :func:`mean_pairwise_cosine` of the SOM inputs z over
one batch says how alike the images look to the SOM (1: all the same direction, which under the
cosine distance leaves the map nothing to sort).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import RunConfig
from .som import gamma_at, temperature_at


def encoder_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The parameters both losses reach: the ViT encoder (not the SOM, the head or the decoder)."""
    return [p for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith(("som.", "head.")) and ".decoder" not in n]


def _task_loss(out, x: torch.Tensor, y: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    if cfg.task == "clustering":
        if out.recon is None:
            raise ValueError(f"{cfg.preset}: no task loss (the model has no decoder), nothing to compare with")
        return F.l1_loss(out.recon.float(), x)
    return F.cross_entropy(out.logits.float(), y, label_smoothing=cfg.train.label_smoothing)


def som_gradient_share(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, step: int,
                       total_steps: int, gamma: float | None = None) -> dict[str, float]:
    """Encoder-gradient norms of the task loss and of γ_t·L_som on the batch ``(x, y)``.

    T_t and γ_t follow the recipe at global ``step`` of ``total_steps``; ``gamma`` replaces the
    recipe's γ (before the warm-up factor), e.g. to see the pull a γ = 0 control would have had.
    Returns ``task_grad_norm``, ``som_grad_norm``, ``ratio`` (som / task) and ``cosine``, plus the
    ``gamma_t`` and ``temperature`` used. The model's parameters are not changed."""
    if getattr(model, "som", None) is None:
        raise ValueError(f"{cfg.preset}: the model has no SOM layer")
    params = encoder_parameters(model)
    if not params:
        raise ValueError(f"{cfg.preset}: the model has no encoder parameters (raw-pixel SOM)")
    s = cfg.som
    step_t = torch.tensor(float(step), device=x.device)
    temp = temperature_at(step_t, total_steps, s.t_max, s.t_min)
    g = gamma_at(step_t, total_steps, s.gamma if gamma is None else gamma, s.gamma_warmup)
    was_training = model.training
    model.train()
    try:
        out = model(x, temperature=temp)
        task = _task_loss(out, x, y, cfg)
        g_task = torch.autograd.grad(task, params, retain_graph=True, allow_unused=True)
        g_som = torch.autograd.grad(out.som.loss.float(), params, allow_unused=True)
    finally:
        model.train(was_training)
    pairs = [(a if a is not None else torch.zeros_like(p), b if b is not None else torch.zeros_like(p))
             for a, b, p in zip(g_task, g_som, params)]
    gv = float(g)
    t2 = sum(float(a.double().pow(2).sum()) for a, _ in pairs)
    s2 = sum(float(b.double().pow(2).sum()) for _, b in pairs)
    dot = sum(float((a.double() * b.double()).sum()) for a, b in pairs)
    task_norm, som_norm = math.sqrt(t2), abs(gv) * math.sqrt(s2)
    return {"task_grad_norm": task_norm, "som_grad_norm": som_norm,
            "ratio": som_norm / task_norm if task_norm > 0 else float("nan"),
            "cosine": dot / math.sqrt(t2 * s2) if t2 > 0 and s2 > 0 else float("nan"),
            "gamma_t": gv, "temperature": float(temp), "step": int(step), "batch": int(x.shape[0])}


def prototype_gradient(model: nn.Module, cfg: RunConfig, x: torch.Tensor, step: int, total_steps: int) -> dict:
    """γ_t·∂L_som/∂W on the batch ``x`` at global ``step``: its RMS over all prototype entries and
    over the rows of the units that are some image's BMU, and that RMS over Adam's ε (< 1: the
    prototypes move in ε's SGD-like regime, where γ sets their step size)."""
    s = cfg.som
    step_t = torch.tensor(float(step), device=x.device)
    temp = temperature_at(step_t, total_steps, s.t_max, s.t_min)
    g = float(gamma_at(step_t, total_steps, s.gamma, s.gamma_warmup))
    W = model.som.prototypes
    was_training = model.training
    model.train()
    try:
        out = model(x, temperature=temp)
        grad, = torch.autograd.grad(out.som.loss.float(), [W])
    finally:
        model.train(was_training)
    grad = (g * grad).double()
    bmu_rows = torch.unique(out.som.bmu.reshape(-1))
    rms_bmu = float(grad[bmu_rows].pow(2).mean().sqrt())
    return {"rms": float(grad.pow(2).mean().sqrt()), "rms_bmu_rows": rms_bmu, "adam_eps": cfg.train.eps,
            "rms_bmu_rows_over_eps": rms_bmu / cfg.train.eps, "gamma_t": g, "temperature": float(temp),
            "step": int(step)}


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    """Mean cosine similarity over the n·(n−1) ordered pairs of distinct rows of ``z`` (n, D):
    with unit rows u_i, Σ_{i≠j} ⟨u_i, u_j⟩ = ‖Σ_i u_i‖² − n."""
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need a (n ≥ 2, D) batch of latents, got shape {tuple(z.shape)}")
    u = F.normalize(z.double(), dim=1)
    s = u.sum(0)
    n = u.shape[0]
    return float((s @ s - n) / (n * (n - 1)))


@torch.no_grad()
def latent_spread(model: nn.Module, x: torch.Tensor) -> dict:
    """How alike the SOM's inputs z are on the batch ``x``: their mean pairwise cosine similarity."""
    was_training = model.training
    model.eval()
    try:
        z = model(x, temperature=1.0).z.float()
    finally:
        model.train(was_training)
    return {"mean_pairwise_cosine": mean_pairwise_cosine(z), "batch": int(x.shape[0]), "dim": int(z.shape[1])}


def first_training_batch(cfg: RunConfig, train_data, device: torch.device, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's first training batch of epoch 0 (same order and input normalisation as training)."""
    from .data import ImageArrays
    from .taskdata import ArrayBatches, LoaderBatches
    if isinstance(train_data, ImageArrays):
        nm = norm if norm is not None else (None, None)
        return next(ArrayBatches(train_data, cfg.train.batch_size, device, cfg.seed, *nm).epoch(0))
    return next(LoaderBatches(train_data, cfg.train.batch_size, device, cfg.seed, num_workers=0).epoch(0))


def chance_baseline(bmu, labels, permutations: int = 10) -> dict:
    """The map's purity next to the purity its cluster sizes get with the labels dealt out at random
    (:func:`vitsom.metrics.chance_purity`): how much of the purity the many units give for free."""
    from . import metrics
    return {"chance_purity": metrics.chance_purity(bmu, labels, permutations), "purity": metrics.purity(bmu, labels),
            "units_used": int(torch.as_tensor(bmu).unique().numel()), "permutations": permutations}


def run_diagnostics(model: nn.Module, cfg: RunConfig, train_data, device: torch.device, norm,
                    total_steps: int, bmu_labels: tuple | None = None) -> dict:
    """What a run record stores under ``diagnostics``. With ``bmu_labels`` (the evaluation split's
    BMUs and labels), the chance baseline of its purity, for every clustering model. For ViT-SOM runs
    also the SOM inputs' spread on the trained model, and for γ > 0 the SOM's gradient share and the
    prototypes' gradient at the final step. Never raises: a failure is recorded as an error string so
    that a finished training run is never lost to a diagnostic."""
    measures: dict = {}
    out: dict = {}
    if bmu_labels is not None:
        measures["chance_purity"] = (lambda: chance_baseline(*bmu_labels),
                                     f"{cfg.split} split, every image, labels shuffled 10 times")
    if cfg.model.arch == "vit" and getattr(model, "som", None) is not None:
        where = "trained model, first training batch, final γ_t and T_t, fp32"
        try:
            x, y = first_training_batch(cfg, train_data, device, norm)
        except Exception as e:     # noqa: BLE001 — see docstring
            out["som_gradient"] = {"error": f"{type(e).__name__}: {e}"}
        else:
            step = max(total_steps - 1, 0)
            measures["latent_spread"] = (lambda: latent_spread(model, x), "trained model, first training batch, eval mode")
            if cfg.som.gamma != 0:
                measures["som_gradient"] = (lambda: som_gradient_share(model, cfg, x, y, step, total_steps), where)
                measures["prototype_gradient"] = (lambda: prototype_gradient(model, cfg, x, step, total_steps), where)
    for name, (measure, at) in measures.items():
        try:
            out[name] = {**measure(), "where": at}
        except Exception as e:     # noqa: BLE001 — see docstring
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    return out


def add_diagnostics(record_file, data_root=None, device: str = "cpu", redo: bool = False) -> dict:
    """Measure the diagnostics an existing record lacks (all of them with ``redo``) from its saved
    weights (``runs/<key>/model.pt``) and write them into the record (atomically), noting the commit
    that measured them."""
    from pathlib import Path

    from .records import atomic_write_json, git_commit, load_record, now_iso
    from .taskdata import input_norm, load_task_data
    from .train import load_trained
    path = Path(record_file)
    rec = load_record(path)
    model, cfg = load_trained(rec, device=device)
    dev = torch.device(device)
    data = load_task_data(cfg, data_root)
    old = rec.get("diagnostics", {})
    bmu_labels = None
    if cfg.task == "clustering" and (redo or "chance_purity" not in old or "error" in old["chance_purity"]):
        from .evaluation import predict
        from .taskdata import labels_of
        arr = data.eval_sets[cfg.split]
        bmu_labels = (predict(model, arr, dev, norm=input_norm(cfg, dev))["bmu"].numpy(), labels_of(arr))
    diag = run_diagnostics(model, cfg, data.train, dev, input_norm(cfg, dev), rec["steps"], bmu_labels)
    if not redo:     # keep what was measured when the run finished; add only what it lacks
        diag = {k: v for k, v in diag.items() if k not in old or "error" in old[k]}
    if not diag:
        return rec
    for v in diag.values():
        v["measured_after_training"] = {"git": git_commit(), "created": now_iso()}
    rec["diagnostics"] = {**old, **diag}
    atomic_write_json(path, rec)
    return rec
