"""Scoring a trained model on one split: BMUs, purity/NMI, QE/TE, k-means on the prototypes,
reconstruction L1, top-1 accuracy.

The metrics themselves are pure functions in :mod:`vitsom.metrics` and :mod:`vitsom.som`; this
module forwards a whole split through the model (no sample dropped) and feeds them.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import data as vdata
from . import metrics
from .som import quantization_error, topographic_error
from .taskdata import labels_of
from .vit import ViTSOM


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
    labels = labels_of(arrays)
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
