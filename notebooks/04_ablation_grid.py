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
# # Ablation: map size
#
# [Open in Colab](https://colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/04_ablation_grid.ipynb)
# (the organisation `vitsom-companion` is a placeholder until the repository is published).
#
# The paper reports two map sizes (24×24 and 40×40); this page sweeps 8, 16, 24, 32 and 40 units a
# side with everything else fixed (the 40×40 recipe, T_max = 20 for every size). With every unit a
# cluster, purity tends to grow with the number of units (more, smaller, purer clusters) as long
# as the map spreads the images over them, so NMI, the k-means score, the
# *chance purity* (the same clusters with the labels shuffled) and the *purity above chance*
# ((purity − chance) / (1 − chance)) are shown beside it. The number of parameters is dominated by
# the prototypes (units × latent dimension). The 8, 24 and 40 runs are the clustering page's runs. In the smoke and quick profiles
# the sweep runs on USPS only, and the smoke profile skips 16 and 32 (it trains nothing extra here).

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
plan, outcomes, df, PROV = B.run_page("04_ablation_grid", profile, seeds, datasets, results_dir, extra_overrides,
                                     train_missing, ON_COLAB)

# %% tags=["hide-input"]
METRICS = [("purity", "purity"), ("chance_purity", "chance purity"), ("purity_above_chance", "purity above chance"),
           ("nmi", "NMI"), ("kmeans_acc", "k-means ACC (k=10)"),
           ("quantization_error", "QE"), ("topographic_error", "TE"), ("params_total_M", "# params (M)"),
           ("time_per_epoch_s", "train time / epoch (s)"), ("inference_time_s", "inference (s)")]
BY = ["dataset", "grid"]


def grid_row(key, g) -> dict:
    ds, grid = key
    row = {"dataset": E.DATASET_NAMES[ds], "map": f"{grid}×{grid}", "units": grid * grid}
    row |= B.metric_cells(g, METRICS)
    paper = R.reported("clustering", f"ViT-SOM ({grid}×{grid})", ds)
    row["purity: paper"] = B.fmt_reported(paper.value, paper.std) if paper else "not in the paper"
    return row


rows = [grid_row(k, g) for k, g in (df.groupby(BY, sort=False) if not df.empty else [])]
B.show_table(pd.DataFrame(rows), "tbl-ablation-grid", "Map size ablation (ours; paper purity where it has one)",
             note=PROV + ". " + B.missing_note(outcomes))

# %% tags=["hide-input"]
# In a build of another profile: the map sizes at the full recipe (paper profile) that have a record.
full_df = B.full_recipe_frame("04_ablation_grid", plan)
full_rows = [grid_row(k, g) | {"seeds": f"{len(g)} of {n}"} for k, g, n in B.recorded_groups(full_df, BY)]
if full_rows:
    full_have = full_df[full_df["status"] == "existing"]
    B.show_table(pd.DataFrame(full_rows), "tbl-ablation-grid-paper-profile", "Map sizes at the full recipe so far "
                 "(paper profile, 500 epochs)", note=B.full_recipe_note(full_have, plan.profile)
                 + " Times are comparable only between runs of the same machine and thread count.")

# %% tags=["hide-input"]
have = df[df["status"].isin(["existing", "trained"])] if not df.empty else df
if not have.empty:
    have = have.assign(dataset=have["dataset"].map(E.DATASET_NAMES))
    f = P.metric_vs_factor_figure(have, "grid", [m for m in METRICS[:7] if m[0] != "chance_purity"],
                                  hue="dataset" if have["dataset"].nunique() > 1 else None, logx=True,
                                  title="Scores against map side (units = side²)", xticks=sorted(have["grid"].unique()))
    B.show_figure(f, "fig-ablation-grid", f"Purity, purity above chance, NMI, k-means ACC, QE and TE against the map "
                  f"side (mean ± std over seeds). {PROV}.")
    f2 = P.metric_vs_factor_figure(have, "grid", [("time_per_epoch_s", "train time / epoch (s)"),
                                                  ("inference_time_s", "inference time (s)")],
                                   hue="dataset" if have["dataset"].nunique() > 1 else None, logx=True,
                                   title="Cost against map side", xticks=sorted(have["grid"].unique()))
    machines = sorted(set(have["device"]))
    B.show_figure(f2, "fig-ablation-grid-time", f"Training time per epoch and inference time against the map side. "
                  f"{PROV}." + (f" The runs come from {len(machines)} machines or thread counts ({'; '.join(machines)}): "
                                "compare times only between runs of the same one." if len(machines) > 1 else ""))
else:
    display(Markdown("No run of this page has a record yet, so there is no figure."))
