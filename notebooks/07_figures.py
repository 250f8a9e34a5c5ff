# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Figures
#
# [Open in Colab](https://colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/07_figures.ipynb)
# (the organisation `vitsom-companion` is a placeholder until the repository is published).
#
# The paper's figures, redrawn from our runs: the architecture (schematic), model size against
# score (the paper's points marked reported, ours beside them), the UMAP progression of the latent
# space during training (panels I → IV, from weight snapshots), the decoded prototypes of a 24×24
# map, and two views of the trained map that the paper does not show, the BMU hit map and the
# U-matrix. The paper uses MNIST; when MNIST is not selected the first selected clustering dataset
# is used instead, and the captions say so.

# %% tags=["hide-input"]
# Setup. Locally: make the repository importable. On Colab: clone the repository, install it
# without touching Colab's own torch/numpy/pandas, and add umap-learn (used by the figures).
import os
import subprocess
import sys
from pathlib import Path

REPO_URL = "https://github.com/vitsom-companion/vitsom"  # placeholder organisation name
ON_COLAB = "google.colab" in sys.modules
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "vitsom" / "experiments.py").exists()), None)
if ROOT is None and ON_COLAB:
    ROOT = Path("/content/vitsom")
    if not (ROOT / "pyproject.toml").exists():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "umap-learn", "h5py"], check=True)
    os.chdir(ROOT)
if ROOT is None:
    raise RuntimeError("open this notebook from a clone of the vitsom repository, or on Colab")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib.pyplot as plt  # noqa: E402  (activates the inline backend's figure display)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from IPython.display import Markdown, display  # noqa: E402

from vitsom import experiments as E, book as B, reported as R  # noqa: E402
from vitsom import plots as P  # noqa: E402

pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters", "hide-input"]
profile = "smoke"        # smoke | quick | paper
seeds = None             # None: the profile's seeds (smoke [0], quick [0, 1, 2], paper [0..4])
datasets = None          # None: every dataset of this page; e.g. ["usps"]
results_dir = None       # None: $VITSOM_RESULTS or <repo>/results
train_missing = True     # False: show the existing records only (make book); nothing is trained
extra_overrides = []     # config overrides added to every run (the tests use them to shrink runs)

# %% tags=["hide-input"]
import torch  # noqa: E402

from vitsom.evaluation import predict  # noqa: E402
from vitsom.taskdata import load_task_data  # noqa: E402
from vitsom.train import load_trained, resolve_device  # noqa: E402

plan, outcomes, df, PROV = B.run_page("07_figures", profile, seeds, datasets, results_dir, extra_overrides,
                                     train_missing, ON_COLAB)
FIG_RUN = E.figure_run(plan)
fig_out = next((o for o in outcomes if FIG_RUN is not None and o.run.preset == FIG_RUN.preset
                and o.run.seed == FIG_RUN.seed and not o.run.overrides), None)
FIG_REC = fig_out.record if fig_out is not None else None
DEVICE = resolve_device(None)

# %% [markdown]
# ## Architecture (paper Fig. 1)

# %% tags=["hide-input"]
B.show_figure(P.architecture_figure(), "fig-architecture",
              "ViT-SOM: the ViT encoder's patch tokens z feed the SOM layer (SOM loss, weight γ) and the decoder "
              "(reconstruction loss). For classification a linear head on the CLS token replaces the "
              "reconstruction loss. Schematic drawn from the paper's description.")

# %% [markdown]
# ## Model size against score (paper Fig. 2)

# %% tags=["hide-input"]
def pts(spec, ours_rows):
    out = [{"name": n, "params": p, "score": s, "kind": "paper-ours" if mine else "paper-baseline"}
           for n, p, s, mine in spec]
    return out + ours_rows


def ours_points(model, dataset, metric, params_col):
    sub = df[(df["model"] == model) & (df["dataset"] == dataset)] if not df.empty else df
    if sub.empty or metric not in sub.columns:
        return []
    m, s, n = B.mean_std(sub[metric].tolist())
    p, _, _ = B.mean_std(sub[params_col].tolist())
    return [{"name": f"{model} (ours)", "params": p, "score": m, "err": s if n > 1 else None, "kind": "repro"}] if n else []


left_ours = []
if FIG_RUN is not None and FIG_RUN.dataset == "mnist":
    for model in (E.VIT_SOM_24, E.VIT_SOM_40, E.DESOM):
        left_ours += ours_points(model, "mnist", "purity", "params_total_M")
right_ours = []
for model, col in ((E.VIT_SOM_CLS, "params_enc_head_M"), (E.VIT_CLS, "params_enc_head_M"), (E.RESNET, "params_total_M")):
    right_ours += ours_points(model, "cifar10", "top1", col)
f = P.size_vs_score_figure(pts(R.FIGURE2_LEFT, left_ours), pts(R.FIGURE2_RIGHT, right_ours),
                           ours_label=f"this repository ({plan.profile})")
B.show_figure(f, "fig-size-vs-score",
              "Left: MNIST purity; right: CIFAR-10 top-1; against model size. Stars and circles: the paper's numbers "
              f"(reported). Diamonds: ours ({PROV}). Ours appear only where we have runs"
              + ("" if left_ours else "; no MNIST clustering runs for this selection")
              + ("" if right_ours else "; CIFAR-10 is not available here, so the right panel has no point of ours")
              + ". Parameter counts follow each side's convention (ours: clustering totals, classifier encoder + head).")

# %% [markdown]
# ## Latent space during training (paper Fig. 3)
#
# UMAP of the flattened patch-token latent z with the authors' settings (15 neighbours, min_dist 0.1,
# cosine, random_state 42), at the snapshot epochs of the 24×24 run, coloured by label.

# %% tags=["hide-input"]
snap_note = ""
if FIG_REC is None:
    display(Markdown("The figure run has no record for this selection, so the latent, prototype and map "
                     "figures are not drawn."))
else:
    epochs_avail, snap_note = E.ensure_snapshots(FIG_RUN, plan, train_missing=train_missing)
    if snap_note:
        display(Markdown(snap_note))
    cfg = FIG_RUN.config(plan.profile, plan.extra)
    arrays = load_task_data(cfg, plan.data_root).train
    idx = B.subsample(len(arrays), 5000, seed=0)
    arrays_sub = arrays.subset(torch.as_tensor(idx))
    labels = arrays_sub.labels.numpy()
    embs, titles = [], []
    for ep in epochs_avail:
        model, _ = load_trained(FIG_REC, DEVICE, snapshot=f"epoch_{ep}")
        z = predict(model, arrays_sub, DEVICE, keep_latent=True)["z"].numpy()
        embs.append(B.umap_embed(z))
        titles.append("initialisation" if ep == 0 else f"after epoch {ep}")
    if embs:
        f = P.latent_progression_figure(embs, labels, titles)
        B.show_figure(f, "fig-umap-progression",
                      f"UMAP of the ViT-SOM latent ({E.DATASET_NAMES[FIG_RUN.dataset]}, {len(idx):,} images, "
                      f"{cfg.som.height}×{cfg.som.width} map, seed {FIG_RUN.seed}) from initialisation to the last of "
                      f"{cfg.train.epochs} epochs. {PROV}.")

# %% [markdown]
# ## Decoded prototypes (paper Fig. 4)
#
# Each prototype, reshaped to patch tokens with a zero CLS token, goes through the trained decoder.
# Neighbouring units of a well-organised map decode to similar images.

# %% tags=["hide-input"]
HAVE_MODEL = FIG_REC is not None and (E.runs_root_of(FIG_REC) / "model.pt").exists()
if HAVE_MODEL:
    model, cfg = load_trained(FIG_REC, DEVICE)
    imgs = model.decode_prototypes().float().clamp(0, 1).cpu().numpy()
    f = P.prototype_grid_figure(imgs, cfg.som.height, cfg.som.width,
                                title=f"{E.DATASET_NAMES[cfg.dataset]}, {cfg.som.height}×{cfg.som.width} map")
    B.show_figure(f, "fig-prototypes", f"Decoded prototypes of the {cfg.som.height}×{cfg.som.width} map "
                  f"({E.DATASET_NAMES[cfg.dataset]}, seed {FIG_RUN.seed}, after {cfg.train.epochs} epochs). {PROV}.")
elif FIG_REC is not None:
    display(Markdown("The trained weights of the figure run are not on this machine, so the prototype and map "
                     "figures are not drawn. " + snap_note))

# %% [markdown]
# ## BMU hit map and U-matrix
#
# Not in the paper: how the images spread over the trained map, and where its cluster borders are.

# %% tags=["hide-input"]
if HAVE_MODEL:
    full = load_task_data(cfg, plan.data_root).train
    bmu = predict(model, full, DEVICE)["bmu"].numpy()
    H, W = cfg.som.height, cfg.som.width
    hits = P.hit_counts(bmu, H, W)
    umat = P.u_matrix(model.som.prototypes.detach().float().cpu().numpy(), H, W, cfg.som.distance)
    lab = P.majority_labels(bmu, full.labels.numpy(), H, W)
    f = P.map_figure(hits, umat, lab)
    B.show_figure(f, "fig-hitmap-umatrix", f"Left: how many of the {len(full):,} images have each unit as BMU "
                  f"(digits: the unit's majority label). Right: U-matrix, the mean {cfg.som.distance} distance "
                  f"between a prototype and its grid neighbours. {PROV}.")
else:
    display(Markdown("Not drawn: it needs the figure run's trained weights, which are not on this machine (see the "
                     "decoded prototypes above)."))
