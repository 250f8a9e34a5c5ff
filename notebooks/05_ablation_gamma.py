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
# # Ablation: the SOM-loss weight γ and its warm-up
#
# [Open in Colab](https://colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/05_ablation_gamma.ipynb)
# (the organisation `vitsom-companion` is a placeholder until the repository is published).
#
# The loss is L = L_task + γ_t · L_som. The authors' newest code ramps γ_t linearly from 0 to γ
# over the first half of training ("warm-up"); their older code used a constant γ. This page sweeps
# γ ∈ {0, 0.0005, 0.001, 0.005, 0.01, 0.05} with and without the warm-up (γ = 0 needs no warm-up
# run) on the 40×40 recipe, and shows purity, NMI, map use and the reconstruction loss. γ is on the code's scale
# (SOM loss averaged over units). The paper reports no numbers for this ablation. In the smoke
# profile only γ ∈ {0, 0.005} runs (0.005 with and without warm-up), on USPS with the 8×8 map; in
# the quick profile the full sweep runs on USPS only.
#
# "SOM pull on encoder" is |∇γ_t·L_som| / |∇L1| over the encoder's parameters at the end of training
# (`vitsom.diagnostics`): how much the SOM bends the autoencoder's features.
#
# **γ also sets the prototypes' step size, through Adam's ε.** Only the SOM term reaches the
# prototypes, and Adam's update is lr·m/(√v + ε). One might expect Adam to make their pace
# independent of γ. But with the loss averaged over 1,600 units, the prototypes' gradients are far
# below PyTorch's default ε = 1e-8 (the authors' setting too). Then the update is ≈ lr·g/ε: plain
# SGD, whose step grows linearly with γ. The column "prototype grad / ε" is the RMS of γ_t·∂L_som/∂W
# over the units that are some image's BMU, divided by ε, at the end of training (below 1: the
# ε regime). In the quick and paper profiles the page also reruns γ ∈ {0.0005, 0.005, 0.05} (with
# warm-up) at ε = 1e-12, where Adam's step no longer depends on the gradient's scale. Purity rewards
# many small clusters, so read it together with NMI and the number of units used. The clustering
# page runs the same comparison for the older (v1-era) 24×24 recipe, whose γ is 0.0005.

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
plan, outcomes, df, PROV = B.run_page("05_ablation_gamma", profile, seeds, datasets, results_dir, extra_overrides,
                                     train_missing, ON_COLAB)

# %% tags=["hide-input"]
METRICS = [("purity", "purity"), ("nmi", "NMI"), ("recon_l1", "recon L1 (eval)"), ("final_task_loss", "last-epoch L1"),
           ("topographic_error", "TE"), ("units_used", "units used"),
           ("som_grad_ratio", "SOM pull on encoder"), ("proto_grad_over_eps", "prototype grad / ε")]
SCIENTIFIC = ("som_grad_ratio", "proto_grad_over_eps")     # diagnostics (vitsom.diagnostics): one mean, 1 digit
BY = ["dataset", "gamma", "warmup", "eps"]
if not df.empty and "eps" not in df.columns:
    df["eps"] = E.DEFAULT_EPS


def gamma_row(key, g) -> dict:
    ds, g_, warm, eps = key
    row = {"dataset": E.DATASET_NAMES[ds], "γ": g_, "warm-up": "—" if g_ == 0 else "yes" if warm else "no",
           "Adam ε": f"{eps:.0e}"}
    return row | B.metric_cells(g, METRICS, digits=4, scientific=SCIENTIFIC)


rows = [gamma_row(k, g) | {"status": ", ".join(sorted(set(g["status"])))}
        for k, g in (df.groupby(BY, sort=False) if not df.empty else [])]
B.show_table(pd.DataFrame(rows), "tbl-ablation-gamma", "γ, warm-up and Adam-ε ablation (ours only; the paper "
             "reports no numbers for it)", note=PROV + ". " + B.missing_note(outcomes))

# %% tags=["hide-input"]
# In a build of another profile: the γ settings at the full recipe (paper profile) that have a record.
full_df = B.full_recipe_frame("05_ablation_gamma", plan)
if not full_df.empty and "eps" not in full_df.columns:
    full_df["eps"] = E.DEFAULT_EPS
full_rows = [gamma_row(k, g) | {"seeds": f"{len(g)} of {n}"} for k, g, n in B.recorded_groups(full_df, BY)]
if full_rows:
    full_have = full_df[full_df["status"] == "existing"]
    B.show_table(pd.DataFrame(full_rows), "tbl-ablation-gamma-paper-profile", "The same ablation at the full recipe "
                 "so far (paper profile, 500 epochs)", note=B.full_recipe_note(full_have, plan.profile))


# %% tags=["hide-input"]
# Adam's ε at full length: does ε = 1e-12 still change the result once the recipe has run its 500 epochs?
def eps_pairs(frame: pd.DataFrame) -> dict[tuple, dict[float, pd.DataFrame]]:
    """(dataset, γ, warm-up) → {Adam ε: recorded rows} for the settings recorded at both ε."""
    cells: dict[tuple, dict[float, pd.DataFrame]] = {}
    for (ds, g_, warm, eps), got, _ in B.recorded_groups(frame, BY):
        cells.setdefault((ds, g_, warm), {})[eps] = got
    return {k: v for k, v in cells.items() if E.DEFAULT_EPS in v and E.SMALL_EPS in v}


def eps_summary(g: pd.DataFrame) -> str:
    grad = g["proto_grad_over_eps"].dropna() if "proto_grad_over_eps" in g else pd.Series(dtype=float)
    return (f"{B.fmt(*B.mean_std(g['purity'].tolist()))} ({B.fmt(*B.mean_std(g['units_used'].tolist()), digits=0)} "
            f"units, {len(g)} seed{'s' if len(g) > 1 else ''}"
            + (f", BMU prototype gradient {grad.mean():.2g} × ε" if len(grad) else "") + ")")


def seed_noise(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Twice the larger of two cells' purity spreads (population std over their seeds)."""
    return 2 * max(B.mean_std(a["purity"].tolist())[1], B.mean_std(b["purity"].tolist())[1])


full_eps = eps_pairs(df if plan.profile == "paper" else full_df)
short_eps = eps_pairs(df) if plan.profile != "paper" else {}
for (ds, g_, warm), by_eps in full_eps.items():
    big, small = by_eps[E.DEFAULT_EPS], by_eps[E.SMALL_EPS]
    diff = small["purity"].mean() - big["purity"].mean()
    noise = seed_noise(big, small)
    text = (f"**Adam's ε at full length ({E.DATASET_NAMES[ds]}, γ = {g_:g}, "
            f"{'with' if warm else 'without'} warm-up).** Trained {int(big['epochs'].max())} epochs (the paper "
            f"profile), ε = {E.SMALL_EPS:.0e} scores {eps_summary(small)} against ε = {E.DEFAULT_EPS:.0e}'s "
            f"{eps_summary(big)}: {diff:+.3f}, ")
    text += ("within twice the larger of the two cells' ± (seed noise)." if abs(diff) <= noise else
             "more than twice the larger of the two cells' ± (the spread over their seeds).")
    short_moves = False
    if (ds, g_, warm) in short_eps:
        sb, ss = short_eps[(ds, g_, warm)][E.DEFAULT_EPS], short_eps[(ds, g_, warm)][E.SMALL_EPS]
        short_diff = ss["purity"].mean() - sb["purity"].mean()
        short_moves = abs(short_diff) > seed_noise(sb, ss)
        text += (f" In this build's {plan.profile}-profile runs ({int(sb['epochs'].max())} epochs) the same change "
                 f"moves purity by {short_diff:+.3f} ({sb['purity'].mean():.3f} → {ss['purity'].mean():.3f}; units "
                 f"{sb['units_used'].mean():.0f} → {ss['units_used'].mean():.0f}).")
    if abs(diff) <= noise and short_moves:
        text += (" So the small ε makes the prototypes move sooner, which matters in a short run; over the full "
                 "recipe the default ε's slower prototypes reach a map of the same purity.")
    display(Markdown(text))

# %% tags=["hide-input"]
have = df[df["status"].isin(["existing", "trained"])] if not df.empty else df
if not have.empty:
    variant = have["warmup"].map({True: "with warm-up", False: "without warm-up"})
    small_eps = have["eps"] < E.DEFAULT_EPS
    variant = variant.where(~small_eps, variant + f", ε = {E.SMALL_EPS:.0e}")
    have = have.assign(**{"warm-up": variant})
    f = P.metric_vs_factor_figure(have, "gamma", [("purity", "purity"), ("nmi", "NMI"), ("units_used", "units used")],
                                  hue="warm-up", symlogx=1e-4, title=f"Purity, NMI and map use against γ ({have['model'].iloc[0]})")
    B.show_figure(f, "fig-ablation-gamma", "Purity, NMI and the number of units used against γ (symmetric-log axis so that "
                  "γ = 0 shows), with and without the γ warm-up, and with warm-up at Adam ε = 1e-12 where run "
                  f"(mean ± std over seeds). {PROV}.")
else:
    display(Markdown("No run of this page has a record yet, so there is no figure."))
