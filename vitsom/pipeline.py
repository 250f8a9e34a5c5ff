"""Run every notebook and build the book: ``python -m vitsom.pipeline --profile smoke|quick|paper``.

Stages, each timed and printed:

1. **sync**: ``notebooks/*.py`` (jupytext percent, the sources) → ``notebooks/*.ipynb`` (no outputs;
   committed so that Colab can open them), rewritten only when they changed.
2. **one stage per notebook**: jupytext → papermill (kernel ``python3``) → ``book/executed/<name>.ipynb``.
   The notebook trains what it needs through :func:`vitsom.train.train`; runs that already have a
   record are reused, and a run cut off mid-training resumes from its checkpoint, so rerunning the
   same command after an interruption continues where it stopped. A failing notebook does not stop
   the others; the pipeline exits non-zero at the end and says which failed.
3. **status**: the reproduction-status page (every paper number with ours beside it), its CSV, the
   architecture figure of the introduction, and the stage timings.
4. **book**: ``jupyter-book build book/ -W`` (warnings are errors; notebooks are not re-executed).

``--book-only`` executes the notebooks without training anything (missing runs are listed as
such), then builds the book: that is ``make book``. ``--build-dir`` builds a copy of ``book/``
elsewhere (the tests use it so that they never touch the repository's book).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from . import experiments as E, book as B, reported as R
from .records import REPO_ROOT, git_commit

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BOOK_SRC = REPO_ROOT / "book"
GENERATED = "executed"           # sub-folder of the book holding everything the pipeline writes (git-ignored)
_NOT_COPIED = ("_build", GENERATED, "status-screenshot.png")


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- stages

def read_source(name: str):
    """``notebooks/<name>.py`` as a notebook, with stable cell ids (jupytext draws random ones)."""
    import hashlib
    import jupytext
    nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    for i, cell in enumerate(nb.cells):
        cell.id = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:8]
    return nb


def ipynb_text(name: str) -> str:
    import jupytext
    return jupytext.writes(read_source(name), fmt="ipynb")


def sync_notebooks(names: Sequence[str] = E.NOTEBOOKS) -> list[str]:
    """Write ``notebooks/<name>.ipynb`` from ``<name>.py`` where it differs; return the rewritten names."""
    changed = []
    for name in names:
        dst = NOTEBOOK_DIR / f"{name}.ipynb"
        text = ipynb_text(name)
        if not dst.exists() or dst.read_text() != text:
            dst.write_text(text)
            changed.append(name)
    return changed


def prepare_build_dir(build: Path) -> None:
    """Copy the book's sources into ``build`` (when it is not ``book/`` itself) and make ``executed/``."""
    build = build.resolve()
    if build != BOOK_SRC.resolve():
        build.mkdir(parents=True, exist_ok=True)
        for item in BOOK_SRC.iterdir():
            if item.name in _NOT_COPIED:
                continue
            if item.is_dir():
                shutil.copytree(item, build / item.name, dirs_exist_ok=True)
            else:
                shutil.copy2(item, build / item.name)
    (build / GENERATED).mkdir(parents=True, exist_ok=True)


def kernel_env() -> None:
    """The notebooks' kernel inherits this process's environment: make ``vitsom`` importable even when
    it is not pip-installed, and keep the kernel's debugger warnings out of the outputs."""
    pp = os.environ.get("PYTHONPATH", "")
    if str(REPO_ROOT) not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), pp) if p)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


class ProgressTail:
    """Print, while a notebook runs, the lines its training appends to the progress file
    (:class:`vitsom.experiments.ProgressLog`): the kernel's outputs go into the notebook, not here."""

    def __init__(self, path: Path, prefix: str = "           | ", every_s: float = 1.0):
        self.path, self.prefix, self.every_s = path, prefix, every_s
        self._pos = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProgressTail":
        self.path.unlink(missing_ok=True)
        os.environ[E.PROGRESS_ENV] = str(self.path)          # the kernel inherits it when papermill starts it
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.drain()
        os.environ.pop(E.PROGRESS_ENV, None)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.drain()

    def drain(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return
        done = data.rfind(b"\n") + 1                        # only whole lines; a half-written one waits
        self._pos += done
        for line in data[:done].decode("utf-8", errors="replace").splitlines():
            log(self.prefix + line)


def execute_notebook(name: str, build: Path, params: dict) -> tuple[bool, str]:
    """jupytext → papermill. Returns (ok, one-line summary of the page's runs or the error). Training
    progress is printed as it happens (:class:`ProgressTail`)."""
    import nbformat
    import papermill as pm
    out = build / GENERATED / f"{name}.ipynb"
    tmp = build / GENERATED / f".{name}.input.ipynb"
    nbformat.write(read_source(name), tmp)
    try:
        with ProgressTail(build / GENERATED / f".{name}.progress.log"):
            pm.execute_notebook(str(tmp), str(out), parameters=params, kernel_name="python3",
                                cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=False,
                                request_save_on_cell_execute=True)
        ok, msg = True, runs_summary(out)
    except pm.PapermillExecutionError as e:
        ok, msg = False, f"{e.ename}: {str(e.evalue).splitlines()[0] if e.evalue else ''} (cell {e.exec_count}; "\
                         f"see {out})"
    finally:
        tmp.unlink(missing_ok=True)
    return ok, msg


def runs_summary(executed: Path) -> str:
    """The caption of the page's run table, e.g. 'Runs of this page (3 trained, 2 existing, 1 no-data)'."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            h = o.get("data", {}).get("text/html", "")
            h = "".join(h) if isinstance(h, list) else h
            if 'data-vitsom-table="tbl-runs"' in h:
                m = re.search(r"<b>(Runs of this page[^<]*)</b>", h)
                if m:
                    return m.group(1).replace("&amp;", "&")
    return ""


def write_status(build: Path, plan: E.Plan, timings: list[tuple[str, float, str]], failures: dict[str, str],
                 command: str) -> Path:
    """The reproduction-status page, ``status.csv`` and the introduction's architecture figure."""
    from . import plots
    gen = build / GENERATED
    plots.architecture_figure().savefig(gen / "architecture.png", dpi=110)
    st = R.status_table(plan)
    st.to_csv(gen / "status.csv", index=False)
    (gen / "status.md").write_text(status_markdown(st, plan, timings, failures, command))
    (gen / "timings.json").write_text(json.dumps([{"stage": n, "seconds": round(s, 1), "result": r}
                                                  for n, s, r in timings], indent=1) + "\n")
    return gen / "status.md"


def status_markdown(st, plan: E.Plan, timings, failures, command: str) -> str:
    g = git_commit()
    have = st[st["ours"] != "—"]
    lines = [
        "# Reproduction status", "",
        B.profile_banner(plan.profile), "",
        f"Built on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC from commit "
        f"`{(g.get('commit') or 'unknown')[:10]}`{' (with uncommitted changes)' if g.get('dirty') else ''} by "
        f"`{command}`. Profile **{plan.profile}**, seeds {', '.join(map(str, plan.seeds))}, datasets "
        f"{', '.join(plan.datasets) if plan.datasets else 'all'}"
        + (f", extra overrides `{' '.join(plan.extra)}`" if plan.extra else "") + ".", "",
        "Every number the paper reports is listed below. **paper (reported)** is the paper's number exactly as "
        "reported (mean ± std over its 5 runs). **ours** is the mean ± population std over our seeds (a single "
        "number when there is one seed), read from the run records in `results/`; each section says which "
        "profile, device and seeds produced it. **difference** is ours minus paper. A dash means we have no "
        "counterpart, and the note says why.",
        "",
        f"**{len(have)} of {len(st)}** paper numbers have a counterpart of ours in this build. "
        "The table is also available as {download}`status.csv <status.csv>`.", "",
    ]
    full = st[st["paper_profile_ours"] != "—"] if "paper_profile_ours" in st else st.iloc[:0]
    if len(full):
        devices = sorted({d for v in full["paper_profile_device"] for d in v.split("; ")})
        lines += [
            f"**Runs of the paper's full recipe so far.** {len(full)} of these numbers also have records of the "
            f"**paper** profile (the recipe at full length; {', '.join(devices)}), made a few runs at a time: on a "
            "GPU when one is lent (`python -m vitsom.gpu_queue`), otherwise on the CPU. Each section shows them in "
            "the column **paper profile**, with their own difference to the paper, seeds and device. Times "
            "measured while other runs shared the GPU are marked *not comparable*.", ""]
    if failures:
        lines += ["```{warning}", "These notebooks failed in this build: "
                  + "; ".join(f"{k}: {v}" for k, v in failures.items()), "```", ""]
    for section, title in R.SECTION_TITLES.items():
        sub = st[st["section"] == section]
        if sub.empty:
            continue
        got = sub[sub["ours"] != "—"]
        sources = sorted({(r["profile"], r["device"], r["seeds"]) for _, r in got.iterrows()})
        cols = ["model", "column", "paper (reported)", "ours", "difference", "note"]
        if len(sources) > 1:
            cols.insert(5, "ours from")
        in_full = sub[sub["paper_profile_ours"] != "—"] if "paper_profile_ours" in sub else sub.iloc[:0]
        if len(in_full):
            cols[5:5] = ["paper profile", "its difference", "paper profile from"]
        rows = []
        for _, r in sub.iterrows():
            row = {"model": r["model"], "column": r["column"], "paper (reported)": r["paper"], "ours": r["ours"],
                   "difference": r["difference"], "note": r["note"],
                   "ours from": "—" if r["ours"] == "—" else f"{r['profile']}, {r['device']}, seeds {r['seeds']}"}
            if len(in_full):
                row.update({"paper profile": r["paper_profile_ours"], "its difference": r["paper_profile_difference"],
                            "paper profile from": "—" if r["paper_profile_ours"] == "—"
                            else f"{r['paper_profile_device']}, seeds {r['paper_profile_seeds']}"})
            rows.append(row)
        if len(sources) == 1:
            prof, dev, seeds = sources[0]
            src = f"**Ours:** profile {prof}, {dev}, seeds {seeds}."
        elif not sources:
            src = "**Ours:** no run of this section has a record in this build."
        else:
            src = "**Ours:** from several profiles/devices (see the column *ours from*)."
        lines += [f"## {title}", "", R.SECTION_NOTES.get(section, ""), "",
                  f"{src} **Paper:** {sub['source'].iloc[0]}; {len(got)} of {len(sub)} numbers have a counterpart "
                  "of ours.", "", B.md_table(rows, cols), ""]
    lines += ["## Figures", "",
              "They are drawn on the [figures page](07_figures.ipynb) from this build's records. The latent, "
              "prototype and map figures also need the figure run's weights, which are not committed (`runs/` is "
              "git-ignored): a build that trains (not `--book-only`) recreates them; the page says when they are missing.", "",
              B.md_table([{"paper figure": f, "ours": "figures page", "how": how}
                         for f, page, marker, how in R.FIGURES], ["paper figure", "ours", "how"]), "",
              "## Known deviations from the authors' protocol", ""]
    lines += [f"{i}. **{t}.** {d}" for i, (t, d) in enumerate(R.DEVIATIONS, 1)]
    lines += ["", "## Not reproduced here, and why", "",
              "- **SOM-VAE, Swin-T, DeiT-T, MobileViT-T**: not implemented in this repository; their rows show the "
              "paper's numbers only. (The authors' repository has no SOM-VAE or ResNet34 code; our ResNet34 and "
              "DESOM are our own recipes in `vitsom.baselines`.)",
              "- **CIFAR-10/100, SVHN, PathMNIST, Flowers-17, Tiny-ImageNet**: not available on the offline build "
              "machine; `make reproduce` on a machine with the data (or online, where they download "
              "automatically) fills these rows.",
              "- **Hardware of the efficiency tables**: the paper does not name its GPU, so time and memory are "
              "compared only as orders of magnitude.", "",
              "## How long this build took", "",
              B.md_table([{"stage": n, "wall time (s)": f"{s:.0f}", "result": r} for n, s, r in timings],
                        ["stage", "wall time (s)", "result"]), "",
              "The book build itself comes after these stages and is not included; the pipeline prints it.", ""]
    return "\n".join(lines)


def jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    return [found] if found else [sys.executable, "-m", "jupyter_book.cli.main"]


def build_book(build: Path) -> tuple[bool, str]:
    """A clean build (an incremental one would not repeat the warnings of unchanged pages, so -W could pass
    on a rerun without the cause being fixed)."""
    shutil.rmtree(build / "_build", ignore_errors=True)
    cmd = [*jupyter_book_cmd(), "build", str(build), "-W", "--keep-going"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = (p.stdout or "") + (p.stderr or "")
    if p.returncode != 0:
        return False, "\n".join(out.splitlines()[-60:])
    return True, str(build / "_build" / "html" / "index.html")


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vitsom.pipeline", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", choices=E.PROFILES)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: smoke 0; quick 0 1 2; paper 0..4")
    ap.add_argument("--datasets", nargs="+", default=None, help="e.g. usps mnist (default: all of each notebook)")
    ap.add_argument("--book-only", action="store_true", help="train nothing: render the existing records, build the book")
    ap.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                    help=f"run only these notebooks (prefix match; the book is then not built): {', '.join(E.NOTEBOOKS)}")
    ap.add_argument("--build-dir", default=None, help="build a copy of book/ there (default: book/ itself)")
    ap.add_argument("--results", default=None, help="results folder (default: $VITSOM_RESULTS or ./results)")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="override added to every run, e.g. train.max_train_samples=256 (tests)")
    ap.add_argument("--no-book", action="store_true", help="stop after the status page")
    ap.add_argument("--sync-notebooks", action="store_true",
                    help="only rewrite notebooks/*.ipynb from notebooks/*.py, then exit")
    args = ap.parse_args(argv)
    if args.sync_notebooks:
        changed = sync_notebooks()
        log(f"rewrote {', '.join(changed)}" if changed else "notebooks/*.ipynb are up to date")
        return 0

    plan = E.Plan.make(args.profile, args.seeds, args.datasets, args.results, args.extra)
    build = Path(args.build_dir).resolve() if args.build_dir else BOOK_SRC
    names = list(E.NOTEBOOKS)
    if args.notebooks:
        names = [n for n in E.NOTEBOOKS if any(n.startswith(p) or n.split("_", 1)[1].startswith(p) for p in args.notebooks)]
        if not names:
            ap.error(f"no notebook matches {args.notebooks}; choose from {', '.join(E.NOTEBOOKS)}")
    command = "python -m vitsom.pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
    log(f"vitsom pipeline: profile {plan.profile}, seeds {list(plan.seeds)}, datasets "
        f"{list(plan.datasets) if plan.datasets else 'all'}{', book only (no training)' if args.book_only else ''}; "
        f"book in {build}")
    kernel_env()
    timings: list[tuple[str, float, str]] = []
    failures: dict[str, str] = {}
    t_all = time.perf_counter()

    def stage(name: str, t0: float, result: str) -> None:
        dt = time.perf_counter() - t0
        timings.append((name, dt, result))
        log(f"[{dt:7.1f} s] {name}: {result}")

    try:
        t0 = time.perf_counter()
        changed = sync_notebooks()
        stage("sync notebooks/*.ipynb", t0, f"rewrote {', '.join(changed)}" if changed else "up to date")
        prepare_build_dir(build)
        params = {"profile": plan.profile, "seeds": list(plan.seeds), "datasets": list(plan.datasets) if plan.datasets else None,
                  "results_dir": plan.results, "train_missing": not args.book_only, "extra_overrides": list(plan.extra)}
        for name in names:
            t0 = time.perf_counter()
            log(f"           {name}: running …")
            ok, msg = execute_notebook(name, build, params)
            if not ok:
                failures[name] = msg
            stage(name, t0, ("ok" if ok else "FAILED") + (f" — {msg}" if msg else ""))
        if args.notebooks:
            log("only some notebooks were run: the status page and the book are not rebuilt")
        else:
            t0 = time.perf_counter()
            path = write_status(build, plan, timings, failures, command)
            stage("status page", t0, str(path))
            if not args.no_book:
                t0 = time.perf_counter()
                ok, msg = build_book(build)
                stage("jupyter-book build -W", t0, msg if ok else "FAILED")
                if not ok:
                    log(msg)
                    failures["book"] = "jupyter-book build failed (output above)"
    except KeyboardInterrupt:
        log("interrupted: run the same command again to continue (finished runs have records, an unfinished run "
            "resumes from its checkpoint in runs/)")
        return 130
    total = time.perf_counter() - t_all
    log("\nstage times:")
    for n, s, r in timings:
        log(f"  {s:8.1f} s  {n}")
    log(f"  {total:8.1f} s  total")
    if failures:
        log("FAILED: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
