"""The paper's reported numbers as data, and the reproduction-status table that puts ours beside them.

* :data:`REPORTED`: every number of the paper's tables, each tagged with its source in
  ``shared/reference/paper-digest.md`` and with the preset and record column of our counterpart.
  They are always shown marked "reported".
* :func:`status_table`: every reported number with ours beside it, read from run records.
* :data:`DEVIATIONS`: every known difference between our protocol and the authors', listed on the
  book's reproduction-status page.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .experiments import (CLUSTERING_DATASETS, DATASET_NAMES, DESOM, RAW_SOM, RESNET, VIT_CLS, VIT_SOM_24,
                          VIT_SOM_40, VIT_SOM_CLS, Plan, Run, preset_known)
from .book import device_label, fmt, fmt_reported, md_table, mean_std, record_row

# ----------------------------------------------------------------------------- the paper's numbers

DIGEST = "shared/reference/paper-digest.md"


@dataclass(frozen=True)
class Ours:
    """Where our counterpart of a reported number comes from: a preset template ({ds} filled in),
    overrides and a column of :func:`record_row`."""

    preset: str
    metric: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reported:
    section: str          # clustering | classification | train_time | inference_time | memory | figure_v1
    model: str
    column: str           # dataset key or quantity
    value: float
    std: float | None
    unit: str             # fraction | M | s | GB
    source: str
    ours: Ours | None = None
    dataset: str = ""     # dataset our counterpart runs on
    note: str = ""


def _clustering_reported() -> list[Reported]:
    src = "official README, final version (digest §5.2)"
    table = {  # model: (MNIST, F-MNIST, USPS, params M)
        RAW_SOM: ((0.711, 0.005), (0.668, 0.002), (0.732, 0.009), 0.451),
        "SOM-VAE": ((0.868, 0.03), (0.739, 0.002), (0.854, 0.010), 3.7),
        DESOM: ((0.934, 0.004), (0.751, 0.009), (0.857, 0.011), 3.3),
        VIT_SOM_24: ((0.936, 0.003), (0.817, 0.002), (0.935, 0.006), 2.5),
        VIT_SOM_40: ((0.955, 0.001), (0.841, 0.006), (0.948, 0.025), 5.0),
    }
    ours = {RAW_SOM: "som-{ds}", "SOM-VAE": None, DESOM: "desom-{ds}", VIT_SOM_24: "{ds}-clustering-24x24",
            VIT_SOM_40: "{ds}-clustering"}
    notes = {"SOM-VAE": "not implemented here",
             RAW_SOM: "ours is trained by gradient; a classical batch-map SOM is the clustering page's row "
                      "\"SOM (24×24), classical batch map\"",
             VIT_SOM_40: "how purity grows with training length: the clustering page's training-length study"}
    out = []
    for model, (a, b, c, params) in table.items():
        for ds, (v, s) in zip(CLUSTERING_DATASETS, (a, b, c)):
            o = Ours(ours[model].format(ds=ds), "purity") if ours[model] else None
            note = notes.get(model, "")
            if model == "SOM-VAE" and ds == "mnist":
                note += " (the README's ±0.03 is probably ±0.003)"
            out.append(Reported("clustering", model, ds, v, s, "fraction", src, o, ds, note))
        o = Ours(ours[model].format(ds="mnist"), "params_total_M") if ours[model] else None
        pnote = {VIT_SOM_24: "576 × 3,136 prototypes + ViT ≈ 1.83M, not 2.5M (unexplained)",
                 RAW_SOM: "576 units × 784 pixels", VIT_SOM_40: ""}.get(model, notes.get(model, ""))
        out.append(Reported("clustering", model, "params", params, None, "M", src, o, "mnist", pnote))
    return out


def _classification_reported() -> list[Reported]:
    src = "official README, final version (digest §5.1)"
    cols = ("cifar10", "cifar100", "flowers17", "svhn", "tinyimagenet", "pathmnist")
    table = {
        RESNET: ((0.857, .005), (0.638, .004), (0.783, .011), (0.894, .004), (0.468, .011), (0.826, .008), 21.8),
        "Swin-T": ((0.863, .003), (0.597, .003), (0.886, .010), (0.952, .001), (0.501, .014), (0.842, .005), 27.5),
        "DeiT-T": ((0.857, .009), (0.608, .003), (0.882, .013), (0.958, .007), (0.499, .009), (0.838, .007), 28.9),
        "MobileViT-T": ((0.863, .010), (0.681, .007), (0.739, .071), (0.946, .003), (0.452, .018), (0.840, .006), 4.9),
        VIT_CLS: ((0.901, .001), (0.604, .009), (0.884, .006), (0.957, .006), (0.496, .005), (0.835, .006), 5.4),
        VIT_SOM_CLS: ((0.920, .003), (0.683, .006), (0.917, .002), (0.966, .001), (0.502, .008), (0.844, .004), 5.4),
    }
    ours = {RESNET: ("resnet34-{ds}", ()), VIT_CLS: ("{ds}-classification", ("som.gamma=0",)),
            VIT_SOM_CLS: ("{ds}-classification", ())}
    out = []
    for model, vals in table.items():
        for ds, (v, s) in zip(cols, vals[:-1]):
            o = Ours(ours[model][0].format(ds=ds), "top1", ours[model][1]) if model in ours else None
            note = "" if model in ours else "not implemented here"
            out.append(Reported("classification", model, ds, v, s, "fraction", src, o, ds, note))
        o = None
        if model in ours:
            o = Ours(ours[model][0].format(ds="cifar10"), "params_total_M" if model == RESNET else "params_enc_head_M",
                     ours[model][1])
        note = {VIT_SOM_CLS: "encoder + head (the paper excludes prototypes and decoder)",
                VIT_CLS: "encoder + head", "DeiT-T": "includes the 23.5M ResNet-50 teacher"}.get(model, "")
        out.append(Reported("classification", model, "params", vals[-1], None, "M", src, o, "cifar10", note))
    return out


def _efficiency_reported() -> list[Reported]:
    src = "official README, final version (digest §5.3-5.4)"
    rows = [  # task, model, train (mean, std), inference (mean, std), memory GB, our preset, dataset
        ("clustering", VIT_SOM_24, (2432.052, 10.940), (1.60, 0.003), 0.394, ("{ds}-clustering-24x24", ()), "mnist"),
        ("clustering", VIT_SOM_40, (2432.05, 10.94), (1.61, 0.003), 0.664, ("{ds}-clustering", ()), "mnist"),
        ("clustering", DESOM, (188.590, 12.728), (0.697, 0.081), 0.084, ("desom-{ds}", ()), "mnist"),
        ("clustering", "SOM-VAE", (463.213, 26.911), (1.094, 0.005), 0.214, None, "mnist"),
        ("classification", "ViT-SOM (4×4)", (2923.095, 26.832), (8.471, 1.120), 1.559, ("{ds}-classification", ()), "cifar10"),
        ("classification", "ViT (baseline)", (2816.594, 21.663), (0.620, 0.014), 1.435, ("{ds}-classification", ("som.gamma=0",)), "cifar10"),
        ("classification", "Swin", (2935.202, 87.603), (0.891, 0.005), 1.563, None, "cifar10"),
        ("classification", "DeiT", (4135.050, 51.043), (0.912, 0.039), 1.793, None, "cifar10"),
        ("classification", "MobileViT", (3162.329, 68.293), (0.791, 0.063), 1.449, None, "cifar10"),
    ]
    out = []
    for task, model, (tm, ts), (im, is_), mem, ours, ds in rows:
        mk = (lambda metric: Ours(ours[0].format(ds=ds), metric, ours[1])) if ours else (lambda metric: None)
        label = f"{model} [{task}]"
        note = "" if ours else "not implemented here"
        if model == VIT_SOM_40:
            note = "same as 24×24 in the source (copy error?)"
        out.append(Reported("train_time", label, "training time (s)", tm, ts, "s", src, mk("train_time_s"), ds, note))
        out.append(Reported("inference_time", label, "inference time (s)", im, is_, "s", src, mk("inference_time_s"), ds,
                            "" if ours else "not implemented here"))
        mnote = "" if ours else "not implemented here"
        if task == "classification" and model.startswith("ViT-SOM"):
            mnote = "labelled 'ViT-SOM (40×40)' in the source"
        out.append(Reported("memory", label, "peak GPU memory (GB)", mem, None, "GB", src, mk("peak_cuda_gb"), ds, mnote))
    return out


def _figure_v1_reported() -> list[Reported]:
    src = "v1-era dual-axis figure, old plotting script (digest §5.5)"
    rows = [("SOM (8×8)", 1.8, "fmnist", 0.712, ("ksom-fmnist-8x8", "purity", ())), ("SOM-VAE", 3.7, "fmnist", 0.739, None),
            (DESOM, 3.3, "fmnist", 0.751, ("desom-fmnist", "purity", ())),
            ("DESOM-cls", 7.2, "cifar10", 0.498, None),
            (VIT_CLS, 5.4, "cifar10", 0.909, ("cifar10-classification", "top1", ("som.gamma=0",))),
            ("ViT-SOM (ours in the paper)", 2.5, "fmnist", 0.817, ("fmnist-clustering-24x24", "purity", ())),
            ("ViT-SOM-cls (ours in the paper)", 6.8, "cifar10", 0.921, ("cifar10-classification", "top1", ()))]
    out = []
    for model, params, ds, v, ours in rows:
        o = Ours(ours[0], ours[1], ours[2]) if ours else None
        col = "F-MNIST purity" if ds == "fmnist" else "CIFAR-10 top-1"
        note = f"at {params}M parameters" + ("" if ours else "; not implemented here")
        if model == "SOM (8×8)":
            note += "; ours: the classical batch-map SOM at 8×8 (our gradient-trained pixel SOM is 24×24)"
        out.append(Reported("figure_v1", model, col, v, None, "fraction", src, o, ds, note))
    return out


REPORTED: list[Reported] = (_clustering_reported() + _classification_reported() + _efficiency_reported()
                            + _figure_v1_reported())

# The paper's Figure 2 (final version): points of the dual-axis size-vs-score plot (digest §7.2).
FIGURE2_LEFT = [  # MNIST purity vs model size (M)
    (VIT_SOM_24, 2.5, 0.936, True), (DESOM, 3.3, 0.934, False), ("SOM-VAE", 3.7, 0.868, False),
    (VIT_SOM_40, 5.0, 0.955, True)]
FIGURE2_RIGHT = [  # CIFAR-10 top-1 vs model size (M)
    (VIT_SOM_CLS, 5.4, 0.920, True), (VIT_CLS, 5.4, 0.901, False), ("MobileViT", 4.9, 0.863, False),
    (RESNET, 21.8, 0.857, False), ("Swin", 27.5, 0.863, False), ("DeiT", 28.9, 0.857, False)]

SECTION_TITLES = {"clustering": "Clustering purity (paper Table II)",
                  "classification": "Classification top-1 accuracy (paper Table I)",
                  "train_time": "Training time (paper Table III)",
                  "inference_time": "Inference time (paper Table III)",
                  "memory": "Peak GPU memory (paper Table IV)",
                  "figure_v1": "Numbers of the v1-era size-vs-score figure"}

SECTION_NOTES = {
    "clustering": "Purity with every SOM unit a cluster, on train + test together. The paper's parameter counts are "
                  "for MNIST-size input; ours are for MNIST too.",
    "classification": "Top-1 on the test split. ViT-cls is our ViT-SOM-cls preset with γ = 0. Our parameter counts "
                      "follow the paper's convention (encoder + head) for the ViTs.",
    "train_time": "The paper's GPU, dataset and epoch count for these timings are not stated. Ours: the training "
                  "loop's time from the records (train_time_s; clustering on MNIST, classification on CIFAR-10; the "
                  "efficiency page adds the whole run's wall time); compared numerically only for paper-profile runs "
                  "on a GPU.",
    "inference_time": "One pass over the evaluation set (clustering: all images; classification: the test split).",
    "memory": "Peak CUDA memory (torch.cuda.max_memory_allocated / 1e9); CPU runs have no counterpart.",
    "figure_v1": "An earlier (v1-era) version of the size-vs-score figure plotted Fashion-MNIST purity and CIFAR-10 "
                 "top-1; these are its numbers.",
}

FIGURES = [  # paper figure → where ours is (page, marker)
    ("Fig. 1 architecture", "executed/07_figures", "fig-architecture", "redrawn from the description (schematic)"),
    ("Fig. 2 size vs score (MNIST purity, CIFAR-10 top-1)", "executed/07_figures", "fig-size-vs-score",
     "paper points as reported; ours where runs exist"),
    ("Fig. 3 UMAP latent progression I→IV (MNIST)", "executed/07_figures", "fig-umap-progression",
     "from weight snapshots of the 24×24 run"),
    ("Fig. 4 decoded prototypes (24×24, MNIST)", "executed/07_figures", "fig-prototypes", "decoder applied to the prototypes"),
]


# ----------------------------------------------------------------------------- ours beside the paper's

def _digits(rp: Reported) -> int:
    return 1 if rp.unit == "s" and rp.value >= 100 else 3


def fmt_paper(rp: Reported) -> str:
    """The paper's number as printed (without the 'reported' mark: the status table's header carries it)."""
    if rp.unit == "M":
        return (f"{rp.value:.1f}" if rp.value >= 1 else f"{rp.value:.3f}") + "M"
    d = _digits(rp)
    return f"{rp.value:.{d}f}" + (f" ± {rp.std:.{d}f}" if rp.std is not None else "")


def status_table(plan: Plan):
    """Every reported number with ours beside it (mean ± std over the plan's seeds, from records).

    Columns: section, model, column, paper, ours, difference, seeds, profile, device, note, source.
    In a build of another profile, the paper profile's records (the full recipe, usually from a GPU)
    that exist are shown too: columns paper_profile_ours, paper_profile_difference,
    paper_profile_seeds and paper_profile_device ("—" where there are none)."""
    import pandas as pd
    rows = []
    cache: dict[tuple, list[dict]] = {}
    full = Plan.make("paper", results=plan.results, datasets=plan.datasets, extra=plan.extra,
                     data_root=plan.data_root) if plan.profile != "paper" else None
    for rp in REPORTED:
        recs: list[dict] = []
        why = ""
        if rp.ours is None:
            why = rp.note or "not implemented here"
        elif not preset_known(rp.ours.preset):
            why = f"preset {rp.ours.preset} not available"
        else:
            recs = one_device(rp, _records(rp, plan, cache))
            if not recs:
                if plan.datasets is not None and rp.dataset not in plan.datasets:
                    why = "dataset not selected"
                else:
                    why = missing_reason(rp.dataset, plan)
        ours, diff, n = _summary(rp, recs, plan.profile)
        if recs and not n and rp.ours and rp.ours.metric == "peak_cuda_gb":
            why = "our runs were on CPU"
        row = {
            "section": rp.section, "model": rp.model, "column": DATASET_NAMES.get(rp.column, rp.column),
            "paper": fmt_paper(rp), "ours": ours, "difference": diff,
            "seeds": ", ".join(str(r["seed"]) for r in recs) if n else "—",
            "profile": plan.profile if n else "—",
            "device": "; ".join(sorted({device_label(r) for r in recs})) if n else "—",
            "note": rp.note if n else why,
            "source": rp.source,
        }
        if full is not None:
            precs = one_device(rp, _records(rp, full, cache)) \
                if rp.ours is not None and preset_known(rp.ours.preset) else []
            p_ours, p_diff, pn = _summary(rp, precs, "paper")
            row.update({"paper_profile_ours": p_ours, "paper_profile_difference": p_diff,
                        "paper_profile_seeds": ", ".join(str(r["seed"]) for r in precs) if pn else "—",
                        "paper_profile_device": "; ".join(sorted({device_label(r) for r in precs})) if pn else "—"})
        rows.append(row)
    return pd.DataFrame(rows)


def _records(rp: Reported, plan: Plan, cache: dict) -> list[dict]:
    """The records of ``rp``'s counterpart for the plan's profile and seeds (those that exist)."""
    from .records import existing_record_path, load_record
    key = (plan.profile, rp.ours.preset, rp.ours.overrides, rp.dataset)
    if key not in cache:
        got = []
        for s in plan.seeds:
            p = existing_record_path(Run(rp.ours.preset, rp.ours.overrides, s).config(plan.profile, plan.extra),
                                     plan.results)
            if p is not None:
                got.append(load_record(p))
        cache[key] = got
    return cache[key]


def one_device(rp: Reported, recs: list[dict]) -> list[dict]:
    """Times and memory depend on the machine: of records made on several devices, keep one device's
    (a GPU's, as the paper measured on one; else the device with the most records), so that a cell
    never averages a CPU run with a GPU run. Scores and parameter counts keep every record."""
    if rp.unit in ("fraction", "M"):
        return recs
    labels = [device_label(r) for r in recs]
    if len(set(labels)) <= 1:
        return recs
    gpu = [lab for r, lab in zip(recs, labels) if r.get("device", {}).get("type") == "cuda"]
    pool = gpu or labels
    pick = max(sorted(set(pool)), key=pool.count)
    return [r for r, lab in zip(recs, labels) if lab == pick]


def _summary(rp: Reported, recs: list[dict], profile: str) -> tuple[str, str, int]:
    """(ours as "mean ± std", difference to the paper or "not comparable", number of values)."""
    vals = [record_row(r).get(rp.ours.metric) for r in recs] if rp.ours else []
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    m, sd, n = mean_std(vals)
    if not n:
        return "—", "—", 0
    d = (2 if rp.value >= 1 else 3) if rp.unit == "M" else _digits(rp)
    comparable = rp.unit in ("fraction", "M") or (
        profile == "paper" and all(r.get("device", {}).get("type") == "cuda" for r in recs))
    if rp.unit == "s" and any(r.get("device", {}).get("shared") for r in recs):
        comparable = False                      # timed while other runs shared the device
    diff = f"{m - rp.value:+.{d}f}" if comparable else "not comparable"
    ours = (f"{m:.2f}M" if m >= 1 else f"{m:.3f}M") if rp.unit == "M" else fmt(m, sd, n, d)
    return ours, diff, n


def missing_reason(dataset: str, plan: Plan) -> str:
    from . import data as vdata
    try:
        root = vdata.data_root(plan.data_root)
        spec = vdata.get_spec(dataset)
        vdata.load_arrays(spec.name, "test", root)
    except (vdata.DataNotFoundError, ValueError, OSError):
        return f"no {DATASET_NAMES.get(dataset, dataset)} data here"
    except Exception as e:  # noqa: BLE001 - any other reason is reported as is
        return f"not run ({type(e).__name__})"
    return "not run yet for this profile/seeds"


def reported(section: str, model: str, column: str) -> Reported | None:
    """The paper's number for (section, model, column), or None."""
    return next((r for r in REPORTED if r.section == section and r.model == model and r.column == column), None)


def reported_cell(section: str, model: str, column: str, digits: int = 3) -> str:
    r = reported(section, model, column)
    if r is None:
        return "not in the paper"
    if r.unit == "M":
        return fmt_paper(r) + " (reported)"
    return fmt_reported(r.value, r.std, digits)



# ----------------------------------------------------------------------------- deviations

DEVIATIONS: list[tuple[str, str]] = [
    ("Purity on every image",
     "Purity and NMI are computed on all 70,000 MNIST / Fashion-MNIST images (9,298 for USPS); the authors' "
     "evaluation loader drops the last partial batch (69,888 images at batch 128)."),
    ("SOM distance precision",
     "The SOM distances (hence the BMUs, the neighbourhood and L_som) are computed in fp32, with TF32 matmuls on "
     "a GPU, as the authors' fp32 training; the rest of the model trains under bf16 autocast on a GPU "
     "(train.precision=fp32 turns that off). GPU records made before this was fixed (the DESOM and raw-pixel SOM "
     "paper-profile runs of 2026-11-27) computed the distances in bf16: their cells and device say \"bf16 SOM "
     "distances\". Measured on a trained USPS pixel SOM (quick, seed 0): bf16 distances move the BMU of 5.4 % of "
     "the images (cosine distances round to steps of about 0.004), and leave purity unchanged (0.910)."),
    ("Last partial training batch",
     "Every training loader drops its last partial batch. The authors' USPS and Flowers-17 loaders do not: USPS "
     "trains 72 steps an epoch here against their 73 (82 images each epoch wait for the next shuffle), and Flowers-17, "
     "split differently anyway (see below), 6 steps of 128 on 816 images against their 9 on 1,088."),
    ("Schedule length",
     "The temperature decay and the γ warm-up use the real number of optimiser steps (steps per epoch with the "
     "last partial batch dropped × epochs); the authors use len(dataset)/batch_size × epochs for the temperature "
     "and Lightning's estimate for γ."),
    ("Prototype initialisation",
     "Prototypes start as U[0,1) rows, L2-normalised for the cosine distance, as in the authors' code; the paper "
     "text does not state it. For the decoded-prototype figure each prototype is rescaled to the mean norm of "
     "LayerNorm outputs (cosine training leaves the norm free)."),
    ("24×24 recipe",
     "The authors' repository has no 24×24 clustering config. Our 24×24 row keeps the 40×40 recipe (T_max 20, "
     "γ 0.005, 500 epochs, batch 128) and changes only the map; the paper's 24×24 numbers probably come from the "
     "v1-era recipe (200 epochs, batch 256, T_max 24, γ 0.0005). The clustering page also trains that recipe "
     "(row \"ViT-SOM (24×24), v1-era recipe\": T_min 0.1, lr 5e-4, warm-up 10, weight decay 0, constant γ: the γ "
     "warm-up came later) with today's model; "
     "the v1 decoder was as wide as the encoder and its SOM also saw the CLS token, which we do not reproduce."),
    ("Raw-pixel SOM",
     "The authors' repository has no code for the SOM (24×24) row. Ours is ViT-SOM without the ViT: the same "
     "map on the flattened pixels, trained by gradient with the 24×24 ViT-SOM recipe (cosine distance, AdamW, "
     "T 20 → 0.001). The clustering page adds the textbook alternative, Kohonen's batch map (Euclidean, "
     "neighbourhood width from half the map's side to 1 over 30 epochs, no gradient), at 24×24 and 8×8, and at "
     "24×24 with the width narrowed to 0.1 at the end."),
    ("SOM-loss scale",
     "L_som is the mean over batch and units (the authors' code), K times smaller than the printed 1/N ΣΣ form; "
     "γ values are the code's."),
    ("Flowers-17 split",
     "The authors test on all 1,360 Flowers-17 images, which overlap training. We split Flowers-17 60/20/20 "
     "(816/272/272 images, seeded) into train, validation and test, so our test images are never trained on."),
    ("Classification checkpoint",
     "Both ViT-SOM-cls and ViT-cls are evaluated at the last epoch; the authors evaluate their ViT baseline at "
     "its best-validation checkpoint and ViT-SOM at the last epoch."),
    ("ViT-cls baseline",
     "ViT-cls is the ViT-SOM-cls recipe with γ = 0 (the SOM is computed but does not train anything), so that the "
     "two rows differ only by the SOM. The authors' ViT baseline has its own configs: no label smoothing (ours "
     "keeps 0.1), lr 1e-3 × batch/256 (CIFAR-10: 5e-4, ours 2.5e-4), batch 512 on CIFAR-100, SVHN, Flowers-17 and "
     "Tiny-ImageNet (ours: the ViT-SOM batch, 128 except Tiny-ImageNet), patch 2 on CIFAR-100 (ours 4), and on "
     "SVHN ViT-Tiny (width 192, 12 blocks) where ours is the small 16-wide, 4-block ViT of the SVHN ViT-SOM "
     "recipe. Compare our ViT-cls with the paper's ViT row with this in mind, SVHN above all."),
    ("Augmentation",
     "The authors stack two augmentation pipelines on the colour classification sets (their own "
     "crop/RandAugment/flip, then timm's full training transform, so two crops and two RandAugments); we apply "
     "one pipeline once (random resized crop, RandAugment, flip, random erasing). Our validation split uses the "
     "evaluation transform (the authors' got the training augmentation). The MNIST/Fashion-MNIST small-data runs "
     "are not augmented (the paper has no such experiment)."),
    ("Test loaders",
     "Classification test sets are scored on every image; the authors' loaders drop the last partial batch."),
    ("Seeds",
     "Each run seeds itself (torch.manual_seed(seed)); the authors seed once and run 5 trainings in sequence. "
     "Mean ± population std over seeds, as the paper."),
    ("Parameter counts",
     "Our counts are of the models we train: ViT-SOM totals include the prototypes and decoder; the paper's "
     "ViT-SOM-cls count excludes both (compared with our encoder + head)."),
    ("Timing and memory",
     "The authors' training time is the wall time of building the data loaders and trainer.fit, and inference "
     "time one pass over the evaluation set. Ours beside it is the training loop's time (train_time_s, summed "
     "over resumed parts; it includes torch.compile's compile time, not the data loading of a few seconds nor the "
     "evaluation, k-means and diagnostics after training, which the efficiency page's \"whole run\" column "
     "adds); inference time is one pass over the evaluation set, as theirs. The paper's GPU is unknown, so only runs on a GPU "
     "with the paper profile are compared numerically. On CPU the peak memory is the process's peak RSS "
     "during the run (Linux VmHWM, reset when the run starts); records made before 2026-11-27, or on systems "
     "without /proc/self/clear_refs, hold the process's lifetime maximum instead (their rss_scope says which)."),
    ("k-means score",
     "Our \"k-means, k = 10\" row clusters the trained map's prototypes (weighted by their hit counts) into as "
     "many groups as classes and scores each image by its BMU's group (Hungarian-matched accuracy). The "
     "authors' code has an unused k-means evaluation on the latents (it reads the wrong tensor for ViT-SOM); "
     "the paper reports no k-means number."),
    ("Ablations",
     "The paper reports no ablation numbers (digest §0.3); our distance, SOM-input, grid-size and γ ablations "
     "have no paper counterpart. The grid ablation keeps T_max = 20 for every map size."),
]


# ----------------------------------------------------------------------------- the README's summary

SUMMARY_BEGIN = "<!-- paper-profile summary: generated by `python -m vitsom summary --write README.md` -->"
SUMMARY_END = "<!-- end of the paper-profile summary -->"


def paper_profile_summary(results=None) -> str:
    """Markdown: every paper number that has a ``paper``-profile record, ours beside it (mean ± population std
    over seeds), the difference in units of the paper's std, the seeds and the device; then the paper numbers
    with a counterpart but no such record yet. Built from the records alone, so it is the same on every machine."""
    plan = Plan.make("paper", results=results)
    st = status_table(plan)
    cache: dict = {}
    rows, missing = [], {}
    for rp, (_, r) in zip(REPORTED, st.iterrows()):
        if rp.ours is None or not preset_known(rp.ours.preset):
            continue
        if r["ours"] == "—":
            group = "Efficiency" if rp.section in ("train_time", "inference_time", "memory") \
                else SECTION_TITLES[rp.section].split(" (")[0]
            missing.setdefault((group, rp.model), []).append(r["column"])
            continue
        z = "—"
        if rp.unit == "fraction" and rp.std:
            vals = [record_row(x).get(rp.ours.metric) for x in one_device(rp, _records(rp, plan, cache))]
            m, _, _ = mean_std([v for v in vals if v is not None and np.isfinite(v)])
            z = f"{(m - rp.value) / rp.std:+.1f}"
        rows.append({"table": SECTION_TITLES[rp.section].split(" (")[0], "model": rp.model, "column": r["column"],
                     "paper": r["paper"], "ours": r["ours"], "difference": r["difference"],
                     "in paper stds": z, "seeds": r["seeds"], "device": r["device"]})
    cols = ["table", "model", "column", "paper", "ours", "difference", "in paper stds", "seeds", "device"]
    lines = [SUMMARY_BEGIN, "", md_table(rows, cols)]
    lines += ["", f"{len(rows)} paper numbers have a `paper`-profile record. Not yet run at the `paper` profile "
              "(they need a GPU, or data this build machine lacks):", ""]
    lines += [f"- {group}, {model}: {', '.join(c)}" for (group, model), c in missing.items()]
    return "\n".join(lines + ["", SUMMARY_END])


def replace_summary(text: str, summary: str) -> str:
    """``text`` with the block between :data:`SUMMARY_BEGIN` and :data:`SUMMARY_END` replaced by ``summary``."""
    i, j = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
    if i < 0 or j < i:
        raise ValueError(f"no summary block: the file needs a line {SUMMARY_BEGIN!r} and, after it, {SUMMARY_END!r}")
    return text[:i] + summary + text[j + len(SUMMARY_END):]
