"""Training and evaluation of ViT-SOM (plain PyTorch, no framework).

``train(cfg)`` runs one configuration end to end: data → model → AdamW with the reference's LR
recipe → per-step temperature and γ schedules → evaluation → an atomically written run record.
It checkpoints every ``cfg.train.checkpoint_every`` steps and at each epoch end; rerunning the same
config resumes from the checkpoint and reaches the same final result as an uninterrupted run.
"""
from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from . import data as vdata
from . import metrics
from .config import RunConfig
from .records import (SCHEMA, atomic_torch_save, atomic_write_json, device_info, git_commit, load_record,
                      now_iso, record_path, runs_root)
from .som import gamma_at, quantization_error, temperature_at, topographic_error
from .vit import ViTSOM, count_parameters


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------- small pieces

def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
    return dev


def build_model(cfg: RunConfig) -> nn.Module:
    """The model of a config: ViT-SOM, or a baseline (``model.arch``) from :mod:`vitsom.baselines`.

    Every model returns an object with ``z``, ``recon``, ``logits`` and ``som`` (a SOMOutput or
    None) and has a ``som`` attribute (a SOMLayer or None)."""
    m, s = cfg.model, cfg.som
    if m.arch != "vit":
        from .baselines import build_baseline
        return build_baseline(cfg)
    grid = (s.height, s.width)
    return ViTSOM(m.img_size, m.in_chans, m.patch, m.emb_dim, m.depth, m.heads, m.mlp_ratio, m.dec_emb,
                  m.dec_depth, num_classes=m.num_classes, som_grid=grid, distance=s.distance,
                  topology=s.topology, som_input=s.som_input)


def lr_factor(epoch: int, epochs: int, warmup_epochs: int, min_factor: float) -> float:
    """Per-epoch LR multiplier: max(min_lr, min((e+1)/warmup, ½(1 + cos(π e / E))))."""
    return max(min_factor, min((epoch + 1) / max(warmup_epochs, 1), 0.5 * (1 + math.cos(math.pi * epoch / epochs))))


def param_groups(model: ViTSOM, weight_decay: float, som_weight_decay: float,
                 tensors: dict[str, torch.Tensor] | None = None) -> list[dict]:
    """ViT weights with ≥2 dims (cls token included) decay; 1-D ones do not; prototypes and the
    head form a third group with their own decay (the reference's AdamW default, 0.01).
    ``tensors`` (name → tensor) puts other tensors in the groups in the model's parameters' places:
    the seeds-together trainer passes its stacked (S, …) parameters."""
    decay, no_decay, other = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        t = p if tensors is None else tensors[name]
        if name.startswith(("som.", "head.")):
            other.append(t)
        elif p.ndim >= 2:
            decay.append(t)
        else:
            no_decay.append(t)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0},
              {"params": other, "weight_decay": som_weight_decay}]
    return [g for g in groups if g["params"]]


def make_optimizer(cfg: RunConfig, model: nn.Module, device: torch.device,
                   tensors: dict[str, torch.Tensor] | None = None) -> torch.optim.Optimizer:
    """The recipe's Adam(W) over :func:`param_groups` (of ``tensors`` in the model's places if given)."""
    t = cfg.train
    lr = t.lr * t.batch_size / 256 if t.lr_batch_scaling else t.lr
    groups = param_groups(model, t.weight_decay, t.som_weight_decay, tensors)
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=t.betas, eps=t.eps, fused=device.type == "cuda")


def autocast_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    p = cfg.train.precision
    if p == "bf16" or (p == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def loss_terms(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, step_t: torch.Tensor,
               total_steps: int, amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, task loss, SOM loss) of one batch at global step ``step_t`` (a device tensor).

    L = L_task + γ_t·L_som with L_task the L1 reconstruction (clustering) or label-smoothed CE
    (classification); T_t and γ_t are computed on the device from ``step_t``."""
    s = cfg.som
    temp = temperature_at(step_t, total_steps, s.t_max, s.t_min)
    gamma = gamma_at(step_t, total_steps, s.gamma, s.gamma_warmup)
    with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        out = model(x, temperature=temp)
    if cfg.task == "clustering":
        # the raw-pixel SOM baseline has no decoder: its only loss is the SOM's
        task = F.l1_loss(out.recon.float(), x) if out.recon is not None else x.new_zeros(())
    else:
        task = F.cross_entropy(out.logits.float(), y, label_smoothing=cfg.train.label_smoothing)
    som = out.som.loss.float() if out.som is not None else task.new_zeros(())
    return task + gamma * som, task, som


def make_train_step(model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig, total_steps: int,
                    amp: torch.dtype | None, compile: bool = False, log: Callable[[str], None] = print):
    """``step(x, y, step_t) -> tensor([loss, task, som])``: forward, backward, optimizer step.

    With ``compile`` the loss computation goes through ``torch.compile``; if compiling fails the
    step falls back to eager mode with a message (never silently different maths)."""
    def eager(x, y, step_t):
        return loss_terms(model, cfg, x, y, step_t, total_steps, amp)

    mode = os.environ.get("VITSOM_COMPILE_MODE", "default")   # e.g. "reduce-overhead" (CUDA graphs)
    fn = [torch.compile(eager, dynamic=False, mode=mode) if compile else eager]

    def step(x: torch.Tensor, y: torch.Tensor, step_t: torch.Tensor) -> torch.Tensor:
        try:
            loss, task, som = fn[0](x, y, step_t)
        except Exception as e:  # noqa: BLE001 - any compiler failure → eager
            if fn[0] is eager:
                raise
            log(f"[vitsom] torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "continuing in eager mode")
            fn[0] = eager
            loss, task, som = eager(x, y, step_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return torch.stack([loss.detach(), task.detach(), som.detach()])

    return step


# ----------------------------------------------------------------------------- data

@dataclass
class TaskData:
    train: vdata.ImageArrays | Dataset          # a Dataset (with augmentation) for colour classification
    eval_sets: dict[str, vdata.ImageArrays | Dataset]   # clustering: {split: …}; classification: {"val", "test"}


def uses_loader(cfg: RunConfig) -> bool:
    """Colour classification sets (CIFAR, SVHN, PathMNIST, Flowers-17, Tiny-ImageNet) go through a
    DataLoader with the reference's per-sample augmentation; everything else is GPU-resident."""
    spec = vdata.get_spec(cfg.dataset)
    return cfg.task == "classification" and (spec.channels == 3 or not spec.in_memory)


def _labels_of(ds) -> np.ndarray:
    if isinstance(ds, vdata.ImageArrays):
        return ds.labels.numpy()
    if isinstance(ds, Subset):
        return _labels_of(ds.dataset)[np.asarray(ds.indices)]
    return np.asarray(ds.targets)


def _fixed_subset(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


def _download() -> bool:
    """Download missing datasets where a source exists (default); ``VITSOM_DOWNLOAD=0`` turns it off."""
    return os.environ.get("VITSOM_DOWNLOAD", "1") != "0"


def load_task_data(cfg: RunConfig, root=None) -> TaskData:
    """Arrays for training and evaluation, following the reference protocol.

    Clustering: train and score on the same split (``all`` = train+test). Classification: the
    official train split is split 80/20 train/val (generator seed 0), the official test split
    scores. ``max_train_samples`` takes a fixed subset (seed 0: the same for every run seed);
    ``label_fraction`` keeps a per-seed subset of the training labels."""
    t = cfg.train
    spec = vdata.get_spec(cfg.dataset)
    if spec.channels != cfg.model.in_chans or spec.image_size != cfg.model.img_size:
        raise ValueError(f"dataset {spec.name} has {spec.channels}×{spec.image_size}² images but the model "
                         f"expects {cfg.model.in_chans}×{cfg.model.img_size}²")
    if cfg.task == "clustering":
        arrays = vdata.load_arrays(cfg.dataset, cfg.split, root, download=_download())
        if t.max_train_samples and t.max_train_samples < len(arrays):
            arrays = arrays.subset(_fixed_subset(len(arrays), t.max_train_samples, 0))
        evals = {cfg.split: arrays}
        if cfg.split == "train":   # held-out protocol: units labelled on train, scored on test
            test = vdata.load_arrays(cfg.dataset, "test", root, download=_download())
            if t.max_train_samples and t.max_train_samples < len(test):
                test = test.subset(_fixed_subset(len(test), max(t.max_train_samples // 4, 1), 0))
            evals["test"] = test
        return TaskData(arrays, evals)
    if uses_loader(cfg):
        train, val, test = vdata.classification_splits(
            cfg.dataset, root, seed=0, train_transform=vdata.build_transforms(cfg.dataset, True),
            eval_transform=vdata.build_transforms(cfg.dataset, False), download=_download())
        if t.label_fraction < 1:
            train = Subset(train, _fixed_subset(len(train), max(1, round(len(train) * t.label_fraction)), cfg.seed).tolist())
        if t.max_train_samples and t.max_train_samples < len(train):
            train = Subset(train, _fixed_subset(len(train), t.max_train_samples, 0).tolist())
            test = Subset(test, _fixed_subset(len(test), max(t.max_train_samples // 2, 1), 0).tolist())
            val = Subset(val, _fixed_subset(len(val), max(t.max_train_samples // 4, 1), 0).tolist())
        return TaskData(train, {"val": val, "test": test})
    full = vdata.load_arrays(cfg.dataset, "train", root, download=_download())
    test = vdata.load_arrays(cfg.dataset, "test", root, download=_download())
    # the reference's random_split(train, [80 %, 20 %], generator seed 0)
    tr_idx, va_idx = vdata._seeded_split(len(full), [int((1 - spec.val_fraction) * len(full))], 0)
    train, val = full.subset(tr_idx.sort().values), full.subset(va_idx.sort().values)
    if t.label_fraction < 1:
        train = train.subset(_fixed_subset(len(train), max(1, round(len(train) * t.label_fraction)), cfg.seed))
    if t.max_train_samples:   # profiles cap the data: training set, and evaluation sets in proportion
        if t.max_train_samples < len(train):
            train = train.subset(_fixed_subset(len(train), t.max_train_samples, 0))
        if max(t.max_train_samples // 2, 1) < len(test):
            test = test.subset(_fixed_subset(len(test), max(t.max_train_samples // 2, 1), 0))
        if max(t.max_train_samples // 4, 1) < len(val):
            val = val.subset(_fixed_subset(len(val), max(t.max_train_samples // 4, 1), 0))
    return TaskData(train, {"val": val, "test": test})


class ArrayBatches:
    """Mini-batches from an in-memory dataset held on the training device as uint8.

    Epoch e's order is a permutation from a generator seeded by (seed, e), so any epoch can be
    replayed exactly after a resume; the last partial batch is dropped (the reference's drop_last)."""

    def __init__(self, arrays: vdata.ImageArrays, batch_size: int, device: torch.device, seed: int,
                 mean: float | None = None, std: float | None = None) -> None:
        self.images = arrays.images.to(device)
        self.labels = arrays.labels.to(device)
        self.n, self.batch_size, self.device, self.seed = len(arrays), batch_size, device, seed
        self.batch_size = min(batch_size, self.n)
        self.mean, self.std = mean, std

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=g).to(self.device)
        for i in range(start, self.steps_per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.to_float(self.images[idx]), self.labels[idx]


class LoaderBatches:
    """Mini-batches through a DataLoader with per-sample CPU augmentation (the big colour sets).

    Epoch e is shuffled by a generator seeded by (seed, e), so a resumed run replays the same
    order; augmentation randomness is seeded per epoch as well (workers get derived seeds)."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, seed: int,
                 num_workers: int | None = None) -> None:
        self.dataset, self.device, self.seed = dataset, device, seed
        self.batch_size = min(batch_size, len(dataset))
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        torch.manual_seed(self.seed * 1_000_003 + epoch)       # augmentation randomness of this epoch
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=g)[start * self.batch_size:].tolist()
        loader = DataLoader(Subset(self.dataset, order), batch_size=self.batch_size, drop_last=True,
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model: ViTSOM, arrays: vdata.ImageArrays, device: torch.device, batch_size: int = 512,
            keep_latent: bool = False, amp: torch.dtype | None = None,
            norm: tuple[float, float] | None = None) -> dict[str, torch.Tensor]:
    """Forward the whole set (no sample dropped): BMU, top-2 distances, recon L1, logits, latents."""
    model.eval()
    out: dict[str, list] = {"bmu": [], "dist": [], "l1": [], "pred": [], "z": []}
    if isinstance(arrays, vdata.ImageArrays):
        def batches():
            for s in range(0, len(arrays), batch_size):
                x = arrays.images[s:s + batch_size].to(device).float().div_(255.0)
                yield x, ((x - norm[0]) / norm[1] if norm else x)
    else:   # a Dataset whose transform already normalises
        def batches():
            for x, _ in DataLoader(arrays, batch_size=batch_size, num_workers=min(8, os.cpu_count() or 1)):
                x = x.to(device)
                yield x, x
    for x, xin in batches():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            o = model(xin, temperature=1.0)
        if o.som is not None:
            d = o.som.distances.float()
            out["bmu"].append(d.argmin(1).cpu())
            out["dist"].append(d.cpu() if d.shape[1] <= 4096 else d.topk(2, 1, largest=False).values.cpu())
        if o.recon is not None:
            out["l1"].append((o.recon.float() - x).abs().flatten(1).mean(1).cpu())
        if o.logits is not None:
            out["pred"].append(o.logits.argmax(1).cpu())
        if keep_latent:
            out["z"].append(o.z.float().cpu())
    model.train()
    return {k: torch.cat(v) for k, v in out.items() if v}


def kmeans_on_prototypes(model: nn.Module, bmu: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster the prototypes into k groups (k-means, n_init 10, weighted by how many samples hit
    each unit) and give each sample the group of its BMU. Returns the unit → group table."""
    from sklearn.cluster import KMeans
    w = model.som.prototypes.detach().float().cpu()
    if model.som.distance == "cosine":
        w = F.normalize(w, dim=1)
    hits = np.bincount(bmu, minlength=w.shape[0]).astype(np.float64)
    used = hits > 0
    km = KMeans(n_clusters=min(k, int(used.sum())), n_init=10, random_state=seed)
    km.fit(w[used].numpy(), sample_weight=hits[used])
    return km.predict(w.numpy())


def evaluate(model: nn.Module, arrays: vdata.ImageArrays, device: torch.device, task: str,
             amp: torch.dtype | None = None, norm=None, kmeans_k: int = 0,
             label_from: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """Scores of one split. Clustering: purity and NMI with every unit a cluster, QE, TE, recon
    L1; with ``kmeans_k``, ACC (Hungarian) and NMI after grouping the units into k clusters; with
    ``label_from=(bmu, labels)`` of another split, held-out purity (units labelled there)."""
    t0 = time.perf_counter()
    p = predict(model, arrays, device, amp=amp, norm=norm)
    res: dict[str, float] = {"n": len(arrays)}
    labels = _labels_of(arrays)
    if "bmu" in p:
        bmu = p["bmu"].numpy()
        res.update(purity=metrics.purity(bmu, labels), nmi=metrics.nmi(bmu, labels),
                   units_used=int(np.unique(bmu).size))
        res["_bmu"] = bmu
        if kmeans_k:
            group = kmeans_on_prototypes(model, bmu, kmeans_k)[bmu]
            res.update(kmeans_acc=metrics.clustering_accuracy(group, labels), kmeans_nmi=metrics.nmi(group, labels))
        if label_from is not None:
            res["heldout_purity"] = metrics.heldout_purity(label_from[0], label_from[1], bmu, labels)
        if p["dist"].shape[1] == model.som.num_units:
            res.update(quantization_error=float(quantization_error(p["dist"])),
                       topographic_error=float(topographic_error(p["dist"], model.som.coords.cpu(),
                                                                 model.som.topology)))
    if "l1" in p:
        res["recon_l1"] = float(p["l1"].mean())
    if "pred" in p:
        res["top1"] = metrics.top1_accuracy(p["pred"].numpy(), labels)
    res["eval_time_s"] = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- training

def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: ``/proc/self/clear_refs`` ← 5, which
    resets VmHWM). Returns False where that is not possible; the peak is then process-wide."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vm_hwm_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20          # kB → GiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_memory(device: torch.device, rss_window: bool) -> dict[str, float | str]:
    """Peak memory of this run: CUDA max allocated, and the peak resident set size — since the
    run started when ``rss_window`` (VmHWM was reset), else the process's lifetime maximum."""
    hwm = _vm_hwm_gb() if rss_window else None
    if hwm is not None:
        out: dict[str, float | str] = {"process_max_rss_gb": round(hwm, 3), "rss_scope": "run"}
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB on Linux
        out = {"process_max_rss_gb": round(rss, 3), "rss_scope": "process"}
    if device.type == "cuda":
        out["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 4)
    return out


def train(cfg: RunConfig, *, results=None, data_root=None, device=None, force: bool = False,
          progress: bool = True, snapshot_epochs: tuple[int, ...] = (),
          stop_after_steps: int | None = None, deadline: float | None = None,
          skip_unfinishable: bool = False, log: Callable[[str], None] = print,
          on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one configuration and return its run record (also written to ``results/``).

    An existing record for the same config key is returned as is unless ``force``. A checkpoint
    under ``runs/<key>/`` is resumed automatically. ``stop_after_steps`` stops (after saving a
    checkpoint) once that many global steps are done: used to test resume, and by time-budgeted
    GPU scripts; ``deadline`` (a ``time.time()`` value) does the same when the clock passes it.
    With ``skip_unfinishable`` as well, the run gives up early (checkpoint kept) once its
    measured epoch time says it cannot finish before ``deadline`` (see :func:`cannot_finish`); the
    record then says ``"unfinishable": True`` and the projected seconds. ``snapshot_epochs`` keeps
    the weights after those epochs (0 = before training), for the latent-progression figure.
    ``on_epoch`` is called after every epoch with ``{"epoch", "epochs", "step", "total_steps",
    "loss", "epoch_s"}`` (the pipeline turns it into progress lines on the terminal)."""
    cfg.validate()
    out_path = record_path(cfg, results)
    if out_path.exists() and not force:
        return load_record(out_path)
    dev = resolve_device(device)
    amp = autocast_dtype(cfg, dev)
    key = cfg.key()
    run_dir = runs_root() / key
    ckpt_path = run_dir / "checkpoint.pt"
    t_start = time.perf_counter()
    rss_window = reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data = load_task_data(cfg, data_root)
    norm = input_norm(cfg, dev)
    if isinstance(data.train, vdata.ImageArrays):
        batches = ArrayBatches(data.train, cfg.train.batch_size, dev, cfg.seed,
                               *(norm if norm is not None else (None, None)))
    else:
        batches = LoaderBatches(data.train, cfg.train.batch_size, dev, cfg.seed)
    steps_per_epoch = batches.steps_per_epoch
    total_steps = steps_per_epoch * cfg.train.epochs

    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev)
    opt = make_optimizer(cfg, model, dev)
    base_lr = opt.param_groups[0]["lr"]
    train_step = make_train_step(model, opt, cfg, total_steps, amp,
                                 compile=cfg.train.compile and dev.type == "cuda", log=log)
    step_t = torch.zeros((), device=dev)          # the step counter lives on the device: no sync

    step, history, train_time = 0, [], 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck.get("key") != key:
            raise RuntimeError(f"checkpoint {ckpt_path} belongs to another config; delete it to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, train_time = ck["step"], ck["history"], ck["train_time_s"]
        log(f"[vitsom] resuming {cfg.preset} ({key}) at step {step}/{total_steps}")
    if 0 in snapshot_epochs and step == 0:
        atomic_torch_save(model.state_dict(), run_dir / "epoch_0.pt")

    def save_checkpoint() -> None:
        atomic_torch_save({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                           "step": step, "history": history, "train_time_s": train_time}, ckpt_path)

    check_every = 1 if dev.type == "cpu" else 50
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=step, desc=f"{cfg.preset} s{cfg.seed}", unit="step",
                   dynamic_ncols=True, leave=False)
    model.train()
    s = cfg.som
    epochs_here = 0
    while step < total_steps:
        epoch, start = divmod(step, steps_per_epoch)
        t_whole_epoch = time.perf_counter()
        factor = lr_factor(epoch, cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.min_lr) \
            if cfg.train.schedule == "cosine" else 1.0
        for g in opt.param_groups:
            g["lr"] = base_lr * factor
        sums = torch.zeros(3, device=dev)   # loss, task loss, som loss (summed on device: no sync)
        n_in_epoch, t_epoch = 0, time.perf_counter()
        for x, y in batches.epoch(epoch, start):
            step_t.fill_(step)
            sums += train_step(x, y, step_t)
            step += 1
            n_in_epoch += 1
            if step % check_every == 0 and not torch.isfinite(sums).all():
                raise NonFiniteLossError(
                    f"{cfg.preset} (seed {cfg.seed}): the loss became non-finite at or before step {step} "
                    f"(epoch {epoch}); lower train.lr or som.gamma"
                    + (f" (the last good checkpoint is {ckpt_path})" if ckpt_path.exists() else ""))
            if bar is not None:
                bar.update(1)
            every = cfg.train.checkpoint_every
            stop = (stop_after_steps is not None and step >= stop_after_steps) or \
                (deadline is not None and time.time() > deadline)
            if (every and step % every == 0) or stop:
                train_time += time.perf_counter() - t_epoch
                t_epoch = time.perf_counter()
                save_checkpoint()
                if stop:
                    if bar is not None:
                        bar.close()
                    return {"interrupted": True, "step": step, "checkpoint": str(ckpt_path)}
        train_time += time.perf_counter() - t_epoch
        v = (sums / max(n_in_epoch, 1)).tolist()
        if not all(math.isfinite(a) for a in v):
            raise NonFiniteLossError(f"{cfg.preset} (seed {cfg.seed}): non-finite loss in epoch {epoch}; "
                                     "lower train.lr or som.gamma")
        if start == 0:  # a resumed partial epoch only logs its tail; keep history per full epoch
            history.append({"epoch": epoch, "loss": v[0], "task_loss": v[1], "som_loss": v[2],
                            "temperature": float(temperature_at(step - 1, total_steps, s.t_max, s.t_min)),
                            "gamma": float(gamma_at(step - 1, total_steps, s.gamma, s.gamma_warmup)),
                            "lr": opt.param_groups[0]["lr"]})
        else:
            history.append({"epoch": epoch, "loss": v[0], "task_loss": v[1], "som_loss": v[2],
                            "partial_from_step": start})
        if bar is not None:
            bar.set_postfix(loss=f"{v[0]:.4f}")
        if epoch + 1 in snapshot_epochs:
            atomic_torch_save(model.state_dict(), run_dir / f"epoch_{epoch + 1}.pt")
        save_checkpoint()
        epochs_here += 1
        if on_epoch is not None:
            on_epoch({"epoch": epoch + 1, "epochs": cfg.train.epochs, "step": step, "total_steps": total_steps,
                      "loss": v[0], "epoch_s": time.perf_counter() - t_whole_epoch})
        late = cannot_finish(time.perf_counter() - t_whole_epoch, cfg.train.epochs - epoch - 1, epochs_here,
                             deadline) if skip_unfinishable else None
        if late is not None:
            if bar is not None:
                bar.close()
            log(f"[vitsom] {cfg.preset} seed {cfg.seed}: {late:.0f}s more needed, more than the time left; "
                f"given up at step {step} (checkpoint {ckpt_path})")
            return {"interrupted": True, "unfinishable": True, "projected_s": late, "step": step,
                    "checkpoint": str(ckpt_path)}
    if bar is not None:
        bar.close()

    return finish_run(cfg, model, data, dev, amp, norm, history=history, total_steps=total_steps,
                      batch_size=batches.batch_size, train_time=train_time, t_start=t_start,
                      results=results, log=log, rss_window=rss_window)


def cannot_finish(epoch_s: float, epochs_left: int, epochs_timed: int, deadline: float | None,
                  now: float | None = None) -> float | None:
    """The seconds a run still needs, if that is more than is left before ``deadline``; else None.

    The projection is the last epoch's wall time × (epochs left + 1 for the final evaluation) ×
    1.05. It is made only from the second epoch timed in this process on, because the first one
    carries start-up costs (data transfer, ``torch.compile``) that do not recur."""
    if deadline is None or epochs_timed < 2 or epochs_left <= 0:
        return None
    need = epoch_s * (epochs_left + 1) * 1.05
    left = deadline - (time.time() if now is None else now)
    return need if need > left else None


def input_norm(cfg: RunConfig, device: torch.device):
    """Input normalisation: none for clustering (pixels in [0,1]); the dataset's mean/std for
    classification (0.5/0.5 for one channel)."""
    spec = vdata.get_spec(cfg.dataset)
    if cfg.task == "clustering":
        return None
    if spec.channels == 1:
        return (0.5, 0.5)
    return (torch.tensor(spec.mean, device=device).view(1, 3, 1, 1),
            torch.tensor(spec.std, device=device).view(1, 3, 1, 1))


def finish_run(cfg: RunConfig, model: nn.Module, data: TaskData, dev: torch.device, amp, norm, *,
               history: list, total_steps: int, batch_size: int, train_time: float, t_start: float,
               results=None, log: Callable[[str], None] = print, extra: dict | None = None,
               rss_window: bool = False) -> dict:
    """Evaluate a trained model, save its weights, write its run record atomically, drop the
    checkpoint, and return the record."""
    key = cfg.key()
    run_dir = runs_root() / key
    k = vdata.get_spec(cfg.dataset).num_classes if cfg.task == "clustering" and model.som is not None else 0
    eval_res = {}
    for name, arr in data.eval_sets.items():
        label_from = None
        if name == "test" and cfg.task == "clustering":
            label_from = (eval_res[cfg.split]["_bmu"], _labels_of(data.eval_sets[cfg.split]))
        eval_res[name] = evaluate(model, arr, dev, cfg.task, amp, norm, kmeans_k=k, label_from=label_from)
    for r in eval_res.values():
        r.pop("_bmu", None)
    main = eval_res[cfg.split] if cfg.task == "clustering" else eval_res["test"]
    from .diagnostics import run_diagnostics
    diagnostics = run_diagnostics(model, cfg, data.train, dev, norm, total_steps)
    rec = {
        "schema": SCHEMA, "key": key, "preset": cfg.preset, "profile": cfg.profile, "seed": cfg.seed,
        "task": cfg.task, "dataset": cfg.dataset, "config": cfg.to_dict(),
        "metrics": {k: v for k, v in main.items() if k != "eval_time_s"},
        "eval": eval_res, "history": history,
        "params": count_parameters(model), "steps": total_steps, "train_samples": len(data.train),
        "git": git_commit(), "device": device_info(dev), "precision": str(amp or "fp32"),
        "wall_time_s": round(time.perf_counter() - t_start, 3), "train_time_s": round(train_time, 3),
        "train_samples_per_s": round(total_steps * batch_size / max(train_time, 1e-9), 1),
        "inference_time_s": round(main["eval_time_s"], 3), "peak_memory": _peak_memory(dev, rss_window),
        "diagnostics": diagnostics, "created": now_iso(), **(extra or {}),
    }
    out_path = record_path(cfg, results)
    atomic_torch_save({"config": cfg.to_dict(), "model": model.state_dict()}, run_dir / "model.pt")
    atomic_write_json(out_path, rec)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        os.unlink(ckpt_path)
    log(f"[vitsom] {cfg.preset} seed {cfg.seed} ({cfg.profile}): "
        + ", ".join(f"{k}={v:.4f}" for k, v in rec["metrics"].items() if isinstance(v, float))
        + f"  [{rec['wall_time_s']:.0f}s] → {out_path}")
    return rec


def load_trained(key_or_record, device: str | None = "cpu", snapshot: str = "model") -> tuple[ViTSOM, RunConfig]:
    """The trained model of a record (from ``runs/<key>/model.pt``, or ``epoch_N.pt`` snapshots)."""
    from .config import config_from_dict
    key = key_or_record["key"] if isinstance(key_or_record, dict) else key_or_record
    path = runs_root() / key / f"{snapshot}.pt"
    if not path.exists():
        raise FileNotFoundError(f"no trained weights at {path}; rerun the config to recreate them")
    blob = torch.load(path, map_location=device, weights_only=False)
    if "config" in blob:
        cfg, state = config_from_dict(blob["config"]), blob["model"]
    else:
        cfg, state = config_from_dict(key_or_record["config"]), blob
    model = build_model(cfg)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg
