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
# # Ablation: distance metric and SOM input
#
# [Open in Colab](https://colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/03_ablation_distance.ipynb)
# (the organisation `vitsom-companion` is a placeholder until the repository is published).
#
# Two choices decide what the SOM compares. **The distance:** the paper argues that the cosine
# distance suits high-dimensional ViT embeddings better than the Euclidean or Manhattan distance
# (DESOM uses Manhattan). **The SOM input:** the newest reference code gives the SOM the flattened
# patch tokens without the CLS token (196 × 16 = 3,136 values on MNIST, 64 × 16 = 1,024 on USPS);
# the code also supports the CLS token alone (16 values), the token a classifier reads. The paper
# reports no numbers for either, so this page has no paper column: it is our own ablation.
# Everything else is the 40×40 clustering recipe (in the smoke profile the 8×8 map, where the
# Manhattan distance costs a fraction as much). The quantization error is measured in each map's own
# distance and input space, so it cannot be compared across rows; purity, NMI and the topographic
# error can. The column mean cos(z, z′) is the mean cosine similarity between two images' SOM inputs
# (on one training batch of the trained model): near 1, every image looks the same to the SOM. In
# the smoke and quick profiles the ablation runs on USPS only (all three datasets in the paper
# profile).

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

from vitsom import experiments as E, book as B  # noqa: E402
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
plan, outcomes, df, PROV = B.run_page("03_ablation_distance", profile, seeds, datasets, results_dir, extra_overrides,
                                     train_missing, ON_COLAB)

# %% tags=["hide-input"]
METRICS = [("purity", "purity"), ("nmi", "NMI"), ("kmeans_acc", "k-means ACC (k=10)"),
           ("topographic_error", "TE"), ("quantization_error", "QE (own metric)"), ("recon_l1", "recon L1"),
           ("units_used", "units used"), ("latent_cosine", "mean cos(z, z′)"),
           ("time_per_epoch_s", "train time / epoch (s)")]
BY = ["dataset", "distance", "som_input"]


def label_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """Readable SOM-input names, and the figure's bar label (distance, plus the input if not patches)."""
    if not frame.empty:
        frame["som_input"] = frame["som_input"].map(E.SOM_INPUTS)
        frame["distance / SOM input"] = [d if i == E.SOM_INPUTS["patches"] else f"{d}\n{i}"
                                         for d, i in zip(frame["distance"], frame["som_input"])]
    return frame


def ablation_row(key, g) -> dict:
    ds, dist, inp = key
    return {"dataset": E.DATASET_NAMES[ds], "distance": dist, "SOM input": inp} | B.metric_cells(g, METRICS)


df = label_inputs(df)
rows = [ablation_row(k, g) | {"seeds": B.seeds_cell(g), "status": ", ".join(sorted(set(g["status"])))}
        for k, g in (df.groupby(BY, sort=False) if not df.empty else [])]
B.show_table(pd.DataFrame(rows), "tbl-ablation-distance", "Distance metric and SOM input ablation (ours only; "
             "the paper reports no numbers for it)", note=PROV + ". " + B.missing_note(outcomes))

# %% tags=["hide-input"]
# In a build of another profile: the ablation's runs at the full recipe (paper profile) that have a record.
full_read = B.full_recipe_outcomes("03_ablation_distance", plan)      # None in a paper-profile build
full_df = label_inputs(B.full_recipe_frame("03_ablation_distance", plan, read=full_read))
full_rows = [ablation_row(k, g) | {"seeds": f"{len(g)} of {n}"} for k, g, n in B.recorded_groups(full_df, BY)]
if full_rows:
    full_have = full_df[full_df["status"] == "existing"]
    B.show_table(pd.DataFrame(full_rows), "tbl-ablation-distance-paper-profile", "The same ablation at the full "
                 "recipe so far (paper profile, 500 epochs)", note=B.full_recipe_note(full_have, plan.profile))

# %% tags=["hide-input"]
# A map whose every image has the same BMU has collapsed: purity is then the largest class's share.
# Say so, with the numbers of the runs shown above, rather than leave a bare 0.17 in the table.
# (The explanation is about the non-normalised distances; a CLS-token map is discussed below.)
NEAR_COLLAPSE_UNITS = 10     # of 1,600 (64 in smoke): a handful of units sort every image


def explain_collapses(frame: pd.DataFrame, where: str = "", longer: pd.DataFrame | None = None) -> None:
    """One paragraph per (dataset, distance) whose patch-token map (nearly) collapsed in every run;
    ``longer``: the full-recipe records, to say whether the same map still collapses at 500 epochs."""
    on_patches = frame[frame["som_input"] == E.SOM_INPUTS["patches"]] if not frame.empty else frame
    for (ds, dist), g in B.collapsed(on_patches, ["dataset", "distance"], max_units=NEAR_COLLAPSE_UNITS):
        full = g["units_used"].max() <= 2
        text = (f"**{dist.capitalize()} on {E.DATASET_NAMES[ds]}{where}: the map "
                f"{'collapsed' if full else 'nearly collapsed'}.** In all {len(g)} run(s) ({int(g['epochs'].max())} "
                f"epochs), every image ends on {B.units_phrase(g['units_used'].max())} (purity "
                f"{B.fmt(*B.mean_std(g['purity'].tolist()))}, NMI {B.fmt(*B.mean_std(g['nmi'].tolist()))}).")
        start = ("the prototypes start uniform in [0, 1)ᴰ and are not normalised for this distance, so one of them "
                 "starts nearest to the whole cloud of latents and becomes every image's BMU at first. The "
                 "neighbourhood weights of every image then centre on that one unit, so every prototype is pulled "
                 "toward the same weighted centre of the batch")
        checked = ("(Checked on one quick USPS run with the Euclidean distance: the winning prototype sat at the "
                   "centre of the latents, every other one far outside the cloud.)")
        if dist != "cosine" and full:
            text += (f" What we think happens: {start}, none moves into the cloud ahead of the winner, and no second "
                     f"unit ever wins an image. {checked} Cosine distance with normalised prototypes leaves this start "
                     "under today's recipe, but not always: with too small prototype steps it can stay there too (see "
                     "the clustering page's v1-era rows, γ = 0.0005).")
        elif dist != "cosine":
            text += (f" What we think happens is the collapse of a non-normalised start, only less complete: {start}, "
                     f"and only a few units break away from the winner. {checked} We have not checked where this "
                     "distance's prototypes sit.")
        later = longer[(longer["dataset"] == ds) & (longer["distance"] == dist)
                       & (longer["som_input"] == E.SOM_INPUTS["patches"])] if longer is not None and not longer.empty \
            else pd.DataFrame()
        if not later.empty and later["units_used"].min() > NEAR_COLLAPSE_UNITS:
            text += (f" **At the full recipe the map does not stay collapsed:** trained {int(later['epochs'].max())} "
                     f"epochs, it uses {B.fmt(*B.mean_std(later['units_used'].tolist()), digits=0)} units (purity "
                     f"{B.fmt(*B.mean_std(later['purity'].tolist()))}, {len(later)} run(s); the table of full-recipe "
                     "runs above). So the collapse is one of the short runs (their schedules for the temperature "
                     "and γ are compressed into 10 epochs), not of the distance as such.")
            cos = longer[(longer["dataset"] == ds) & (longer["distance"] == "cosine")
                         & (longer["som_input"] == E.SOM_INPUTS["patches"])]
            if not cos.empty:
                text += (f" It still uses far fewer units than the cosine map at the same length "
                         f"({B.fmt(*B.mean_std(cos['units_used'].tolist()), digits=0)} units, purity "
                         f"{B.fmt(*B.mean_std(cos['purity'].tolist()))}).")
        display(Markdown(text))


def explain_cls(have: pd.DataFrame, where: str = "") -> None:
    """The CLS token alone: what the runs show (units in use, purity beside the patch-token row)."""
    for ds in (have["dataset"].unique() if not have.empty else []):
        cls = have[(have["dataset"] == ds) & (have["som_input"] == E.SOM_INPUTS["cls"])]
        pat = have[(have["dataset"] == ds) & (have["som_input"] == E.SOM_INPUTS["patches"])
                   & (have["distance"] == "cosine")]
        if cls.empty:
            continue
        units = B.fmt(*B.mean_std(cls['units_used'].tolist()), digits=0)
        text = (f"**The CLS token alone on {E.DATASET_NAMES[ds]}{where}:** purity "
                f"{B.fmt(*B.mean_std(cls['purity'].tolist()))} with {units} unit{'' if units == '1' else 's'} in use "
                f"over {len(cls)} run(s)")
        if cls["units_used"].max() <= 2:
            text += (" (the map collapsed: every image on " + B.units_phrase(cls["units_used"].max()) + ", so purity is "
                     "the largest class's share)")
        if not pat.empty:
            text += (f", against {B.fmt(*B.mean_std(pat['purity'].tolist()))} and "
                     f"{B.fmt(*B.mean_std(pat['units_used'].tolist()), digits=0)} units on the patch tokens")
        text += "."
        worse = not pat.empty and cls["purity"].mean() < pat["purity"].mean() - 0.05
        if worse:   # the explanation below is for a CLS map clearly worse than the patch-token map
            text += (" What we think happens: in this autoencoder nothing asks the CLS token to describe the image. "
                     "The decoder reconstructs the patch tokens (it reads the CLS token only through attention), and "
                     "the SOM's pull on the encoder is too weak to shape it")
            if "som_grad_ratio" in cls.columns and cls["som_grad_ratio"].notna().any():
                text += (f" (its gradient on the encoder is {cls['som_grad_ratio'].median():.1e} of the "
                         "reconstruction gradient's, median over seeds, "
                         "at the end of training: the records' SOM-gradient diagnostic)")
            text += ". So the CLS token ends up almost the same for every image, and the map has next to nothing to sort"
            measured = "latent_cosine" in have.columns
            if measured and cls["latent_cosine"].notna().any() and pat["latent_cosine"].notna().any():
                c = cls["latent_cosine"].mean()
                text += (f": the mean cosine between two images' CLS tokens is {c:.{5 if c > 0.999 else 3}f}, "
                         f"against {pat['latent_cosine'].mean():.3f} between their flattened patch tokens (the "
                         "table's mean cos(z, z′) column, measured on one training batch of the trained model)")
            text += (". In the classification model the head reads the CLS token, so there it does carry the class.")
        display(Markdown(text))


have = df[df["status"].isin(["existing", "trained"])] if not df.empty else df
explain_collapses(df, longer=full_have if full_rows else None)
explain_cls(have)
if full_rows:      # the same, for the full-recipe runs shown in their own table above
    explain_collapses(full_df, " at the full recipe")
    explain_cls(full_have, " at the full recipe")

# %% tags=["hide-input"]
if not have.empty:
    f = P.metric_bars_figure(have, "distance / SOM input",
                             [("purity", "purity"), ("nmi", "NMI"), ("topographic_error", "TE")],
                             title=f"Distance metric and SOM input ({have['model'].iloc[0]})")
    B.show_figure(f, "fig-ablation-distance", f"Purity, NMI and topographic error per distance and SOM input "
                  f"(bars: mean, error bars: std over seeds). {PROV}.")
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
def repeat_setting(c: dict) -> str:
    return f"{c['som']['distance']} distance, {E.SOM_INPUTS[c['som'].get('som_input', 'patches')]}"


B.show_repeats(outcomes if full_read is None else full_read[1], plan.results, repeat_setting,
               "tbl-distance-repeats")
