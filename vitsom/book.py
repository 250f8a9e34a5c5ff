"""What the notebooks' pages are built from: records → DataFrames, formatted cells, HTML tables
and figures with stable markers, and :func:`run_page`, every notebook's first step.

Numbers are mean ± population std over seeds (``np.std``, as the paper). Nothing here trains:
:func:`run_page` asks :func:`vitsom.experiments.execute` for the runs.
"""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

import numpy as np

from .experiments import CLUSTERING_DATASETS, DATASET_NAMES, Outcome, Plan, execute, fetch_data, runs
from .records import bf16_som_distances, iter_repeats

# ----------------------------------------------------------------------------- records → tables

RECORDED = ("existing", "trained")   # the statuses of a planned run that has a record


def device_label(rec: dict) -> str:
    d = rec.get("device", {})
    if d.get("type") == "cuda":
        return (f"cuda ({d.get('name', '?')}" + (", shared with other runs" if d.get("shared") else "")
                + (", bf16 SOM distances" if bf16_som_distances(rec) else "") + ")")
    where = f"{d.get('type', '?')} ({d.get('name') or '?'}"
    threads = d.get("cpu_threads")
    return where + (f", {threads} thread{'s' if threads != 1 else ''})" if threads else ")")


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
        params_vit_k=(p.get("encoder", 0) + p.get("decoder", 0)) / 1e3,   # the network without prototypes and head
        wall_time_s=rec.get("wall_time_s"), train_time_s=rec.get("train_time_s"),
        time_per_epoch_s=(rec.get("train_time_s") or float("nan")) / epochs,
        inference_time_s=rec.get("inference_time_s"),
        peak_cuda_gb=pm.get("cuda_max_allocated_gb", float("nan")),
        peak_rss_gb=pm.get("process_max_rss_gb", float("nan")), rss_scope=pm.get("rss_scope", "process"),
        cpu_share=rec.get("cpu_share") if rec.get("cpu_share") is not None else float("nan"),
        epochs=epochs, steps=rec.get("steps"), train_samples=rec.get("train_samples"),
        profile=rec.get("profile"), device=device_label(rec), device_type=rec.get("device", {}).get("type"),
        # made before the SOM distances were kept in fp32 under bf16 autocast (GPU records of 2026-11-27)
        bf16_som=bf16_som_distances(rec),
    )
    hist = rec.get("history") or []
    if hist:
        row["final_task_loss"] = hist[-1].get("task_loss")
    sg = rec.get("diagnostics", {}).get("som_gradient", {})
    if "ratio" in sg:
        row["som_grad_ratio"] = sg["ratio"]          # |∇_enc γ·L_som| / |∇_enc L_task| at the end
    ls = rec.get("diagnostics", {}).get("latent_spread", {})
    if "mean_pairwise_cosine" in ls:
        row["latent_cosine"] = ls["mean_pairwise_cosine"]   # mean cos between two images' SOM inputs (one batch)
    cp = rec.get("diagnostics", {}).get("chance_purity", {})
    if "chance_purity" in cp:
        row["chance_purity"] = cp["chance_purity"]          # purity of the same cluster sizes, labels at random
        if "purity" in row and cp["chance_purity"] < 1:     # share of the way from chance to perfect
            row["purity_above_chance"] = (row["purity"] - cp["chance_purity"]) / (1 - cp["chance_purity"])
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


def seed_noise(*cells: tuple[float, float, int], floor: float = 0.01) -> float:
    """How far apart two means may be by seed noise alone: twice the larger std of the cells, each
    ``(mean, std, seeds)`` as :func:`mean_std` returns (a single seed has no std), and at least ``floor``."""
    return max(2 * max((s if n > 1 else 0.0) for _, s, n in cells), floor)


def contrast_digits(diff: float, noise: float) -> int:
    """Digits to print a difference and the seed noise it is judged against: 3, or 4 where both round
    to the same 3-digit value (never "-0.008, more than 0.008")."""
    return 3 if round(abs(diff), 3) != round(noise, 3) else 4


def seed_by_seed(ref: pd.DataFrame, alt: pd.DataFrame, metric: str = "purity", digits: int = 3) -> str:
    """How ``alt`` compares with ``ref`` on the seeds both ran (a paired view of two cells), e.g.
    ``higher on each of the 5 seeds both cells ran (by 0.005 to 0.018)``; ``""`` when they share fewer
    than 2 seeds.
    A difference that rounds to 0 at ``digits`` counts as level (never "higher … by 0.000")."""
    d = alt.groupby("seed")[metric].mean() - ref.groupby("seed")[metric].mean()
    d = d.dropna().round(digits) + 0.0                                           # + 0.0: no "-0.000"
    n, up, down = len(d), int((d > 0).sum()), int((d < 0).sum())
    if n < 2:
        return ""
    if up == n:
        return f"higher on each of the {n} seeds both cells ran (by {d.min():.{digits}f} to {d.max():.{digits}f})"
    if down == n:
        return f"lower on each of the {n} seeds both cells ran (by {-d.max():.{digits}f} to {-d.min():.{digits}f})"
    if up == down == 0:
        return f"level on each of the {n} seeds both cells ran"
    counts = [f"{word} on {k}" for word, k in (("higher", up), ("lower", down), ("level", n - up - down)) if k]
    return (f"{counts[0]} of the {n} seeds both cells ran{''.join(', ' + c for c in counts[1:])} "
            f"(differences {d.min():+.{digits}f} to {d.max():+.{digits}f})")


def shared_seed_diff(ref: pd.DataFrame, alt: pd.DataFrame, metric: str = "purity") -> tuple[float, str]:
    """``alt``'s mean ``metric`` minus ``ref``'s, and how it was taken: over all their seeds (phrase ``""``) when both
    cells ran the same seeds, else over the seeds both ran, so that a cell with fewer seeds is not set against
    another cell's other seeds (phrase e.g. ``" on the 1 seed both cells ran (0)"``). No shared seed: all seeds."""
    a, r = alt.groupby("seed")[metric].mean(), ref.groupby("seed")[metric].mean()
    shared = sorted(set(a.index) & set(r.index))
    if not shared or len(shared) == len(a) == len(r):
        return float(a.mean() - r.mean()), ""
    n = len(shared)
    return (float(a[shared].mean() - r[shared].mean()),
            f" on the {n} seed{'s' if n > 1 else ''} both cells ran ({', '.join(str(x) for x in shared)})")


def levels_off_at(by_length: dict[int, tuple[float, float, int]]) -> int:
    """The shortest training length from which every longer one's mean is within :func:`seed_noise`
    of the longest's; the longest itself when the length before it is not."""
    lengths = sorted(by_length)
    longest, level = by_length[lengths[-1]], lengths[-1]
    for e in reversed(lengths[:-1]):
        if abs(by_length[e][0] - longest[0]) > seed_noise(by_length[e], longest):
            break
        level = e
    return level


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


def metric_cells(g: pd.DataFrame, metrics: Sequence[tuple[str, str]], digits: int = 3,
                 scientific: Sequence[str] = ()) -> dict[str, str]:
    """A table row's cells for the runs in ``g``: ``{label: "mean ± std"}`` for each ``(column,
    label)`` of ``metrics`` (``—`` where no run has it). ``units_used`` gets one decimal (none for
    a single run); columns in ``scientific`` (tiny diagnostics) show the mean alone, as ``1.2e-05``."""
    cells = {}
    for col, lab in metrics:
        m, s, n = mean_std(g[col].tolist() if col in g.columns else [])
        if col in scientific:
            cells[lab] = f"{m:.1e}" if n else "—"
        else:
            cells[lab] = fmt(m, s, n, digits=(0 if n == 1 else 1) if col == "units_used" else digits)
    return cells


def fmt_reported(value: float, std: float | None, digits: int = 3) -> str:
    s = f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    return s + " (reported)"


def cell(df, metric: str, digits: int = 3, **where) -> str:
    """Formatted mean ± std of ``metric`` over the rows matching ``where`` (e.g. model=..., dataset=...).

    The rows are the cell's planned runs (one per seed). A cell that has fewer records than runs
    says how many it averages (``0.738 ± 0.041 (2 of 5 seeds)``); on a page whose records come
    from both a CPU and a GPU, every cell says which it came from (``… (GPU)``); a cell with records
    whose SOM distances were computed in bf16 says so (``… (bf16 SOM distances)``)."""
    sub = df
    for k, v in where.items():
        if k not in sub.columns:
            return "—"
        sub = sub[sub[k] == v]
    if metric not in sub.columns or sub.empty:
        return "—"
    mean, std, n = mean_std(sub[metric].tolist())
    text = fmt(mean, std, n, digits=digits)
    if n == 0:
        return text
    tags = [f"{n} of {len(sub)} seeds"] if n < len(sub) else []
    if "device_type" in df.columns and df["device_type"].dropna().nunique() > 1:
        have = sub[sub[metric].notna()]
        tags.append("/".join("GPU" if t == "cuda" else str(t).upper() for t in sorted(set(have["device_type"].dropna()))))
    if "bf16_som" in sub.columns and sub.loc[sub[metric].notna(), "bf16_som"].fillna(False).astype(bool).any():
        tags.append("bf16 SOM distances")
    return text + (f" ({', '.join(tags)})" if tags else "")


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


def collapsed(df, by: Sequence[str], max_units: int = 2) -> list[tuple[Any, Any]]:
    """Groups of runs (grouped ``by`` columns) whose map collapsed: in every run, all images end on at
    most ``max_units`` units, so purity is just the largest class's share."""
    if df is None or df.empty or "units_used" not in df.columns:
        return []
    have = df[df["status"].isin(RECORDED) & df["units_used"].notna()]
    return [(k, g) for k, g in have.groupby(list(by), sort=False) if g["units_used"].max() <= max_units]


def units_phrase(k: float) -> str:
    """'a single unit of the map' / 'at most 2 units of the map'."""
    return "a single unit of the map" if int(k) == 1 else f"at most {int(k)} units of the map"


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
                "data instead of the paper's 500, unless its row says otherwise (the training-length study trains "
                "longer); expect ViT-SOM to score below the paper. Where runs of the full "
                "recipe (the paper profile) exist, the reproduction-status page shows them too, in their own "
                "column, and the clustering page in a table of its own.")
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


def full_recipe_outcomes(notebook: str, plan: Plan) -> tuple[Plan, list[Outcome]] | None:
    """In a build of another profile: the page's runs planned for the **paper** profile (the full
    recipe) and their records, read and never trained: ``(paper plan, outcomes)``, runs without a record
    included. ``None`` in a paper-profile build, where the page's own outcomes already are the full
    recipe (nothing is read twice)."""
    if plan.profile == "paper":
        return None
    full = Plan.make("paper", None, plan.datasets, plan.results, plan.extra, plan.data_root)
    return full, execute(runs(notebook, full), full, train_missing=False, log=lambda line: None)


def full_recipe_frame(notebook: str, plan: Plan, read: tuple[Plan, list[Outcome]] | None = None):
    """In a build of another profile: the page's runs planned for the **paper** profile (the full
    recipe), read from their records and never trained, as :func:`frame` rows (runs without a record
    included, so a cell can say "2 of 5 seeds"; ``planned_epochs`` is each run's length). Empty in a
    paper-profile build (:func:`full_recipe_outcomes` says ``None`` there: the page's own frame
    already is the full recipe) and when no paper-profile run of the page has a record. ``read``:
    what :func:`full_recipe_outcomes` already returned for this page, so a page that needs the
    outcomes too reads the records once."""
    import pandas as pd
    read = read if read is not None else full_recipe_outcomes(notebook, plan)
    if read is None or all(o.record is None for o in read[1]):
        return pd.DataFrame()
    full, outcomes = read
    df = frame(outcomes)
    df["planned_epochs"] = [o.run.config(full.profile, full.extra).train.epochs for o in outcomes]
    return df


def seeds_cell(g: pd.DataFrame) -> str:
    """How many of a table row's planned runs (``g``: one row per seed, with its ``status``) have a
    record: ``"3 of 5"``."""
    return f"{int(g['status'].isin(RECORDED).sum())} of {len(g)}"


def recorded_groups(frame, by: Sequence[str]):
    """The groups of ``frame`` (planned runs, one row per seed) that have at least one record, in
    order: yields ``(key, the group's recorded rows, the group's number of planned runs)``."""
    if frame is None or frame.empty:
        return
    for key, g in frame.groupby(list(by), sort=False):
        got = g[g["status"].isin(RECORDED)]
        if len(got):
            yield key, got, len(g)


def full_recipe_note(full_have, profile: str) -> str:
    """The note under a page's table of full-recipe (paper-profile) records in another build."""
    return (provenance(full_have) + ". Each run here trains the row's recipe at full length on the full data "
            "(the paper profile). These runs are made a few at a time, on a GPU when one is lent and otherwise on "
            "the CPU, so a row averages the seeds that have a record (the seeds column says how many of the paper "
            f"profile's runs that is) and rows without any record are left out. The table above stays the {profile} "
            "profile's.")


L1_MARK = 0.05    # a run "has left the plateau" at the first epoch whose mean training L1 is below this value


def plateau_exit(rec: dict, mark: float = L1_MARK) -> int | None:
    """The first epoch (1-based) of the record ``rec`` whose mean training (task) loss is below
    ``mark``; None if none is. Every USPS autoencoder passes a plateau near 0.065 before it."""
    return next((h["epoch"] + 1 for h in rec.get("history", []) if h.get("task_loss", np.inf) < mark), None)


def repeats_table(outcomes: Sequence[Outcome], results, setting: Callable[[dict], str]):
    """Every run of ``outcomes`` that has a record and a *repeat* (the same config run again under
    another arithmetic order, :func:`vitsom.records.iter_repeats`), each as one row for the record
    and one per repeat, side by side: ``(DataFrame, the records shown)``, both empty if no run has a
    repeat. ``setting(config dict)`` names the run's setting in the page's own words."""
    import pandas as pd
    rows, shown = [], []
    for o in sorted((o for o in outcomes if o.record is not None), key=lambda o: (o.run.dataset, o.run.seed)):
        repeats = iter_repeats(o.record, results)
        for which, r in ([("the tables' record", o.record)] + [("repeat", x) for x in repeats] if repeats else []):
            rows.append({"dataset": DATASET_NAMES.get(o.run.dataset, o.run.dataset), "seed": o.run.seed,
                         "setting": setting(r["config"]), "run": which, "device": device_label(r),
                         f"epoch the training L1 first fell below {L1_MARK:g}":
                             (plateau_exit(r) or "never") if r.get("history") else "—",
                         "eval L1": f"{r['metrics']['recon_l1']:.4f}" if "recon_l1" in r["metrics"] else "—",
                         "purity": f"{r['metrics']['purity']:.3f}", "units used": r["metrics"].get("units_used"),
                         # a resumed run's wall_time_s is its last segment's; train_time_s adds them all
                         "training time (min)": round(r.get("train_time_s", r.get("wall_time_s", 0)) / 60),
                         "commit": str(r.get("git", {}).get("commit", "?"))[:7]})
            shown.append(r)
    return pd.DataFrame(rows), shown


def show_repeats(outcomes: Sequence[Outcome], results, setting: Callable[[dict], str], table_id: str) -> None:
    """A page's table of :func:`repeats_table`, or a line saying that none of its runs has a repeat."""
    from IPython.display import Markdown, display
    table, shown = repeats_table(outcomes, results, setting)
    if shown:
        show_table(table, table_id, "Full-length runs of this page made twice, with only the arithmetic order "
                   "(CPU thread count, CPU) changed", note=f"profile {shown[0]['profile']}")
    else:
        display(Markdown("No full-length run of this page has a repeat yet."))


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


def missing_note(outcomes: Sequence[Outcome]) -> str:
    """One sentence listing the runs without a record and why (so no cell is empty silently)."""
    planned: dict[tuple, int] = {}
    for o in outcomes:
        planned[(o.run.preset, o.run.overrides)] = planned.get((o.run.preset, o.run.overrides), 0) + 1
    miss: dict[str, dict[tuple, list[int]]] = {}
    for o in outcomes:
        if o.record is None:
            why = f"{o.status}: {o.note}" if o.note else o.status
            miss.setdefault(why, {}).setdefault((o.run.preset, o.run.overrides), []).append(o.run.seed)

    def name(k: tuple, seeds: list[int]) -> str:
        part = "" if len(seeds) == planned[k] else f" seed{'s' if len(seeds) > 1 else ''} " + " ".join(map(str, sorted(seeds)))
        return " ".join((k[0], *k[1])) + part
    if not miss:
        return "Every planned run has a record."
    return ("Runs without a record (a cell with none shows —; a cell with some averages those it has, and its row or "
            "the cell itself says how many): " + "; ".join(f"{', '.join(sorted(name(k, v) for k, v in p.items()))} ({why})"
                                  for why, p in miss.items()) + ".")



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


def md_table(rows: list[dict], cols: Sequence[str]) -> str:
    """A markdown table of ``rows`` (dicts) with columns ``cols``; pipes escaped, newlines flattened."""
    def esc(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
