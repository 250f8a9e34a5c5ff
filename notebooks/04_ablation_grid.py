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


rows = [grid_row(k, g) | {"seeds": B.seeds_cell(g)} for k, g in (df.groupby(BY, sort=False) if not df.empty else [])]
B.show_table(pd.DataFrame(rows), "tbl-ablation-grid", "Map size ablation (ours; paper purity where it has one)",
             note=PROV + ". " + B.missing_note(outcomes))

# %% tags=["hide-input"]
# In a build of another profile: the map sizes at the full recipe (paper profile) that have a record.
full_read = B.full_recipe_outcomes("04_ablation_grid", plan)          # None in a paper-profile build
full_df = B.full_recipe_frame("04_ablation_grid", plan, read=full_read)
full_rows = [grid_row(k, g) | {"seeds": f"{len(g)} of {n}"} for k, g, n in B.recorded_groups(full_df, BY)]
if full_rows:
    full_have = full_df[full_df["status"] == "existing"]
    B.show_table(pd.DataFrame(full_rows), "tbl-ablation-grid-paper-profile", "Map sizes at the full recipe so far "
                 "(paper profile, 500 epochs)", note=B.full_recipe_note(full_have, plan.profile)
                 + " Times are comparable only between runs of the same machine and thread count.")

# %% tags=["hide-input"]
def size_paragraph(g: pd.DataFrame, ds: str, label: str, smoke: bool) -> str | None:
    """What the map side does to one dataset's recorded runs ``g`` (of the smoke profile if ``smoke``),
    in words (None below two sides)."""
    cells = {int(side): B.mean_std(v.tolist()) for side, v in g.groupby("grid")["purity"]}   # side → (mean, std, n)
    if len(cells) < 2:
        return None
    sides = sorted(cells)
    lo, hi = sides[0], sides[-1]

    def at(col: str, side: int) -> float:
        return float(g.loc[g["grid"] == side, col].mean()) if col in g else float("nan")

    text = (f"**{E.DATASET_NAMES[ds]}, {label}.** Purity goes from {B.fmt(*cells[lo])} on the {lo}×{lo} map "
            f"({at('units_used', lo):,.0f} units used) to {B.fmt(*cells[hi])} on the {hi}×{hi} map "
            f"({at('units_used', hi):,.0f} units used); the sides with a record are " + ", ".join(map(str, sides)) + ".")
    if smoke:
        return text + " Smoke runs only check that this section works; they say nothing about map size."
    level = B.levels_off_at(cells)
    if level == lo:
        text += (f" Every size is within seed noise of the {hi}×{hi} value (twice the larger std, at least 0.01): "
                 "here purity hardly depends on the map size.")
    elif level < hi:
        text += (f" It levels off from {level}×{level}: every larger map is within seed noise of the {hi}×{hi} "
                 f"value (twice the larger std, at least 0.01).")
    else:
        prev = sides[-2]
        step, noise = cells[hi][0] - cells[prev][0], B.seed_noise(cells[prev], cells[hi])
        digits = B.contrast_digits(step, noise)
        text += (f" It still {'rises' if step > 0 else 'falls'} from {prev}×{prev} to {hi}×{hi}, by {step:+.{digits}f}, "
                 f"more than seed noise ({noise:.{digits}f}).")
    ca, cb, pa, pb = at("chance_purity", lo), at("chance_purity", hi), at("purity_above_chance", lo), \
        at("purity_above_chance", hi)
    if np.isfinite(ca) and np.isfinite(cb):
        text += (f" Chance purity, the same clusters with the labels shuffled, goes {ca:.3f} → "
                 f"{cb:.3f}; measured above it, purity goes {pa:.3f} → {pb:.3f}.")
    ka, kb, na, nb = at("kmeans_acc", lo), at("kmeans_acc", hi), at("nmi", lo), at("nmi", hi)
    if np.isfinite(ka) and np.isfinite(kb):
        text += f" k-means ACC (10 clusters whatever the map size) goes {ka:.3f} → {kb:.3f},"
    if np.isfinite(na) and np.isfinite(nb):
        text += f" and NMI, which penalises splitting a class over many units, {na:.3f} → {nb:.3f}."
    small, big = (R.reported("clustering", f"ViT-SOM ({s}×{s})", ds) for s in (24, 40))
    if small and big and 24 in cells and 40 in cells:
        text += (f" The paper reports {small.value:.3f} at 24×24 and {big.value:.3f} at 40×40, a gain of "
                 f"{big.value - small.value:+.3f}; ours between the same sizes is {cells[40][0] - cells[24][0]:+.3f}.")
    if min(n for _, _, n in cells.values()) < 2:
        text += " Some sizes have a single seed: read their part as indicative."
    return text


paragraphs = []
for source, label, smoke in ((df, f"{plan.profile} profile", plan.smoke), (full_df, "paper profile (full recipe)", False)):
    got = source[source["status"].isin(["existing", "trained"])] if not source.empty else source
    for ds, g in (got.groupby("dataset", sort=False) if not got.empty else []):
        if (text := size_paragraph(g, ds, label, smoke)) is not None:
            paragraphs.append(text)
display(Markdown("\n\n".join(paragraphs) if paragraphs else
                 "Fewer than two map sizes have a record yet, so there is nothing to compare: `make plan` lists "
                 "the missing runs."))

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

# %% [markdown]
# ## Repeats: the same run under another arithmetic order
#
# Full-length runs of this page made twice with every config field equal, seed included, but another
# CPU thread count (and sometimes another CPU: the device column names both), which changes the order
# of the floating-point sums; the tables above use only each run's own record. The γ page explains
# repeats and the training L1's plateau that the exit-epoch column measures.

# %% tags=["hide-input"]
B.show_repeats(outcomes if full_read is None else full_read[1], plan.results,
               lambda c: f"{c['som']['height']}×{c['som']['width']} map", "tbl-grid-repeats")
