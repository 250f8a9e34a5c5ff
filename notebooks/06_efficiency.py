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
# # Efficiency (paper Tables III and IV)
#
# [Open in Colab](https://colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/06_efficiency.ipynb)
# (the organisation `vitsom-companion` is a placeholder until the repository is published).
#
# Training time, inference time and peak memory, read from the run records. The authors' code times
# training as building the data loaders plus the training loop (Lightning's `fit`), and inference as
# one pass over the evaluation set; beside the paper we put our training loop's time ("training"
# below; the "whole run" adds the evaluation, k-means and diagnostics after training). The paper
# does **not say which GPU** it used, nor the dataset or the number of epochs of
# these runs (probably MNIST for clustering and CIFAR-10 for classification, given the 4×4 map).
# Our numbers are therefore never directly comparable with the paper's unless both come from the
# paper profile on a GPU, and even then the GPUs may differ. We also give the training time per
# epoch, which does not depend on the profile's epoch count. Where CIFAR-10 is not available, the
# small-data test's MNIST runs with the most labels (100 % in the paper profile, 10 % in the smoke and quick profiles) stand in for
# the classification rows.

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
plan, outcomes, df, PROV = B.run_page("06_efficiency", profile, seeds, datasets, results_dir, extra_overrides,
                                     train_missing, ON_COLAB)

# %% [markdown]
# ## Our runs

# %% tags=["hide-input"]
rows = []
have = df[df["status"].isin(["existing", "trained"])] if not df.empty else df
for (model, ds), g in (have.groupby(["model", "dataset"], sort=False) if not have.empty else []):
    cuda = g["peak_cuda_gb"].notna().any()
    rows.append({
        "model": model, "dataset": E.DATASET_NAMES[ds], "device": "; ".join(sorted(set(g["device"]))),
        "seeds": f"{', '.join(map(str, sorted(g['seed'])))} (of {len(df[(df['model'] == model) & (df['dataset'] == ds)])})",
        "epochs × images": f"{int(g['epochs'].iloc[0])} × {int(g['train_samples'].iloc[0]):,}",
        "train time / epoch (s)": B.fmt(*B.mean_std(g["time_per_epoch_s"].tolist()), digits=2),
        "training (s)": B.fmt(*B.mean_std(g["train_time_s"].tolist()), digits=1),
        "whole run (s)": B.fmt(*B.mean_std(g["wall_time_s"].tolist()), digits=1),
        "inference (s)": B.fmt(*B.mean_std(g["inference_time_s"].tolist()), digits=3),
        "CPU share": "—" if cuda else B.fmt(*B.mean_std(g["cpu_share"].tolist()), digits=2),
        "peak memory (GB)": (B.fmt(*B.mean_std(g["peak_cuda_gb"].tolist())) + " CUDA") if cuda else
                            (B.fmt(*B.mean_std(g["peak_rss_gb"].tolist())) + " CPU RSS"
                             + ("*" if (g["rss_scope"] == "run").all() else "†")),
        "# params (M)": B.fmt(*B.mean_std(g["params_total_M"].tolist()), digits=2),
    })
B.show_table(pd.DataFrame(rows), "tbl-efficiency-ours", "Time and memory of our runs",
             note=PROV + ". CPU share: the training's CPU time over (its wall time × its threads). Near 1 the run "
             "had its cores to itself; lower, other work shared the cores and its times are longer than the "
             "machine's own speed, by about 1/share (— where a record predates this measure, or on a GPU). "
             "*CPU RSS: the run's own peak resident memory. †CPU RSS from records made before per-run peaks "
             "were measured: the training process's peak over every run it did before, an upper bound. "
             "CUDA memory is always per run. " + B.missing_note(outcomes))

# %% [markdown]
# ## The paper's tables beside ours
#
# Each paper row is matched with our run of the same model where we have one (clustering on the
# figure dataset, classification on CIFAR-10). "not comparable" marks numbers measured on
# different hardware or with a different number of epochs.

# %% tags=["hide-input"]
st = R.status_table(plan)
eff = st[st["section"].isin(["train_time", "inference_time", "memory"])]
eff = eff[["model", "column", "paper", "ours", "difference", "note"]].rename(columns={"paper": "paper (reported)"})
B.show_table(eff, "tbl-efficiency-paper", "Paper Tables III-IV (reported) with our counterparts",
             note="The paper's GPU is unknown. " + PROV)
