"""The experiment plan of the book: which runs each notebook shows, and running them.

* :func:`runs` lists, for each notebook and profile, every run (preset + overrides + seed) the
  notebook shows. Default seeds: smoke 1, quick 3, paper 5. ``seeds``/``datasets`` narrow the plan.
  The smoke plan is cut down (ablations and the extra clustering variants on USPS only, the
  small-data test on MNIST only) so that ``make reproduce`` stays within 15 minutes on a 2-core CPU.
* :func:`execute` trains what a notebook needs through :func:`vitsom.train.train` (existing records
  are reused) and never skips a run silently: each run comes back as an :class:`Outcome` whose
  ``status`` says what happened (``existing``, ``trained``, ``not-run``, ``no-data``,
  ``unknown-preset``, ``diverged``).

Turning records into the book's tables is :mod:`vitsom.book`; the paper's own numbers and the
reproduction-status table are :mod:`vitsom.reported`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from urllib.error import URLError

NOTEBOOKS: tuple[str, ...] = ("01_clustering", "02_classification", "03_ablation_distance", "04_ablation_grid",
                              "05_ablation_gamma", "06_efficiency", "07_figures")
PROFILES = ("smoke", "quick", "paper")
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {"smoke": (0,), "quick": (0, 1, 2), "paper": (0, 1, 2, 3, 4)}

CLUSTERING_DATASETS = ("mnist", "fmnist", "usps")
CLASSIFICATION_DATASETS = ("cifar10", "cifar100", "flowers17", "svhn", "tinyimagenet", "pathmnist")
SMALL_DATA_DATASETS = ("mnist", "fmnist")
DATASET_NAMES = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "usps": "USPS", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "flowers17": "Flowers-17", "svhn": "SVHN",
                 "tinyimagenet": "Tiny-ImageNet", "pathmnist": "MedMNIST (PathMNIST)"}

DISTANCES = ("cosine", "euclidean", "manhattan")
SOM_INPUTS = {"patches": "patch tokens", "cls": "CLS token"}     # som.som_input → the book's label
GRID_SIZES = (8, 16, 24, 32, 40)
SMOKE_GRID_SIZES = (8, 24, 40)           # the clustering table's maps: nothing extra to train
GAMMAS = (0.0, 0.0005, 0.001, 0.005, 0.01, 0.05)
SMOKE_GAMMAS = (0.0, 0.005)
# Adam's ε: the prototypes' gradients sit far below PyTorch's default 1e-8 in these recipes, where
# Adam's step becomes lr·g/ε (SGD whose step grows with γ). The γ page reruns a few γ (with
# warm-up) at ε = 1e-12, where Adam's step is scale-free again (quick and paper profiles). γ = 0.001
# joined after the default-ε runs put it below the recipe on every seed; at ε = 1e-12 it gains
# +0.007, on all 5 seeds (results/FINDINGS.md, the γ page).
DEFAULT_EPS = 1e-8
SMALL_EPS = 1e-12
SMALL_EPS_GAMMAS = (0.0005, 0.001, 0.005, 0.05)
LABEL_FRACTIONS = (0.01, 0.1, 1.0)
# In the smoke profile every training set is capped at 1,024 images, so fractions 0.1 and 1.0 of
# MNIST's 48,000 training images both become 1,024 images. Smoke runs 0.1 only: with 0.01 (480
# images, below the cap) vitsom.train also scores the full 22,000-image val and test sets, which
# costs more than the training itself.
SMOKE_LABEL_FRACTIONS = (0.1,)
# The quick profile (sized for a CPU) runs the 1 % and 10 % fractions of the two small models; the
# 100 % runs (48,000 images) and ResNet34 (about half an hour per run on 2 CPU cores) are paper-only.
QUICK_LABEL_FRACTIONS = (0.01, 0.1)
# Training length: the quick profile squeezes the whole recipe (LR cosine, temperature 20 → 0.001,
# γ warm-up) into 10 of the paper's 500 epochs. The clustering page reruns the 40×40 recipe, on the
# ablation datasets, for these many epochs (same schedules stretched, warm-up scaled in proportion)
# to show how much of the gap to the paper is training length.
TRAINING_LENGTHS: dict[str, tuple[int, ...]] = {"smoke": (4,), "quick": (30, 100), "paper": (10, 30, 100)}

# Row labels
VIT_SOM_40, VIT_SOM_24, VIT_SOM_8 = "ViT-SOM (40×40)", "ViT-SOM (24×24)", "ViT-SOM (8×8, equal clusters)"
HELDOUT = "ViT-SOM (40×40), held-out protocol"
VIT_SOM_24_V1 = "ViT-SOM (24×24), v1-era recipe"
VIT_SOM_24_V1_EPS = "ViT-SOM (24×24), v1-era recipe, Adam ε = 1e-12"
# the v1-era recipe with today's γ warm-up (which came later): does the warm-up keep its map from collapsing?
VIT_SOM_24_V1_WARMUP = "ViT-SOM (24×24), v1-era recipe with γ warm-up"
VIT_SOM_24_V1_WARMUP_EPS = "ViT-SOM (24×24), v1-era recipe with γ warm-up, Adam ε = 1e-12"
DESOM, RAW_SOM = "DESOM", "SOM (24×24)"
# the same pixel maps trained the textbook way (Kohonen's batch map, vitsom.batch_som), not by gradient
CLASSIC_SOM_24, CLASSIC_SOM_8 = "SOM (24×24), classical batch map", "SOM (8×8), classical batch map"
# ... with the neighbourhood narrowed to 0.1 units at the end (the last epochs are then k-means steps)
CLASSIC_SOM_24_NARROW = "SOM (24×24), classical batch map, final width 0.1"
NARROW_WIDTH = 0.1
VIT_SOM_CLS, VIT_CLS, RESNET = "ViT-SOM-cls", "ViT-cls", "ResNet34"
# The authors' code averages L_som over the K units as well as the batch, so its SOM term is K times
# smaller than the paper's printed 1/N ΣΣ; this row scales γ by K to test the printed formula.
VIT_SOM_CLS_K = "ViT-SOM-cls, γ×K (printed L_som)"
# The same K-fold scaling for DESOM: the original DESOM sums its SOM loss over the units, the authors'
# re-implementation averages it, so their encoder feels γ/K of the original's pull. Does γ×K close
# the gap between our DESOM and the paper's?
DESOM_K = "DESOM, γ×K (SOM loss summed over units, as the original DESOM)"
# ... and its reconstruction term: the original DESOM's squared error instead of the authors' L1, under
# which DESOM's autoencoder can stall for tens of epochs at a reconstruction that barely depends on
# the input (the clustering page shows the curves).
DESOM_MSE = "DESOM, MSE reconstruction (as the original DESOM)"
# ... and its length: the original DESOM's README trains 10,000 iterations of batch 256 (its MNIST
# example, with the default arguments), the authors' recipe 60 epochs. On MNIST and Fashion-MNIST
# 60 epochs are more images than that; on USPS (36 steps an epoch at batch 256) they are 2,160 steps,
# and the curves are still falling.
ORIGINAL_DESOM_STEPS = 10_000
USPS_IMAGES = 9_298          # train (7,291) + test (2,007): the clustering split "all"
DESOM_LONG = "DESOM, 10,000 steps (the original DESOM's length)"
DESOM_MSE_LONG = "DESOM, MSE reconstruction and 10,000 steps (as the original DESOM)"


def gamma_times_units(preset: str, profile: str) -> str:
    """The override that multiplies ``preset``'s γ by its number of SOM units K: the authors average
    L_som over the K units, the printed formula (and the original DESOM) sums over them."""
    from .config import make_config
    som = make_config(preset, profile).som
    return f"som.gamma={som.gamma * som.height * som.width:g}"


def epochs_for_steps(steps: int, images: int, batch_size: int) -> int:
    """The fewest epochs that give at least ``steps`` optimiser steps (the last partial batch dropped)."""
    per_epoch = images // batch_size
    if per_epoch < 1:
        raise ValueError(f"{images} images make no full batch of {batch_size}")
    return -(-steps // per_epoch)


def original_desom_length() -> str:
    """The override that trains ``desom-usps`` for the original DESOM's 10,000 steps (278 epochs)."""
    from .config import get_preset
    batch = get_preset("desom-usps").train.batch_size
    return f"train.epochs={epochs_for_steps(ORIGINAL_DESOM_STEPS, USPS_IMAGES, batch)}"


def length_model(epochs: int) -> str:
    """Row label of the 40×40 recipe trained for ``epochs`` epochs (the training-length study)."""
    return f"{VIT_SOM_40}, {epochs} epochs"


def length_overrides(preset: str, epochs: int) -> tuple[str, ...]:
    """Overrides that train ``preset`` for ``epochs`` epochs with its warm-up scaled the way a
    profile scales it (preset warm-up × epochs / preset epochs, at least 1)."""
    from .config import get_preset
    if epochs < 1:
        raise ValueError(f"epochs must be ≥ 1, got {epochs}")
    t = get_preset(preset).train
    warm = max(1, round(t.warmup_epochs * epochs / t.epochs))
    return (f"train.epochs={epochs}", f"train.warmup_epochs={warm}")


# ----------------------------------------------------------------------------- runs

@dataclass(frozen=True)
class Run:
    """One training run: a preset, ``--set`` overrides and a seed, plus how the book labels it."""

    preset: str
    overrides: tuple[str, ...] = ()
    seed: int = 0
    model: str = ""                                  # row label, e.g. "ViT-SOM (40×40)"
    dataset: str = ""
    factors: tuple[tuple[str, Any], ...] = ()        # ablation variables, e.g. (("distance", "euclidean"),)
    snapshots: bool = False                          # keep weights at a few epochs (latent-progression figure)

    def config(self, profile: str, extra: Sequence[str] = ()):
        from .config import make_config
        return make_config(self.preset, profile, self.seed, [*self.overrides, *extra])


@dataclass
class Plan:
    """What the pipeline (or a notebook's parameters cell) asked for."""

    profile: str = "smoke"
    seeds: tuple[int, ...] = ()
    datasets: tuple[str, ...] | None = None          # None = every dataset of each notebook
    results: str | None = None                       # None = $VITSOM_RESULTS or <repo>/results
    extra: tuple[str, ...] = ()                      # overrides applied to every run (tests shrink runs)
    data_root: str | None = None

    @classmethod
    def make(cls, profile: str = "smoke", seeds: Iterable[int] | None = None, datasets: Iterable[str] | None = None,
             results: str | os.PathLike | None = None, extra: Iterable[str] = (), data_root=None) -> "Plan":
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        if isinstance(seeds, (str, int)):            # papermill -p seeds "0 1" / -p seeds 0
            seeds = str(seeds).replace(",", " ").split()
        if isinstance(datasets, str):
            datasets = datasets.replace(",", " ").split()
        seeds = tuple(sorted({int(s) for s in seeds})) if seeds else DEFAULT_SEEDS[profile]
        if datasets:
            from .data import get_spec
            datasets = tuple(get_spec(d).name for d in datasets)
        return cls(profile, seeds, tuple(datasets) if datasets else None,
                   str(results) if results else None, tuple(extra or ()), str(data_root) if data_root else None)

    def pick(self, candidates: Sequence[str]) -> list[str]:
        return [d for d in candidates if self.datasets is None or d in self.datasets]

    def ablation_datasets(self) -> list[str]:
        """Ablations run on all clustering datasets for ``paper``, on USPS alone for smoke/quick
        (or on the first selected clustering dataset when USPS is not selected)."""
        chosen = self.pick(CLUSTERING_DATASETS)
        if self.profile == "paper" or len(chosen) <= 1:
            return chosen
        return ["usps"] if "usps" in chosen else chosen[:1]

    @property
    def smoke(self) -> bool:
        return self.profile == "smoke"


def _seeded(plan: Plan, preset: str, overrides: Sequence[str] = (), **kw) -> list[Run]:
    snapshots = preset.endswith("-clustering-24x24") and not overrides
    return [Run(preset, tuple(overrides), s, snapshots=snapshots and s == plan.seeds[0], **kw) for s in plan.seeds]


def figure_dataset(plan: Plan) -> str | None:
    """The figures use MNIST, as the paper does; else the first selected clustering dataset."""
    chosen = plan.pick(CLUSTERING_DATASETS)
    return "mnist" if "mnist" in chosen else (chosen[0] if chosen else None)


def figure_run(plan: Plan) -> Run | None:
    ds = figure_dataset(plan)
    if ds is None:
        return None
    return Run(f"{ds}-clustering-24x24", (), plan.seeds[0], VIT_SOM_24, ds, snapshots=True)


def runs(notebook: str, plan: Plan) -> list[Run]:
    """Every run a notebook shows, in training order."""
    out: list[Run] = []
    name = notebook.split("_", 1)[-1] if notebook[:2].isdigit() else notebook
    if name == "clustering":
        extra_ds = plan.ablation_datasets() if plan.smoke else plan.pick(CLUSTERING_DATASETS)
        for ds in plan.pick(CLUSTERING_DATASETS):
            out += _seeded(plan, f"{ds}-clustering", model=VIT_SOM_40, dataset=ds)
            out += _seeded(plan, f"{ds}-clustering-24x24", model=VIT_SOM_24, dataset=ds)
            if ds in extra_ds:
                out += _seeded(plan, f"{ds}-clustering-8x8", model=VIT_SOM_8, dataset=ds)
                out += _seeded(plan, f"{ds}-clustering", ("split=train",), model=HELDOUT, dataset=ds)
                out += _seeded(plan, f"{ds}-clustering-24x24-v1", model=VIT_SOM_24_V1, dataset=ds)
                out += _seeded(plan, f"{ds}-clustering-24x24-v1", (f"train.eps={SMALL_EPS:g}",),
                               model=VIT_SOM_24_V1_EPS, dataset=ds)
            if ds in plan.ablation_datasets():
                warm = ("som.gamma_warmup=true",)
                out += _seeded(plan, f"{ds}-clustering-24x24-v1", warm, model=VIT_SOM_24_V1_WARMUP, dataset=ds)
                out += _seeded(plan, f"{ds}-clustering-24x24-v1", (*warm, f"train.eps={SMALL_EPS:g}"),
                               model=VIT_SOM_24_V1_WARMUP_EPS, dataset=ds)
                for n in TRAINING_LENGTHS[plan.profile]:
                    out += _seeded(plan, f"{ds}-clustering", length_overrides(f"{ds}-clustering", n),
                                   model=length_model(n), dataset=ds)
            out += _seeded(plan, f"desom-{ds}", model=DESOM, dataset=ds)
            if ds in plan.ablation_datasets() and not plan.smoke:
                out += _seeded(plan, f"desom-{ds}", (gamma_times_units(f"desom-{ds}", plan.profile),),
                               model=DESOM_K, dataset=ds)
                out += _seeded(plan, f"desom-{ds}", ("train.recon_loss=mse",), model=DESOM_MSE, dataset=ds)
            if ds == "usps" and plan.profile == "paper":
                long = (original_desom_length(),)
                out += _seeded(plan, "desom-usps", long, model=DESOM_LONG, dataset=ds)
                out += _seeded(plan, "desom-usps", (*long, "train.recon_loss=mse"), model=DESOM_MSE_LONG, dataset=ds)
            out += _seeded(plan, f"som-{ds}", model=RAW_SOM, dataset=ds)
            out += _seeded(plan, f"ksom-{ds}", model=CLASSIC_SOM_24, dataset=ds)
            out += _seeded(plan, f"ksom-{ds}-8x8", model=CLASSIC_SOM_8, dataset=ds)
            out += _seeded(plan, f"ksom-{ds}", (f"som.t_min={NARROW_WIDTH:g}",), model=CLASSIC_SOM_24_NARROW,
                           dataset=ds)
    elif name == "classification":
        for ds in plan.pick(CLASSIFICATION_DATASETS):
            out += _seeded(plan, f"{ds}-classification", model=VIT_SOM_CLS, dataset=ds)
            out += _seeded(plan, f"{ds}-classification", ("som.gamma=0",), model=VIT_CLS, dataset=ds)
            out += _seeded(plan, f"resnet34-{ds}", model=RESNET, dataset=ds)
        out += small_data_runs(plan)
    elif name == "ablation_distance":
        base, label = smoke_base(plan)
        for ds in plan.ablation_datasets():
            for d in DISTANCES:
                ov = () if d == "cosine" else (f"som.distance={d}",)
                out += _seeded(plan, f"{ds}{base}", ov, model=label, dataset=ds,
                               factors=(("distance", d), ("som_input", "patches")))
            # what the SOM sees: the CLS token alone (emb_dim values) instead of the flattened patch tokens
            out += _seeded(plan, f"{ds}{base}", ("som.som_input=cls",), model=label, dataset=ds,
                           factors=(("distance", "cosine"), ("som_input", "cls")))
    elif name == "ablation_grid":
        for ds in plan.ablation_datasets():
            for g in (SMOKE_GRID_SIZES if plan.smoke else GRID_SIZES):
                preset, ov = grid_preset(ds, g)
                out += _seeded(plan, preset, ov, model=f"ViT-SOM ({g}×{g})", dataset=ds, factors=(("grid", g),))
    elif name == "ablation_gamma":
        base, label = smoke_base(plan)
        for ds in plan.ablation_datasets():
            for g in (SMOKE_GAMMAS if plan.smoke else GAMMAS):
                for warm in ((True,) if g == 0 else (True, False)):   # γ = 0: warm-up changes nothing
                    ov = [] if g == 0.005 else [f"som.gamma={g}"]
                    if not warm:
                        ov.append("som.gamma_warmup=false")
                    out += _seeded(plan, f"{ds}{base}", ov, model=label, dataset=ds,
                                   factors=(("gamma", g), ("warmup", warm), ("eps", DEFAULT_EPS)))
            for g in (() if plan.smoke else SMALL_EPS_GAMMAS):
                ov = ([] if g == 0.005 else [f"som.gamma={g}"]) + [f"train.eps={SMALL_EPS:g}"]
                out += _seeded(plan, f"{ds}{base}", ov, model=label, dataset=ds,
                               factors=(("gamma", g), ("warmup", True), ("eps", SMALL_EPS)))
    elif name == "efficiency":
        # the paper's timing table: clustering presumably on MNIST; classification on CIFAR-10
        ds = figure_dataset(plan)
        if ds is not None:
            out += _seeded(plan, f"{ds}-clustering-24x24", model=VIT_SOM_24, dataset=ds)
            out += _seeded(plan, f"{ds}-clustering", model=VIT_SOM_40, dataset=ds)
            out += _seeded(plan, f"desom-{ds}", model=DESOM, dataset=ds)
            out += _seeded(plan, f"som-{ds}", model=RAW_SOM, dataset=ds)
        for ds in plan.pick(("cifar10",)):
            out += _seeded(plan, f"{ds}-classification", model=VIT_SOM_CLS, dataset=ds)
            out += _seeded(plan, f"{ds}-classification", ("som.gamma=0",), model=VIT_CLS, dataset=ds)
            out += _seeded(plan, f"resnet34-{ds}", model=RESNET, dataset=ds)
        # stand-in with data present here: the small-data test's runs with the most labels
        f = max(label_fractions(plan))
        lf = () if f == 1.0 else (f"train.label_fraction={f}",)
        for ds in plan.pick(SMALL_DATA_DATASETS)[:1]:
            out += _seeded(plan, f"{ds}-classification", lf, model=VIT_SOM_CLS, dataset=ds)
            out += _seeded(plan, f"{ds}-classification", (*lf, "som.gamma=0"), model=VIT_CLS, dataset=ds)
    elif name == "figures":
        fr = figure_run(plan)
        if fr is not None:
            out.append(fr)
            out += _seeded(plan, f"{fr.dataset}-clustering", model=VIT_SOM_40, dataset=fr.dataset)
            out += _seeded(plan, f"desom-{fr.dataset}", model=DESOM, dataset=fr.dataset)
        for ds in plan.pick(("cifar10",)):
            out += _seeded(plan, f"{ds}-classification", model=VIT_SOM_CLS, dataset=ds)
            out += _seeded(plan, f"{ds}-classification", ("som.gamma=0",), model=VIT_CLS, dataset=ds)
            out += _seeded(plan, f"resnet34-{ds}", model=RESNET, dataset=ds)
    else:
        raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(NOTEBOOKS)}")
    return _dedupe(out)


def smoke_base(plan: Plan) -> tuple[str, str]:
    """The map the distance and γ ablations vary: the paper's 40×40, or 8×8 in the smoke profile (where
    the Manhattan distance on 40×40 alone would take minutes; the 8×8 run is the clustering table's)."""
    return ("-clustering-8x8", VIT_SOM_8) if plan.smoke else ("-clustering", VIT_SOM_40)


def label_fractions(plan: Plan) -> tuple[float, ...]:
    """The small-data test's label fractions for this profile."""
    return {"smoke": SMOKE_LABEL_FRACTIONS, "quick": QUICK_LABEL_FRACTIONS}.get(plan.profile, LABEL_FRACTIONS)


def small_data_runs(plan: Plan) -> list[Run]:
    """ViT-cls vs ViT-SOM-cls on MNIST/Fashion-MNIST with a fraction of the training labels."""
    out: list[Run] = []
    dss = plan.pick(SMALL_DATA_DATASETS)
    if plan.smoke:
        dss = dss[:1]
    for ds in dss:
        for f in label_fractions(plan):
            lf = () if f == 1.0 else (f"train.label_fraction={f}",)
            if plan.profile == "quick" and f == 0.01:
                # 10 epochs of 480 images are 30 steps: both models stay at chance. Give the 1 %
                # runs about the step budget of the 10 % runs (100 epochs = 300 steps).
                lf = (*lf, "train.epochs=100")
            out += _seeded(plan, f"{ds}-classification", lf, model=VIT_SOM_CLS, dataset=ds,
                           factors=(("label_fraction", f),))
            out += _seeded(plan, f"{ds}-classification", (*lf, "som.gamma=0"), model=VIT_CLS, dataset=ds,
                           factors=(("label_fraction", f),))
            if not plan.smoke:
                out += _seeded(plan, f"{ds}-classification", (*lf, gamma_times_units(f"{ds}-classification", plan.profile)),
                               model=VIT_SOM_CLS_K, dataset=ds, factors=(("label_fraction", f),))
            if plan.profile == "paper":
                out += _seeded(plan, f"resnet34-{ds}", lf, model=RESNET, dataset=ds, factors=(("label_fraction", f),))
    return out


def grid_preset(ds: str, g: int) -> tuple[str, tuple[str, ...]]:
    """Named presets for 8, 24, 40 (so the ablation reuses the clustering table's runs), else overrides."""
    named = {40: f"{ds}-clustering", 24: f"{ds}-clustering-24x24", 8: f"{ds}-clustering-8x8"}
    if g in named:
        return named[g], ()
    return f"{ds}-clustering", (f"som.height={g}", f"som.width={g}")


def _dedupe(rs: list[Run]) -> list[Run]:
    seen, out = set(), []
    for r in rs:
        k = (r.preset, r.overrides, r.seed)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def all_runs(plan: Plan) -> list[Run]:
    return _dedupe([r for nb in NOTEBOOKS for r in runs(nb, plan)])


def snapshot_epochs(epochs: int) -> tuple[int, ...]:
    """Epochs whose weights the latent-progression figure needs: 0 (init), two early ones, the last."""
    return tuple(sorted({0, max(1, epochs // 50), max(1, epochs // 5), epochs}))


# ----------------------------------------------------------------------------- running

PROGRESS_ENV = "VITSOM_PROGRESS_LOG"


def human_seconds(s: float) -> str:
    """45 s, 12 min, 3.2 h."""
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


class ProgressLog:
    """Training progress of a notebook, for the terminal that runs the pipeline.

    The pipeline names a file in ``$VITSOM_PROGRESS_LOG`` before it executes a notebook and prints
    what is appended to it, so a long profile is never silent while the executed notebook (and so the
    book) stays free of progress output. Epoch lines are written for the first and last epoch and at
    most every ``every_s`` seconds in between. Without the variable nothing is written (and
    :func:`execute` shows a progress bar instead)."""

    def __init__(self, path: str | None = None, every_s: float = 30.0):
        self.path = path if path is not None else os.environ.get(PROGRESS_ENV) or None
        self.every_s = every_s
        self._last = 0.0

    @property
    def active(self) -> bool:
        return self.path is not None

    def write(self, line: str) -> None:
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line.rstrip("\n") + "\n")

    def train_kwargs(self, label: str) -> dict[str, Any]:
        """``progress``/``on_epoch`` for :func:`vitsom.train.train`: epoch lines into the file under
        the pipeline, else train's own progress bar."""
        return {"progress": not self.active, "on_epoch": self.epoch_callback(label) if self.active else None}

    def epoch_callback(self, label: str) -> Callable[[dict], None]:
        """An ``on_epoch`` for :func:`vitsom.train.train` writing '<label>: epoch 3/10, loss …, … left'."""
        def on_epoch(e: dict) -> None:
            now = time.monotonic()
            if e["epoch"] not in (1, e["epochs"]) and now - self._last < self.every_s:
                return
            self._last = now
            left = e["epoch_s"] * (e["epochs"] - e["epoch"])
            self.write(f"{label}: epoch {e['epoch']}/{e['epochs']}, loss {e['loss']:.4g}, "
                       f"{e['epoch_s']:.1f} s/epoch" + (f", about {human_seconds(left)} left" if left > 0 else ""))
        return on_epoch


@dataclass
class Outcome:
    run: Run
    status: str                      # existing | trained | not-run | no-data | unknown-preset | diverged
    record: dict | None = None
    note: str = ""
    seconds: float = 0.0


def preset_known(name: str) -> bool:
    from . import config
    try:   # baselines may register presets on import
        from . import baselines  # noqa: F401
    except ImportError:
        pass
    return name in config.PRESETS


def execute(rs: Sequence[Run], plan: Plan, train_missing: bool = True, log: Callable[[str], None] = print) -> list[Outcome]:
    """Train (or load) every run; one :class:`Outcome` per run. Each trained, diverged or unknown run
    gets a line of its own; consecutive seeds of one setting that were loaded, not run or lack data
    share one line (``[existing] usps-clustering seeds 0 1 2 3 4``)."""
    from . import data as vdata
    from .records import existing_record_path, load_record
    from .train import NonFiniteLossError, train
    out: list[Outcome] = []
    missing_data: dict[str, str] = {}
    progress = ProgressLog()
    quiet: list[Outcome] = []        # consecutive seeds of one setting with nothing to report: one line for all

    def flush_quiet() -> None:
        if quiet:
            o, ov = quiet[0], " ".join(quiet[0].run.overrides)
            seeds = " ".join(str(q.run.seed) for q in quiet)
            log(f"[{o.status:>14s}] {o.run.preset}{' ' + ov if ov else ''} seed{'s' if len(quiet) > 1 else ''} {seeds}"
                + (f": {o.note}" if o.note and o.status != "no-data" else ""))
            quiet.clear()

    for i, r in enumerate(rs, 1):
        t0 = time.perf_counter()
        ov = " ".join(r.overrides)
        if not preset_known(r.preset):
            o = Outcome(r, "unknown-preset", note="no such preset in vitsom")
        else:
            cfg = r.config(plan.profile, plan.extra)
            path = existing_record_path(cfg, plan.results)    # its own, or the same run under another profile
            if path is not None:
                o = Outcome(r, "existing", load_record(path))
            elif not train_missing:
                o = Outcome(r, "not-run", note="no record yet (book-only build: nothing is trained)")
            elif cfg.dataset in missing_data:
                o = Outcome(r, "no-data", note=missing_data[cfg.dataset])
            else:
                flush_quiet()
                snaps = snapshot_epochs(cfg.train.epochs) if r.snapshots else ()
                label = f"[{i}/{len(rs)}] {r.preset}{' ' + ov if ov else ''} seed {r.seed}"
                progress.write(f"{label}: training, {cfg.train.epochs} epochs")

                def train_log(msg: str) -> None:      # train's own lines (resume, summary) reach the terminal too
                    log(msg)
                    progress.write(msg)
                try:
                    rec = train(cfg, results=plan.results, data_root=plan.data_root, snapshot_epochs=snaps,
                                log=train_log, **progress.train_kwargs(label))
                    o = Outcome(r, "trained", rec)
                except (vdata.DataNotFoundError, URLError) as e:   # URLError: a failed download of a folder dataset
                    missing_data[cfg.dataset] = f"no {DATASET_NAMES.get(cfg.dataset, cfg.dataset)} data in VITSOM_DATA"
                    o = Outcome(r, "no-data", note=missing_data[cfg.dataset])
                    progress.write(f"{label}: {missing_data[cfg.dataset]}, so its runs are skipped "
                                   f"({str(e).splitlines()[0][:300]})")
                except NonFiniteLossError as e:
                    o = Outcome(r, "diverged", note=str(e))
        o.seconds = time.perf_counter() - t0
        out.append(o)
        if o.status in ("existing", "not-run", "no-data"):
            if quiet and (quiet[0].run.preset, quiet[0].run.overrides, quiet[0].status, quiet[0].note) != \
                    (r.preset, r.overrides, o.status, o.note):
                flush_quiet()
            quiet.append(o)
            continue
        flush_quiet()
        line = (f"[{o.status:>14s}] {r.preset}{' ' + ov if ov else ''} seed {r.seed}"
                + (f" ({o.seconds:.0f} s)" if o.status == "trained" else "")
                + (f": {o.note}" if o.note and o.status != "no-data" else ""))
        log(line)
        if o.status in ("trained", "diverged", "unknown-preset"):
            progress.write(line)
    flush_quiet()
    skipped = [o for o in out if o.record is None]
    if skipped:
        log(f"{len(skipped)} of {len(out)} runs have no record: "
            + ", ".join(sorted({f'{o.run.preset} ({o.status})' for o in skipped})))
    return out



def fetch_data(datasets: Iterable[str], root=None, log: Callable[[str], None] = print) -> None:
    """Download the in-memory datasets (for Colab, where the machine is online)."""
    from . import data as vdata
    for ds in datasets:
        spec = vdata.get_spec(ds)
        if not spec.in_memory:
            log(f"{spec.name}: image-folder dataset, not fetched (see data/README.md)")
            continue
        try:
            vdata.load_arrays(spec.name, "all", root, download=True)
        except Exception as e:  # noqa: BLE001 - report and go on: the run list will say no-data
            log(f"{spec.name}: could not fetch ({type(e).__name__}: {str(e).splitlines()[0]})")


def _train_again(run: Run, plan: Plan, cfg, snapshots: tuple[int, ...], log: Callable[[str], None]) -> dict:
    """Train ``run`` again into a scratch results folder (so the committed record stays as it is),
    only to put its weights back in ``runs/<key>/``; returns the scratch record."""
    from .records import runs_root
    from .train import train
    scratch = runs_root() / "_figure_records"
    msg = f"weights of {run.preset} seed {run.seed} missing: training it again (record kept in {scratch})"
    log(msg)
    progress = ProgressLog()
    progress.write(msg)
    return train(cfg, results=scratch, data_root=plan.data_root, force=True, snapshot_epochs=snapshots, log=log,
                 **progress.train_kwargs(f"{run.preset} seed {run.seed} (figure weights)"))


def ensure_snapshots(run: Run, plan: Plan, train_missing: bool = True,
                     log: Callable[[str], None] = print) -> tuple[tuple[int, ...], str]:
    """Make sure the weight snapshots of the figure run are on disk.

    Returns (epochs available, note). Weights live in the git-ignored ``runs/``, so a committed
    paper record may come without them: when ``train_missing``, the run is trained again into a
    scratch results folder (the committed record stays as it is) to recreate them."""
    from .records import run_dir
    cfg = run.config(plan.profile, plan.extra)
    want = snapshot_epochs(cfg.train.epochs)
    d = run_dir(cfg)

    def have() -> tuple[int, ...]:
        return tuple(e for e in want if (d / f"epoch_{e}.pt").exists())

    if len(have()) == len(want) and (d / "model.pt").exists():
        return want, ""
    if not train_missing:
        return have(), (f"the weight snapshots of {run.preset} seed {run.seed} are not on this machine (runs/ is "
                        "not committed); run the pipeline without --book-only to recreate them")
    _train_again(run, plan, cfg, want, log)
    return have(), "weights were recreated by training the run again (the record shown is the original one)"


def ensure_weights(run: Run, record: dict, plan: Plan, train_missing: bool = True,
                   log: Callable[[str], None] = print) -> tuple[dict | None, str]:
    """The record whose trained weights are in ``runs/`` for ``run``: ``record`` itself when its
    weights are on this machine; else, when ``train_missing``, the record of training the run again
    (committed records come without weights: ``runs/`` is git-ignored), whose metrics describe the
    weights now on disk; else None. The note says which, for a figure's caption."""
    if (runs_root_of(record) / "model.pt").exists():
        return record, ""
    name = " ".join((run.preset, *run.overrides))          # runs of one preset differ by their overrides
    if not train_missing:
        return None, (f"the weights of {name} seed {run.seed} are not on this machine (runs/ is not "
                      "committed); run the pipeline without --book-only to recreate them")
    again = _train_again(run, plan, run.config(plan.profile, plan.extra), (), log)
    p_new, p_old = again["metrics"].get("purity"), record["metrics"].get("purity")
    same = "" if p_new is None or p_old is None else (
        f", purity {p_new:.4f} (the record: {p_old:.4f})")
    return again, f"{name} seed {run.seed} trained again on {again['device']['type'].upper()} for its weights{same}"


def runs_root_of(record: dict) -> Path:
    """The folder holding a record's weights (``runs/<key>/``; git-ignored)."""
    from .records import runs_root
    return runs_root() / record["key"]
