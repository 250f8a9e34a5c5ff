"""The classical SOM baseline: Kohonen's batch-map algorithm on the pixels (no gradient, no optimiser).

The paper's "SOM (24×24)" row has no code in the authors' repository, and our gradient-trained
pixel SOM (:class:`vitsom.baselines.PixelSOM`, the ViT-SOM recipe without the ViT) scores far above
the paper's numbers. This module trains the same 24×24 map on the same pixels the textbook way, so
that the table can say what a classical SOM reaches. One epoch, at neighbourhood width σ_e:

* BMU        bmu_i = argmin_k ‖x_i − w_k‖²                   (with the prototypes of the last epoch)
* per unit   S_j = Σ_{i: bmu_i = j} x_i,   n_j = #{i: bmu_i = j}
* update     w_k ← Σ_j h_e(k, j) S_j / Σ_j h_e(k, j) n_j,   h_e(k, j) = exp(−‖r_k − r_j‖² / 2σ_e²)

that is, each prototype becomes the neighbourhood-weighted mean of the images (Kohonen, *Essentials
of the self-organizing map*, 2013, §4; the SOM Toolbox's ``som_batchtrain``). σ decays exponentially
per epoch from ``som.t_max`` to ``som.t_min`` (:func:`vitsom.som.temperature_at` over epochs, so the
first epoch uses t_max and the last t_min). The result does not depend on the order of the images:
an epoch is an exact sum over the whole training set. The map is the :class:`PixelSOM` module
(Euclidean distance), so evaluation, records and the book treat it like every other model.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from .config import RunConfig
from .records import atomic_torch_save
from .som import temperature_at


def unit_sums(x: torch.Tensor, w: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-unit sums of the images whose BMU the unit is, their counts, and the summed squared
    distance of every image to its BMU. x: (N, D), w: (K, D) → S (K, D) float64, n (K,) float64, sse.

    BMUs use ``‖w‖² − 2 x·w`` (the ``‖x‖²`` term does not change the argmin), chunk by chunk over x."""
    K, D = w.shape
    S = torch.zeros(K, D, dtype=torch.float64, device=x.device)
    n = torch.zeros(K, dtype=torch.float64, device=x.device)
    w_sq = (w * w).sum(1)
    sse = 0.0
    for s in range(0, x.shape[0], chunk):
        xc = x[s:s + chunk]
        part = w_sq - 2.0 * (xc @ w.T)                            # (c, K): ‖x − w‖² − ‖x‖²
        best, bmu = part.min(dim=1)
        sse += float((best + (xc * xc).sum(1)).clamp_min(0).sum())
        S.index_add_(0, bmu, xc.double())
        n.index_add_(0, bmu, torch.ones_like(bmu, dtype=torch.float64))
    return S, n, sse


def batch_map_update(S: torch.Tensor, n: torch.Tensor, grid_sq: torch.Tensor, sigma: float,
                     w_old: torch.Tensor) -> torch.Tensor:
    """One batch-map step: ``w_k = Σ_j h(k, j) S_j / Σ_j h(k, j) n_j`` with a Gaussian ``h`` of width
    ``sigma`` on the grid (``grid_sq``: (K, K) squared grid distances). A unit whose whole
    neighbourhood is empty (possible once σ is small) keeps its prototype ``w_old``."""
    if not sigma > 0:
        raise ValueError(f"the neighbourhood width must be positive, got {sigma}")
    h = torch.exp(-grid_sq.double() / (2.0 * sigma * sigma))       # (K, K), symmetric
    num = h @ S                                                   # (K, D)
    den = h @ n                                                   # (K,)
    ok = den > 1e-12
    w = w_old.double().clone()
    w[ok] = num[ok] / den[ok, None]
    return w.to(w_old.dtype)


def sigma_at(epoch: int, epochs: int, t_max: float, t_min: float) -> float:
    """Neighbourhood width of ``epoch`` (0-based): t_max at the first epoch, t_min at the last."""
    return float(temperature_at(epoch, epochs, t_max, t_min))


def train_batch_map(cfg: RunConfig, data, dev: torch.device, *, t_start: float, rss_window: bool, out_path: Path,
                    run_dir: Path, extra: dict | None = None, progress: bool = True,
                    stop_after_steps: int | None = None, deadline: float | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Train ``cfg`` (``model.arch = "som"``, ``train.optimizer = "batch-map"``) and return its record.

    One "step" is one epoch (one batch-map update over the whole training set). A checkpoint after
    every epoch makes an interrupted run resume where it stopped, with the same result. The record
    goes to ``out_path`` (with ``extra``'s fields), the weights and checkpoint to ``run_dir``."""
    from . import data as vdata
    from .train import build_model, finish_run

    key = cfg.key()
    ckpt_path = run_dir / "checkpoint.pt"
    arrays = data.train
    if not isinstance(arrays, vdata.ImageArrays):
        raise ValueError(f"{cfg.preset}: the batch-map SOM needs an in-memory image dataset "
                         f"(MNIST, Fashion-MNIST, USPS), not {cfg.dataset}")
    x = arrays.images.to(dev).flatten(1).float().div_(255.0)       # (N, C·H·W) pixels in [0, 1]
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev)
    som = model.som
    epochs = cfg.train.epochs
    epoch, history, train_time, train_cpu = 0, [], 0.0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck.get("key") != key:
            raise RuntimeError(f"checkpoint {ckpt_path} belongs to another config; delete it to start over")
        model.load_state_dict(ck["model"])
        epoch, history, train_time, train_cpu = ck["epoch"], ck["history"], ck["train_time_s"], ck["train_cpu_s"]
        log(f"[vitsom] resuming {cfg.preset} ({key}) at epoch {epoch}/{epochs}")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=epoch, desc=f"{cfg.preset} s{cfg.seed}", unit="epoch",
                   dynamic_ncols=True, leave=False)
    with torch.no_grad():
        while epoch < epochs:
            t0, c0 = time.perf_counter(), time.process_time()
            sigma = sigma_at(epoch, epochs, cfg.som.t_max, cfg.som.t_min)
            w = som.prototypes.data
            S, n, sse = unit_sums(x, w)
            new = batch_map_update(S, n, som.grid_sq, sigma, w)
            moved = float((new - w).norm(dim=1).mean())
            som.prototypes.data.copy_(new)
            train_time += time.perf_counter() - t0
            train_cpu += time.process_time() - c0
            # mean_sq_error: mean squared distance to the BMU, for the prototypes the epoch started from
            history.append({"epoch": epoch, "sigma": sigma, "mean_sq_error": sse / len(x),
                            "units_hit": int((n > 0).sum()), "mean_prototype_shift": moved})
            epoch += 1
            atomic_torch_save({"key": key, "model": model.state_dict(), "epoch": epoch, "history": history,
                               "train_time_s": train_time, "train_cpu_s": train_cpu}, ckpt_path)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(sigma=f"{sigma:.2f}", sq_err=f"{sse / len(x):.2f}")
            if (stop_after_steps is not None and epoch >= stop_after_steps) or \
                    (deadline is not None and time.time() > deadline and epoch < epochs):
                if bar is not None:
                    bar.close()
                return {"interrupted": True, "step": epoch, "checkpoint": str(ckpt_path)}
    if bar is not None:
        bar.close()
    return finish_run(cfg, model, data, dev, None, None, history=history, total_steps=epochs,
                      batch_size=len(x), train_time=train_time, t_start=t_start, train_cpu=train_cpu,
                      out_path=out_path, run_dir=run_dir, log=log,
                      rss_window=rss_window, extra={"algorithm": "Kohonen batch map (no gradient)", **(extra or {})})
