"""The experiment plan of the book, the paper's reported numbers, and the tables built from run records.

One place for three things:

* **the runs**: :func:`runs` lists, for each notebook and profile, every run (preset + overrides +
  seed) the notebook shows. Default seeds: smoke 1, quick 3, paper 5. ``seeds``/``datasets`` narrow
  the plan. The smoke plan is cut down (ablations and the extra clustering variants on USPS only,
  the small-data test on MNIST only) so that ``make reproduce`` stays within 15 minutes on a
  2-core CPU.
* **the paper's numbers**: :data:`REPORTED`, every number of the paper's tables as data, each
  tagged with its source in ``shared/reference/paper-digest.md``. They are always shown marked
  "reported".
* **deviations**: :data:`DEVIATIONS`, every known difference between our protocol and the
  authors', listed on the book's reproduction-status page.

:func:`execute` trains what a notebook needs through :func:`vitsom.train.train` (existing records
are reused) and never skips a run silently: each run comes back as an :class:`Outcome` whose
``status`` says what happened (``existing``, ``trained``, ``not-run``, ``no-data``,
``unknown-preset``, ``diverged``).
"""
from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from urllib.error import URLError

import numpy as np

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
GRID_SIZES = (8, 16, 24, 32, 40)
SMOKE_GRID_SIZES = (8, 24, 40)           # the clustering table's maps: nothing extra to train
GAMMAS = (0.0, 0.0005, 0.001, 0.005, 0.01, 0.05)
SMOKE_GAMMAS = (0.0, 0.005)
# Adam's ε: the prototypes' gradients sit far below PyTorch's default 1e-8 in these recipes, where
# Adam's step becomes lr·g/ε (SGD whose step grows with γ). The γ page reruns a few γ (with
# warm-up) at ε = 1e-12, where Adam's step is scale-free again (quick and paper profiles).
DEFAULT_EPS = 1e-8
SMALL_EPS = 1e-12
SMALL_EPS_GAMMAS = (0.0005, 0.005, 0.05)
LABEL_FRACTIONS = (0.01, 0.1, 1.0)
# In the smoke profile every training set is capped at 1,024 images, so fractions 0.1 and 1.0 of
# MNIST's 48,000 training images both become 1,024 images. Smoke runs 0.1 only: with 0.01 (480
# images, below the cap) vitsom.train also scores the full 22,000-image val and test sets, which
# costs more than the training itself.
SMOKE_LABEL_FRACTIONS = (0.1,)
# The quick profile (sized for a CPU) runs the 1 % and 10 % fractions of the two small models; the
# 100 % runs (48,000 images) and ResNet34 (about half an hour per run on 2 CPU cores) are paper-only.
QUICK_LABEL_FRACTIONS = (0.01, 0.1)

# Row labels
VIT_SOM_40, VIT_SOM_24, VIT_SOM_8 = "ViT-SOM (40×40)", "ViT-SOM (24×24)", "ViT-SOM (8×8, equal clusters)"
HELDOUT = "ViT-SOM (40×40), held-out protocol"
DESOM, RAW_SOM = "DESOM", "SOM (24×24)"
VIT_SOM_CLS, VIT_CLS, RESNET = "ViT-SOM-cls", "ViT-cls", "ResNet34"
# The authors' code averages L_som over the K units as well as the batch, so its SOM term is K times
# smaller than the paper's printed 1/N ΣΣ; this row scales γ by K to test the printed formula.
VIT_SOM_CLS_K = "ViT-SOM-cls, γ×K (printed L_som)"


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
            out += _seeded(plan, f"desom-{ds}", model=DESOM, dataset=ds)
            out += _seeded(plan, f"som-{ds}", model=RAW_SOM, dataset=ds)
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
                out += _seeded(plan, f"{ds}{base}", ov, model=label, dataset=ds, factors=(("distance", d),))
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
                from .config import make_config
                som = make_config(f"{ds}-classification", plan.profile).som
                out += _seeded(plan, f"{ds}-classification", (*lf, f"som.gamma={som.gamma * som.height * som.width:g}"),
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
    """Train (or load) every run; one :class:`Outcome` per run, each printed on one line."""
    from . import data as vdata
    from .records import load_record, record_path
    from .train import NonFiniteLossError, train
    out: list[Outcome] = []
    missing_data: dict[str, str] = {}
    for r in rs:
        t0 = time.perf_counter()
        if not preset_known(r.preset):
            o = Outcome(r, "unknown-preset", note="no such preset in vitsom")
        else:
            cfg = r.config(plan.profile, plan.extra)
            path = record_path(cfg, plan.results)
            if path.exists():
                o = Outcome(r, "existing", load_record(path))
            elif not train_missing:
                o = Outcome(r, "not-run", note="no record yet (book-only build: nothing is trained)")
            elif cfg.dataset in missing_data:
                o = Outcome(r, "no-data", note=missing_data[cfg.dataset])
            else:
                snaps = snapshot_epochs(cfg.train.epochs) if r.snapshots else ()
                try:
                    rec = train(cfg, results=plan.results, data_root=plan.data_root, progress=False,
                                snapshot_epochs=snaps, log=log)
                    o = Outcome(r, "trained", rec)
                except (vdata.DataNotFoundError, URLError):     # URLError: a failed download of a folder dataset
                    missing_data[cfg.dataset] = f"no {DATASET_NAMES.get(cfg.dataset, cfg.dataset)} data in VITSOM_DATA"
                    o = Outcome(r, "no-data", note=missing_data[cfg.dataset])
                except NonFiniteLossError as e:
                    o = Outcome(r, "diverged", note=str(e))
        o.seconds = time.perf_counter() - t0
        out.append(o)
        ov = " ".join(r.overrides)
        log(f"[{o.status:>14s}] {r.preset} {ov} seed {r.seed}" + (f" ({o.seconds:.0f} s)" if o.status == "trained" else "")
            + (f": {o.note}" if o.note and o.status != "no-data" else ""))
    skipped = [o for o in out if o.record is None]
    if skipped:
        log(f"{len(skipped)} of {len(out)} runs have no record: "
            + ", ".join(sorted({f'{o.run.preset} ({o.status})' for o in skipped})))
    return out


# ----------------------------------------------------------------------------- records → tables

def device_label(rec: dict) -> str:
    d = rec.get("device", {})
    if d.get("type") == "cuda":
        return f"cuda ({d.get('name', '?')})"
    threads = d.get("cpu_threads")
    return f"{d.get('type', '?')} ({d.get('name') or '?'}" + (f", {threads} threads)" if threads else ")")


def record_row(rec: dict) -> dict[str, Any]:
    """Flat numbers of one record (column names are what :data:`REPORTED` refers to)."""
    m = rec.get("metrics", {})
    p = rec.get("params", {})
    cfg = rec.get("config", {})
    epochs = cfg.get("train", {}).get("epochs") or 1
    pm = rec.get("peak_memory", {})
    row: dict[str, Any] = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    test = rec.get("eval", {}).get("test", {})
    if "heldout_purity" in test:
        row["heldout_purity"] = test["heldout_purity"]
    row.update(
        params_total_M=p.get("total", float("nan")) / 1e6,
        params_enc_head_M=(p.get("encoder", 0) + p.get("head", 0)) / 1e6,
        params_som_M=p.get("som", 0) / 1e6,
        wall_time_s=rec.get("wall_time_s"), train_time_s=rec.get("train_time_s"),
        time_per_epoch_s=(rec.get("train_time_s") or float("nan")) / epochs,
        inference_time_s=rec.get("inference_time_s"),
        peak_cuda_gb=pm.get("cuda_max_allocated_gb", float("nan")),
        peak_rss_gb=pm.get("process_max_rss_gb", float("nan")),
        epochs=epochs, steps=rec.get("steps"), train_samples=rec.get("train_samples"),
        profile=rec.get("profile"), device=device_label(rec), device_type=rec.get("device", {}).get("type"),
    )
    hist = rec.get("history") or []
    if hist:
        row["final_task_loss"] = hist[-1].get("task_loss")
    sg = rec.get("diagnostics", {}).get("som_gradient", {})
    if "ratio" in sg:
        row["som_grad_ratio"] = sg["ratio"]          # |∇_enc γ·L_som| / |∇_enc L_task| at the end
    pg = rec.get("diagnostics", {}).get("prototype_gradient", {})
    if "rms_bmu_rows_over_eps" in pg:
        row["proto_grad_over_eps"] = pg["rms_bmu_rows_over_eps"]   # RMS γ_t·∂L_som/∂W (BMU rows) / Adam's ε
    return row


def frame(outcomes: Sequence[Outcome]):
    """One row per run (records and missing runs alike), with the run's labels and its numbers."""
    import pandas as pd
    rows = []
    for o in outcomes:
        r = o.run
        row: dict[str, Any] = {"model": r.model, "dataset": r.dataset, "preset": r.preset,
                               "overrides": " ".join(r.overrides), "seed": r.seed, "status": o.status, "note": o.note}
        row.update(dict(r.factors))
        if o.record is not None:
            row.update(record_row(o.record))
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(values) -> tuple[float, float, int]:
    """Mean, population std (np.std, as the paper) and count of the finite values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std()), int(v.size)


def fmt(mean: float, std: float | None = None, n: int | None = None, digits: int = 3) -> str:
    """``0.936 ± 0.003`` (n ≥ 2), ``0.936`` (n = 1: the tables' provenance line gives the seeds), ``—``."""
    if mean is None or not np.isfinite(mean):
        return "—"
    s = f"{mean:.{digits}f}"
    if n == 1:
        return s
    if std is not None and np.isfinite(std):
        s += f" ± {std:.{digits}f}"
    return s


def fmt_reported(value: float, std: float | None, digits: int = 3) -> str:
    s = f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    return s + " (reported)"


def cell(df, metric: str, digits: int = 3, **where) -> str:
    """Formatted mean ± std of ``metric`` over the rows matching ``where`` (e.g. model=..., dataset=...)."""
    sub = df
    for k, v in where.items():
        if k not in sub.columns:
            return "—"
        sub = sub[sub[k] == v]
    if metric not in sub.columns or sub.empty:
        return "—"
    return fmt(*mean_std(sub[metric].tolist()), digits=digits)


def status_of(df, **where) -> str:
    """Why a cell is empty: the statuses of the matching runs, e.g. 'no-data'."""
    sub = df
    for k, v in where.items():
        if k not in sub.columns:
            return "not planned"
        sub = sub[sub[k] == v]
    if sub.empty:
        return "not planned for this profile/selection"
    st = sorted({f"{r.status}: {r.note}" if r.note else r.status for r in sub.itertuples()})
    return "; ".join(st)


def provenance(df, plan: Plan | None = None) -> str:
    """'ours: profile smoke, cpu (x86_64, 2 threads), seeds 0' for the rows that have a record."""
    if df is None or df.empty or "profile" not in df.columns or df["profile"].isna().all():
        return "ours: no run records yet"
    have = df[df["profile"].notna()]
    profiles = ", ".join(sorted(set(have["profile"])))
    devices = "; ".join(sorted(set(have["device"])))
    seeds = ", ".join(str(s) for s in sorted(set(have["seed"])))
    s = f"ours: profile {profiles} · device {devices} · seeds {seeds}"
    if plan is not None and plan.extra:
        s += " · extra overrides " + " ".join(plan.extra)
    return s


def profile_banner(profile: str) -> str:
    """A plain statement of what the profile's numbers are (Markdown)."""
    from .config import PROFILES as P
    epochs, max_samples, _ = P[profile]
    if profile == "smoke":
        return (f"**Smoke profile: every number of ours on this page is a pipeline check, not a reproduction.** "
                f"Each run trains {epochs} epochs on a fixed {max_samples:,}-image subset (the paper trains "
                "500 epochs on the full data), so the scores below only show that the code runs end to end. "
                "Run `make reproduce PROFILE=paper` on a GPU for the real comparison.")
    if profile == "quick":
        return (f"**Quick profile: a partial reproduction.** Each run trains {epochs} epochs on the full "
                "data instead of the paper's 500; expect lower scores than the paper's.")
    return "**Paper profile: the authors' full recipes** (500 epochs, full data); see the status page for known deviations."


def show_table(df, table_id: str, caption: str, note: str = "", escape: bool = True) -> None:
    """Display a DataFrame as an HTML table carrying a stable marker (``id`` and ``data-vitsom-table``).

    ``escape=False`` for cells built with :func:`pair` (already escaped, with a line break)."""
    from IPython.display import HTML, display
    display(HTML(table_html(df, table_id, caption, note, escape)))


def pair(ours: str, paper: str) -> str:
    """One table cell holding ours above the paper's (reported) number."""
    return (f'<span class="ours">ours: {html.escape(ours)}</span><br>'
            f'<span class="paper">paper: {html.escape(paper)}</span>')


def table_html(df, table_id: str, caption: str, note: str = "", escape: bool = True) -> str:
    body = df.to_html(index=False, border=0, classes="vitsom-table", escape=escape, na_rep="—")
    return (f'<div class="vitsom-table-wrap" id="{table_id}" data-vitsom-table="{table_id}">'
            f'<p class="vitsom-caption"><b>{html.escape(caption)}</b></p>{body}'
            + (f'<p class="vitsom-note">{html.escape(note)}</p>' if note else "") + "</div>")


def show_figure(fig, figure_id: str, caption: str) -> None:
    """Display a matplotlib Figure after a marker (``id``/``data-vitsom-figure``) and before its caption."""
    import io
    from IPython.display import HTML, Image, display
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)      # PNG bytes: works without pyplot's inline hooks
    display(HTML(f'<div class="vitsom-figure" id="{figure_id}" data-vitsom-figure="{figure_id}"></div>'))
    display(Image(data=buf.getvalue(), format="png"))
    display(HTML(f'<p class="vitsom-caption">{html.escape(caption)}</p>'))


def run_page(notebook: str, profile: str, seeds=None, datasets=None, results_dir=None,
             extra_overrides: Sequence[str] = (), train_missing: bool = True, on_colab: bool = False):
    """The shared first step of every notebook: plan → (fetch data on Colab) → banner → train or
    read every run → table of runs. Returns ``(plan, outcomes, frame, provenance)``."""
    from IPython.display import Markdown, display
    plan = Plan.make(profile, seeds, datasets, results_dir, extra_overrides)
    planned = runs(notebook, plan)
    if on_colab and train_missing:
        fetch_data(sorted({r.dataset for r in planned}))
    display(Markdown(profile_banner(plan.profile)))
    outcomes = execute(planned, plan, train_missing=train_missing)
    df = frame(outcomes)
    show_outcomes(outcomes)
    return plan, outcomes, df, provenance(df, plan)


def show_outcomes(outcomes: Sequence[Outcome]) -> None:
    """The run list of a notebook: what exists, what was trained, what could not run and why."""
    import pandas as pd
    rows = [{"preset": o.run.preset, "overrides": " ".join(o.run.overrides) or "—", "seed": o.run.seed,
             "status": o.status, "note": o.note} for o in outcomes]
    df = pd.DataFrame(rows)
    if df.empty:
        show_table(df, "tbl-runs", "Runs of this page: none planned for this selection")
        return
    counts = df["status"].value_counts().to_dict()
    df = (df.groupby(["preset", "overrides", "status", "note"], sort=False)["seed"]
          .apply(lambda s: " ".join(map(str, s))).reset_index()[["preset", "overrides", "seed", "status", "note"]]
          .rename(columns={"seed": "seeds"}))
    show_table(df, "tbl-runs", "Runs of this page (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")")


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
    notes = {"SOM-VAE": "not implemented here"}
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
                 RAW_SOM: "576 units × 784 pixels"}.get(model, notes.get(model, ""))
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
        out.append(Reported("train_time", label, "training time (s)", tm, ts, "s", src, mk("wall_time_s"), ds, note))
        out.append(Reported("inference_time", label, "inference time (s)", im, is_, "s", src, mk("inference_time_s"), ds,
                            "" if ours else "not implemented here"))
        mnote = "" if ours else "not implemented here"
        if task == "classification" and model.startswith("ViT-SOM"):
            mnote = "labelled 'ViT-SOM (40×40)' in the source"
        out.append(Reported("memory", label, "peak GPU memory (GB)", mem, None, "GB", src, mk("peak_cuda_gb"), ds, mnote))
    return out


def _figure_v1_reported() -> list[Reported]:
    src = "v1-era dual-axis figure, old plotting script (digest §5.5)"
    rows = [("SOM (8×8)", 1.8, "fmnist", 0.712, None), ("SOM-VAE", 3.7, "fmnist", 0.739, None),
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
            note += " (our raw SOM is 24×24)"
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
    "train_time": "The paper's GPU, dataset and epoch count for these timings are not stated. Ours: whole-run wall "
                  "time from the records (clustering on MNIST, classification on CIFAR-10); compared numerically "
                  "only for paper-profile runs on a GPU.",
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

    Columns: section, model, column, paper, ours, difference, seeds, profile, device, note, source."""
    import pandas as pd
    from .records import load_record, record_path
    rows = []
    cache: dict[tuple, list[dict]] = {}
    for rp in REPORTED:
        recs: list[dict] = []
        why = ""
        if rp.ours is None:
            why = rp.note or "not implemented here"
        elif not preset_known(rp.ours.preset):
            why = f"preset {rp.ours.preset} not available"
        else:
            key = (rp.ours.preset, rp.ours.overrides)
            if key not in cache:
                got = []
                for s in plan.seeds:
                    p = record_path(Run(rp.ours.preset, rp.ours.overrides, s).config(plan.profile, plan.extra), plan.results)
                    if p.exists():
                        got.append(load_record(p))
                cache[key] = got
            recs = cache[key]
            if not recs:
                if plan.datasets is not None and rp.dataset not in plan.datasets:
                    why = "dataset not selected"
                else:
                    why = _missing_reason(rp.dataset, plan)
        vals = [record_row(r).get(rp.ours.metric) for r in recs] if rp.ours else []
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        if recs and not vals and rp.ours and rp.ours.metric == "peak_cuda_gb":
            why = "our runs were on CPU"
        m, sd, n = mean_std(vals)
        d = (2 if rp.value >= 1 else 3) if rp.unit == "M" else _digits(rp)
        diff = ""
        if n:
            comparable = rp.unit in ("fraction", "M") or (
                plan.profile == "paper" and all(r.get("device", {}).get("type") == "cuda" for r in recs))
            diff = f"{m - rp.value:+.{d}f}" if comparable else "not comparable"
        ours = "—"
        if n:
            ours = (f"{m:.2f}M" if m >= 1 else f"{m:.3f}M") if rp.unit == "M" else fmt(m, sd, n, d)
        rows.append({
            "section": rp.section, "model": rp.model, "column": DATASET_NAMES.get(rp.column, rp.column),
            "paper": fmt_paper(rp), "ours": ours, "difference": diff or "—",
            "seeds": ", ".join(str(r["seed"]) for r in recs if rp.ours) if n else "—",
            "profile": plan.profile if n else "—",
            "device": "; ".join(sorted({device_label(r) for r in recs})) if n else "—",
            "note": rp.note if n else why,
            "source": rp.source,
        })
    return pd.DataFrame(rows)


def _missing_reason(dataset: str, plan: Plan) -> str:
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


# ----------------------------------------------------------------------------- deviations

DEVIATIONS: list[tuple[str, str]] = [
    ("Purity on every image",
     "Purity and NMI are computed on all 70,000 MNIST / Fashion-MNIST images (9,298 for USPS); the authors' "
     "evaluation loader drops the last partial batch (69,888 images at batch 128)."),
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
     "v1-era recipe (200 epochs, batch 256, T_max 24, γ 0.0005)."),
    ("SOM-loss scale",
     "L_som is the mean over batch and units (the authors' code), K times smaller than the printed 1/N ΣΣ form; "
     "γ values are the code's."),
    ("Flowers-17 split",
     "The authors test on all 1,360 Flowers-17 images, which overlap training. We split Flowers-17 60/20/20 "
     "(816/272/272 images, seeded) into train, validation and test, so our test images are never trained on."),
    ("Classification checkpoint",
     "Both ViT-SOM-cls and ViT-cls are evaluated at the last epoch; the authors evaluate their ViT baseline at "
     "its best-validation checkpoint and ViT-SOM at the last epoch."),
    ("ViT-cls loss",
     "ViT-cls is the ViT-SOM-cls recipe with γ = 0 (the SOM is computed but does not train anything), so it keeps "
     "label smoothing 0.1; the authors' ViT baseline trains without label smoothing."),
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
     "Training time is the whole run's wall time (data loading, training and evaluation) and inference time one "
     "pass over the evaluation set, as the authors measure; the paper's GPU is unknown, so only runs on a GPU "
     "with the paper profile are compared numerically. On CPU the peak memory is the process's peak RSS "
     "during the run (Linux VmHWM, reset when the run starts); records made before 2026-11-27, or on systems "
     "without /proc/self/clear_refs, hold the process's lifetime maximum instead (their rss_scope says which)."),
    ("Ablations",
     "The paper reports no ablation numbers (digest §0.3); our distance, grid-size and γ ablations have no "
     "paper counterpart. The grid ablation keeps T_max = 20 for every map size."),
]


# ----------------------------------------------------------------------------- figure helpers (analysis)

def umap_embed(z: np.ndarray, seed: int = 42) -> np.ndarray:
    """UMAP with the authors' settings (n_neighbors 15, min_dist 0.1, cosine, random_state 42)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # umap/numba/tqdm import and fit warnings
        import umap
        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed).fit_transform(z)


def subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a fixed random subset of size min(n, k)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n)[:k]) if n > k else np.arange(n)


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


def missing_note(outcomes: Sequence[Outcome]) -> str:
    """One sentence listing the runs without a record and why (so no cell is empty silently)."""
    miss: dict[str, set[str]] = {}
    for o in outcomes:
        if o.record is None:
            miss.setdefault(f"{o.status}: {o.note}" if o.note else o.status, set()).add(o.run.preset)
    if not miss:
        return "Every planned run has a record."
    return "Runs without a record (shown as —): " + "; ".join(
        f"{', '.join(sorted(p))} ({why})" for why, p in miss.items()) + "."


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


def ensure_snapshots(run: Run, plan: Plan, train_missing: bool = True,
                     log: Callable[[str], None] = print) -> tuple[tuple[int, ...], str]:
    """Make sure the weight snapshots of the figure run are on disk.

    Returns (epochs available, note). Weights live in the git-ignored ``runs/``, so a committed
    paper record may come without them: when ``train_missing``, the run is trained again into a
    scratch results folder (the committed record stays as it is) to recreate them."""
    from .records import runs_root
    from .train import train
    cfg = run.config(plan.profile, plan.extra)
    want = snapshot_epochs(cfg.train.epochs)
    d = runs_root() / cfg.key()

    def have() -> tuple[int, ...]:
        return tuple(e for e in want if (d / f"epoch_{e}.pt").exists())

    if len(have()) == len(want) and (d / "model.pt").exists():
        return want, ""
    if not train_missing:
        return have(), (f"the weight snapshots of {run.preset} seed {run.seed} are not on this machine (runs/ is "
                        "not committed); run the pipeline without --book-only to recreate them")
    scratch = runs_root() / "_figure_records"
    log(f"weights of {run.preset} seed {run.seed} missing: training it again (record kept in {scratch})")
    train(cfg, results=scratch, data_root=plan.data_root, force=True, progress=False, snapshot_epochs=want, log=log)
    return have(), "weights were recreated by training the run again (the record shown is the original one)"


def params_cell(df, metric: str = "params_total_M", datasets: Sequence[str] = CLUSTERING_DATASETS, **where) -> str:
    """'5.02 M (MNIST)': the parameter count of the first dataset (in ``datasets`` order) with a record."""
    for ds in datasets:
        sub = df
        for k, v in {**where, "dataset": ds}.items():
            if k not in sub.columns:
                return "—"
            sub = sub[sub[k] == v]
        if metric in sub.columns:
            m, _, n = mean_std(sub[metric].tolist())
            if n:
                return f"{m:.2f} M ({DATASET_NAMES.get(ds, ds)})"
    return "—"


def runs_root_of(record: dict) -> Path:
    """The folder holding a record's weights (``runs/<key>/``; git-ignored)."""
    from .records import runs_root
    return runs_root() / record["key"]
