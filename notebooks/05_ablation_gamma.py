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
# ε regime). In the quick and paper profiles the page also reruns γ ∈ {0.0005, 0.001, 0.005, 0.05}
# (with warm-up) at ε = 1e-12, where Adam's step no longer depends on the gradient's scale. Purity
# rewards many small clusters, so read it together with NMI and the number of units used. The
# clustering page runs the same comparison for the older (v1-era) 24×24 recipe, whose γ is 0.0005.

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
from vitsom.config import get_preset  # noqa: E402

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


rows = [gamma_row(k, g) | {"seeds": B.seeds_cell(g), "status": ", ".join(sorted(set(g["status"])))}
        for k, g in (df.groupby(BY, sort=False) if not df.empty else [])]
B.show_table(pd.DataFrame(rows), "tbl-ablation-gamma", "γ, warm-up and Adam-ε ablation (ours only; the paper "
             "reports no numbers for it)", note=PROV + ". " + B.missing_note(outcomes))

# %% tags=["hide-input"]
# In a build of another profile: the γ settings at the full recipe (paper profile) that have a record.
full_read = B.full_recipe_outcomes("05_ablation_gamma", plan)  # None in a paper build
full_df = B.full_recipe_frame("05_ablation_gamma", plan, read=full_read)
if not full_df.empty and "eps" not in full_df.columns:
    full_df["eps"] = E.DEFAULT_EPS
full_rows = [gamma_row(k, g) | {"seeds": f"{len(g)} of {n}"} for k, g, n in B.recorded_groups(full_df, BY)]
if full_rows:
    full_have = full_df[full_df["status"] == "existing"]
    B.show_table(pd.DataFrame(full_rows), "tbl-ablation-gamma-paper-profile", "The same ablation at the full recipe "
                 "so far (paper profile, 500 epochs)", note=B.full_recipe_note(full_have, plan.profile))


# %% tags=["hide-input"]
# Each setting at full length against its reference: a small-ε run against the same γ at the default ε, a
# run without warm-up against the same γ with it, every other γ against the recipe. Does what the short runs
# show last 500 epochs?
RECIPE_GAMMA = get_preset("usps-clustering").som.gamma     # the γ of every dataset's 40×40 recipe (0.005)


def setting_name(g_: float, warm: bool) -> str:
    return "no SOM loss (γ = 0)" if g_ == 0 else f"γ = {g_:g} {'with' if warm else 'without'} warm-up"


def recorded_cells(frame: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Key as in BY → that setting's recorded rows, for every setting with at least one record."""
    return {key: got for key, got, _ in B.recorded_groups(frame, BY)}


def contrasts(cells: dict[tuple, pd.DataFrame]) -> dict[tuple, tuple[pd.DataFrame, pd.DataFrame]]:
    """(reference key, changed key) → (reference rows, changed rows), keys as in BY, for every recorded
    setting (``cells``, from :func:`recorded_cells`) whose reference is recorded too: ε = 1e-12 against
    the same γ and warm-up at the default ε, a constant γ (no warm-up) against the same γ with warm-up
    (so one change at a time; at the recipe's γ that is the recipe), any other default-ε setting against
    the recipe (γ = RECIPE_GAMMA with warm-up)."""
    out = {}
    for (ds, g_, warm, eps), got in cells.items():
        if eps != E.DEFAULT_EPS:
            ref = (ds, g_, warm, E.DEFAULT_EPS)
        elif not warm and g_ != 0:
            ref = (ds, g_, True, E.DEFAULT_EPS)
        elif (g_, warm) != (RECIPE_GAMMA, True):
            ref = (ds, RECIPE_GAMMA, True, E.DEFAULT_EPS)
        else:
            continue
        if ref in cells:
            out[(ref, (ds, g_, warm, eps))] = (cells[ref], got)
    return out


def cell_summary(g: pd.DataFrame) -> str:
    grad = g["proto_grad_over_eps"].dropna() if "proto_grad_over_eps" in g else pd.Series(dtype=float)
    return (f"{B.fmt(*B.mean_std(g['purity'].tolist()))} ({B.fmt(*B.mean_std(g['units_used'].tolist()), digits=0)} "
            f"units, {len(g)} seed{'s' if len(g) > 1 else ''}"
            + (f", BMU prototype gradient {grad.mean():.2g} × ε" if len(grad) else "") + ")")


def seed_noise(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Twice the larger of two cells' purity spreads (population std over their seeds; no floor)."""
    return B.seed_noise(B.mean_std(a["purity"].tolist()), B.mean_std(b["purity"].tolist()), floor=0.0)


full_cells = recorded_cells(df if plan.profile == "paper" else full_df)
full_pairs = contrasts(full_cells)
short_pairs = contrasts(recorded_cells(df)) if plan.profile != "paper" else {}
for pair, (ref, alt) in full_pairs.items():
    (ds, ref_g, ref_warm, _), (_, g_, warm, eps) = pair   # an ε pair shares γ and warm-up with its reference
    recipe_key = (ds, RECIPE_GAMMA, True, E.DEFAULT_EPS)
    if eps != E.DEFAULT_EPS:
        title = f"Adam's ε at full length ({E.DATASET_NAMES[ds]}, γ = {g_:g}, {'with' if warm else 'without'} warm-up)"
        alt_name, ref_name = f"ε = {eps:.0e}".replace("e-0", "e-"), f"ε = {E.DEFAULT_EPS:.0e}'s".replace("e-0", "e-")
        where = f"{alt_name} at γ = {g_:g}"             # how the recipe sentence below names this setting
    else:
        name = setting_name(g_, warm)
        title = f"{name[0].upper() if name[0].isascii() else name[0]}{name[1:]} at full length ({E.DATASET_NAMES[ds]})"
        alt_name, where = name, name
        ref_name = (f"the recipe's (γ = {RECIPE_GAMMA:g} with warm-up)" if pair[0] == recipe_key
                    else f"{setting_name(ref_g, ref_warm)} at")
    diff, on = B.shared_seed_diff(ref, alt)             # a cell with fewer seeds: compared on the seeds both ran
    noise = seed_noise(ref, alt)
    full_moves = abs(diff) > noise
    digits = B.contrast_digits(diff, noise)
    text = (f"**{title}.** Trained {int(ref['epochs'].max())} epochs (the paper profile), {alt_name} scores "
            f"{cell_summary(alt)} against {ref_name} {cell_summary(ref)}: {diff:+.{digits}f}{on}, "
            + (f"more than twice the larger of the two cells' ± ({noise:.{digits}f}, the spread over their seeds)."
               if full_moves else f"within twice the larger of the two cells' ± ({noise:.{digits}f}, seed noise)."))
    paired = B.seed_by_seed(ref, alt)                    # the same seeds side by side, where both cells ran them
    if paired:
        text += f" Seed by seed, {alt_name} is {paired}."
    if pair[0] != recipe_key and recipe_key in full_cells:   # (the recipe's own ε pair has the recipe as reference)
        recipe = full_cells[recipe_key]                  # and where does the setting stand against the recipe?
        to_recipe, recipe_on = B.shared_seed_diff(recipe, alt)
        recipe_noise = seed_noise(recipe, alt)
        rd = B.contrast_digits(to_recipe, recipe_noise)
        text += (f" The recipe (γ = {RECIPE_GAMMA:g} with warm-up, ε = {E.DEFAULT_EPS:.0e}) scores "
                 f"{cell_summary(recipe)}".replace("e-0", "e-") + f": {where} is {to_recipe:+.{rd}f} "
                 f"from it{recipe_on}, " + ("more than" if abs(to_recipe) > recipe_noise else "within")
                 + f" twice the larger ± ({recipe_noise:.{rd}f}).")
    if g_ == 0:
        text += (" At γ = 0 no gradient reaches the prototypes: they keep their random initial directions, so the "
                 "map is a fixed random partition of the autoencoder's latent space, and the difference is what "
                 "training the SOM (and its pull on the encoder) adds.")
    short_moves = False                                  # short_diff is set wherever short_moves is True
    if pair in short_pairs:
        sref, salt = short_pairs[pair]
        short_diff, short_on = B.shared_seed_diff(sref, salt)   # as above: on the seeds both ran
        short_moves = abs(short_diff) > seed_noise(sref, salt)
        text += (f" In this build's {plan.profile}-profile runs ({int(sref['epochs'].max())} epochs) the same change "
                 f"moves purity by {short_diff:+.3f}{short_on} ({sref['purity'].mean():.3f} → "
                 f"{salt['purity'].mean():.3f}; units "
                 f"{sref['units_used'].mean():.0f} → {salt['units_used'].mean():.0f}).")
    if not full_moves and short_moves:
        text += (" So the small ε makes the prototypes move sooner, which matters in a short run; over the full "
                 "recipe the default ε's slower prototypes reach a map of the same purity." if eps != E.DEFAULT_EPS
                 else " So the change matters in a short run only: over the full recipe both reach maps of the "
                      "same purity.")
    elif full_moves and short_moves:
        text += (" The short runs' effect lasts the full recipe." if diff * short_diff > 0 else
                 " The effect changes sign between the short runs and the full recipe.")
    elif full_moves and pair in short_pairs:
        text += " The short runs do not show it: it appears only over the full recipe."
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

# %% [markdown]
# ## The reconstruction at full length: γ or the seed?
#
# Which moves the autoencoder's reconstruction error more: γ, or the seed (initial weights and data
# order)? The table and figure gather every full-length run of this page by seed. The figure draws
# their training L1, one colour per seed: if the curves bunch by colour, the seed decides how the
# autoencoder trains, whatever the γ setting.

# %% tags=["hide-input"]
L1_MARK, plateau_exit = B.L1_MARK, B.plateau_exit


def span(values, form: str) -> str:
    """"lo–hi" of some numbers, or the one value when they are all equal."""
    lo, hi = form.format(min(values)), form.format(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


full_outs = outcomes if full_read is None else full_read[1]
full_recs = [o for o in full_outs if o.record is not None and o.record.get("history")]
drawn = False
for ds in sorted({o.run.dataset for o in full_recs}):
    recs = sorted((o for o in full_recs if o.run.dataset == ds), key=lambda o: o.run.seed)
    by_seed: dict[int, list] = {}
    for o in recs:
        by_seed.setdefault(o.run.seed, []).append(o.record)
    if len(by_seed) < 2:
        continue
    rows = []
    for seed, rs in by_seed.items():
        l1 = [r["metrics"]["recon_l1"] for r in rs]
        left = [plateau_exit(r) for r in rs]
        reached = sorted(e for e in left if e is not None)
        rows.append({"seed": seed, "runs (γ settings)": len(rs), "eval L1": span(l1, "{:.4f}"),
                     f"epoch the training L1 first fell below {L1_MARK:g}":
                         (span(reached, "{}") if reached else "never")
                         + (f" ({len(rs) - len(reached)} never)" if reached and len(reached) < len(rs) else "")})
    seed_means = [np.mean([r["metrics"]["recon_l1"] for r in rs]) for rs in by_seed.values()]
    within = max(max(r["metrics"]["recon_l1"] for r in rs) - min(r["metrics"]["recon_l1"] for r in rs)
                 for rs in by_seed.values())
    epochs = int(max(r["config"]["train"]["epochs"] for rs in by_seed.values() for r in rs))
    display(Markdown(
        f"**{E.DATASET_NAMES[ds]}, {epochs} epochs ({len(recs)} runs of this page with a record).** The per-seed "
        f"mean of the eval L1 spans {min(seed_means):.4f}–{max(seed_means):.4f} across seeds, while within one "
        f"seed the γ settings span at most {within:.4f}."))
    B.show_table(pd.DataFrame(rows), f"tbl-gamma-l1-by-seed-{ds}", f"Eval L1 and the training L1's plateau by seed, "
                 f"over every γ setting ({E.DATASET_NAMES[ds]}, {epochs} epochs)", note=B.provenance(B.frame(recs)))
    f = P.grouped_curves_figure({f"seed {s}": [r["history"] for r in rs] for s, rs in by_seed.items()},
                                ylabel="reconstruction L1 (epoch mean)", logy=True,
                                title=f"Training L1 of every γ setting, coloured by seed ({E.DATASET_NAMES[ds]})")
    B.show_figure(f, f"fig-gamma-l1-by-seed-{ds}", "Per-epoch training L1 of every full-length run of this page "
                  f"(each γ, warm-up and ε setting), one colour per seed, log scale ({E.DATASET_NAMES[ds]}, "
                  f"{epochs} epochs). {B.provenance(B.frame(recs))}.")
    drawn = True
if not drawn:
    display(Markdown("No full-length run of this page has records of two seeds yet, so the curves are not drawn."))

# %% [markdown]
# ### Repeats: the same run under another arithmetic order
#
# A few full-length runs were made twice with every config field equal, seed included, but another
# CPU thread count (and in one pair another CPU: the device column names both), which changes the
# order of the floating-point sums. The tables above use only
# each run's own record; its repeats live beside it (`results/<profile>/<preset>/repeats/`; make one
# with `python -m vitsom train … --repeat TAG` under another `OMP_NUM_THREADS`). Where a run and its
# repeat differ, the difference is what the arithmetic order alone does to that run.

# %% tags=["hide-input"]
def repeat_setting(c: dict) -> str:
    return setting_name(c["som"]["gamma"], c["som"]["gamma_warmup"]) + f", Adam ε {c['train'].get('eps', E.DEFAULT_EPS):.0e}"


B.show_repeats(full_recs, plan.results, repeat_setting, "tbl-gamma-repeats")
