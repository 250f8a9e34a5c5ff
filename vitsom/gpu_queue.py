"""Time-boxed GPU work queue: run the next paper-profile runs that have no record yet.

GPU time comes in short windows (about 15 minutes a session). This script walks a fixed priority
list (the order of the "fill the book with GPU runs" issue), skips every run whose record exists,
and trains the rest until the budget is spent. A run cut off by the budget leaves its checkpoint
in ``runs/<key>/checkpoint.pt`` and resumes there next time with the same result as an
uninterrupted run. Records are packed into one archive for the trip back from the GPU machine::

    PYTHONPATH=. python3 -m vitsom.gpu_queue --budget-s 480 --pack $OUT/records.tar.gz [--dry-run]

Seeds of one item are trained together (one vectorised model) when ``together`` is set, unless
``--one-seed-at-a-time``. A small model leaves a big GPU mostly idle, so N queue processes can
share it: ``--shard K/N`` gives process K every N-th item (or, one seed at a time, every N-th seed).

A checkpoint cannot travel back from the device machine (files return at 16 MiB at most; a 40×40
MNIST checkpoint is about 60 MB a seed), so a run cut off at the end of a window is lost. The queue
therefore gives up on a run as soon as its measured epoch time says it cannot finish in the time
left, logs the projected time, and moves on to the next item, so that the window is spent on runs
that finish (``--cut-off-runs`` restores the old behaviour: train to the budget and checkpoint).
"""
from __future__ import annotations

import argparse
import io
import json
import shlex
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import make_config
from .records import bf16_som_distances, existing_record_path, load_record, results_root, run_dir
from .train import TrainingInterrupted

SEEDS5 = (0, 1, 2, 3, 4)


@dataclass
class Item:
    preset: str
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = SEEDS5
    together: bool = True
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    snapshot_seeds: tuple[int, ...] = ()     # seeds whose weights the figures need at a few epochs
    redo: bool = False                       # retrain over existing records (made with bf16 SOM distances)


def priority_list() -> list[Item]:
    """The book's paper-profile runs (from :mod:`vitsom.experiments`, so the records are exactly
    the ones the notebooks look for), in the order of the GPU issue: ViT-SOM 40×40/24×24 on USPS,
    then MNIST and Fashion-MNIST; baselines; ablations; the small-data test; the rest."""
    from .experiments import NOTEBOOKS, Plan, runs
    plan = Plan.make("paper")
    all_runs = [r for nb in NOTEBOOKS for r in runs(nb, plan)]

    def rank(r) -> tuple:
        ds_order = {"usps": 0, "mnist": 1, "fmnist": 2}.get(r.dataset, 3)
        p = r.preset
        if p.endswith(("-clustering", "-clustering-24x24")) and not r.overrides:
            return (0 if r.dataset == "usps" else 1 if p.endswith("-clustering") else 2, ds_order)
        if p.startswith(("desom-", "som-", "ksom-")) or p.endswith("-8x8") or r.overrides == ("split=train",):
            return (3, ds_order)
        if p.endswith(("-clustering", "-24x24-v1")):
            return (4, ds_order)                    # ablations, and the v1-era 24×24 recipe
        if r.dataset in ("mnist", "fmnist") and "classification" in p:
            return (5, -ds_order)                   # small-data test (Fashion-MNIST first)
        return (6, ds_order)
    groups: dict[tuple, Item] = {}
    for r in sorted(all_runs, key=rank):
        k = (r.preset, r.overrides)
        if k not in groups:
            groups[k] = Item(r.preset, r.overrides, (), together=True, note=r.model)
        if r.seed not in groups[k].seeds:
            groups[k].seeds = groups[k].seeds + (r.seed,)
        if r.snapshots and r.seed not in groups[k].snapshot_seeds:
            groups[k].snapshot_seeds = groups[k].snapshot_seeds + (r.seed,)
    return list(groups.values())


def pending(items: list[Item], profile: str, results=None) -> list[tuple[Item, list]]:
    """The items' runs that have no record, in priority order; then, at the end, the runs whose
    record was made with bf16 SOM distances (GPU records from before they were kept in fp32), to be
    trained again over that record when a window has time left."""
    out, redo = [], []
    for it in items:
        try:
            cfgs = [make_config(it.preset, profile, s, list(it.overrides)) for s in it.seeds]
        except ValueError as e:          # a preset this checkout does not know
            print(f"skip {it.preset}: {str(e).split(';')[0]}")
            continue
        found = {c.key(): existing_record_path(c, results) for c in cfgs}   # own, or same run under another profile
        todo = [c for c in cfgs if found[c.key()] is None]
        if todo:
            out.append((it, todo))
        stale = [c for c in cfgs if c not in todo and _bf16_som_record(found[c.key()])]
        if stale:
            redo.append((replace(it, redo=True, together=False, note=f"{it.note}, again: bf16 SOM distances"), stale))
    return out + redo


def _bf16_som_record(path: Path) -> bool:
    try:
        return bf16_som_distances(load_record(path))
    except (OSError, ValueError):        # unreadable: not ours to redo (the book reports it)
        return False


def steps_per_epoch_hint(cfg, results=None) -> int | None:
    """Steps per epoch of ``cfg``'s training data, read from any record of the same preset that
    trained on the same data (split, sample cap, label fraction) with the same batch size: for the
    paper profile, usually a quick-profile record. None when there is none."""
    t = cfg.train
    for p in sorted(results_root(results).glob(f"*/{cfg.preset}/*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        c = r.get("config", {})
        rt = c.get("train", {})
        if (c.get("split") == cfg.split and rt.get("batch_size") == t.batch_size
                and rt.get("max_train_samples", 0) == t.max_train_samples
                and rt.get("label_fraction", 1.0) == t.label_fraction and rt.get("epochs") and r.get("steps")):
            return r["steps"] // rt["epochs"]
    return None


def hopeless(cfg, fastest_step_s: float | None, time_left: float, results=None) -> float | None:
    """A lower bound on ``cfg``'s training time if it already exceeds ``time_left``, else None.

    The bound is half the run's number of steps (from :func:`steps_per_epoch_hint`) times the
    fastest step this process has timed so far: halved because a timed step includes its run's
    compile time, and a different model's step may be faster. It needs no compile and no data
    loading, so a run that cannot fit is skipped at no GPU cost (the 2-epoch projection would
    spend a compile on each)."""
    if fastest_step_s is None:
        return None
    spe = steps_per_epoch_hint(cfg, results)
    if spe is None:
        return None
    bound = 0.5 * spe * cfg.train.epochs * fastest_step_s
    return bound if bound > time_left else None


def pack_records(dest: Path, profile: str, results=None, since: float = 0.0) -> int:
    """All records of ``profile`` written after ``since`` into one tar.gz (paths relative to the repo)."""
    root = results_root(results)
    files = [p for p in (root / profile).rglob("*.json") if p.stat().st_mtime >= since]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for p in files:
            tar.add(p, arcname=str(Path("results") / p.relative_to(root)))
        manifest = "\n".join(str(p.relative_to(root)) for p in files).encode()
        info = tarfile.TarInfo("MANIFEST")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return len(files)


def choose_strategy(bench: dict, shards: int = 5, steps: int = 273_000) -> dict:
    """How the queue should train, from a short ``benchmarks/bench_train.py`` probe measured alone on
    the GPU (rows ``default``, ``default_cudagraphs``, ``together_x5_compiled``; a missing or failed row
    is ignored). Returns ``{"compile_mode", "one_seed", "shards", "why"}``:

    - the compile mode is "reduce-overhead" (CUDA graphs) when its step is at least 10 % faster than
      mode "default", else "default";
    - seeds are trained together (one process per item, 2 shards) when S models together step in
      under twice the time of one model alone. Processes that share a GPU take turns on it (no MPS),
      so S single-seed shards cannot do better than that by much; otherwise one seed at a time in
      ``shards`` processes, as before.
    ``why`` gives the measured times and the projected hours of one ``steps``-step run (MNIST 40×40)."""
    rows = {k: r for k, r in (bench.get("rows") or {}).items() if isinstance(r, dict) and r.get("s_per_step")}
    single = {k: rows[k]["s_per_step"] for k in ("default", "default_cudagraphs") if k in rows}
    if not single:
        return {"compile_mode": "default", "one_seed": True, "shards": shards,
                "why": "no single-model row was measured: the tested default (compiled, one seed per shard)"}
    mode = "default"
    if "default_cudagraphs" in single and ("default" not in single or
                                           single["default_cudagraphs"] < 0.9 * single["default"]):
        mode = "reduce-overhead"
    t_one = single["default_cudagraphs" if mode == "reduce-overhead" else "default"]
    parts = [f"{k} {1e3 * v:.2f} ms/step" for k, v in single.items()]
    tog = [(k, r) for k, r in rows.items() if k.startswith("together_x") and k.endswith("_compiled")]
    one_seed, n, t_run = True, shards, t_one
    if tog:
        k, r = tog[0]
        members = r.get("members", 1)
        parts.append(f"{k} {1e3 * r['s_per_step']:.2f} ms/step for {members} models")
        if members > 1 and r["s_per_step"] < 2 * t_one:
            one_seed, n, mode, t_run = False, min(2, shards), "default", r["s_per_step"]
    what = (f"one seed at a time in {n} shards, compile mode {mode}" if one_seed
            else f"seeds together (compile mode default, as measured) in {n} shards")
    return {"compile_mode": mode, "one_seed": one_seed, "shards": n,
            "why": f"{'; '.join(parts)} → {what}; a {steps:,}-step run takes ≥ {t_run * steps / 60:.0f} min "
                   "alone on the GPU"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=None, help="stop starting/continuing runs after this")
    ap.add_argument("--strategy", default=None, metavar="PROBE.json",
                    help="print, as shell assignments, how to train from a bench_train.py probe (compile mode, "
                         "one seed at a time or together, shards; see choose_strategy) and exit")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--pack", default=None, help="write the new records into this tar.gz")
    ap.add_argument("--dry-run", action="store_true", help="list what would run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data", default=None)
    ap.add_argument("--shard", default="0/1", metavar="K/N",
                    help="take only every N-th pending item, starting at the K-th (0-based): N queue processes "
                         "with K = 0..N-1 share one GPU, which a small model leaves mostly idle")
    ap.add_argument("--one-seed-at-a-time", action="store_true",
                    help="never train seeds together; with --shard, the shards split single seeds (shard k "
                         "trains seed k of each item when N = 5): on a GPU, N compiled single-seed processes "
                         "side by side beat one eager vmapped step")
    ap.add_argument("--cut-off-runs", action="store_true",
                    help="train a run that cannot finish up to the budget and checkpoint it, instead of "
                         "giving up on it and moving on")
    args = ap.parse_args(argv)
    if args.strategy:
        try:
            bench = json.loads(Path(args.strategy).read_text())
        except (OSError, ValueError) as e:
            bench = {"rows": {}, "error": str(e)}
        st = choose_strategy(bench)
        print(f"VITSOM_COMPILE_MODE={st['compile_mode']}; ONE_SEED={int(st['one_seed'])}; SHARDS={st['shards']}; "
              f"STRATEGY_WHY={shlex.quote(st['why'])}")
        return 0
    if args.budget_s is None:
        ap.error("--budget-s is required (unless --strategy)")
    skip = not args.cut_off_runs
    t0 = time.time()
    deadline = t0 + args.budget_s
    k, n = parse_shard(args.shard)
    work = pending(priority_list(), args.profile)
    if args.one_seed_at_a_time:      # shard single seeds, so that N processes train N seeds of an item at once
        work = [(it, [c]) for it, todo in work for c in todo]
    work = work[k::n]
    for it, todo in work:
        print(f"{'TODO':5s} {it.preset:28s} {' '.join(it.overrides):40s} seeds {[c.seed for c in todo]} {it.note}")
    if args.dry_run:
        return 0
    given_up: set[tuple] = set()         # items found unfinishable: their other seeds take as long
    fastest: list[float] = []            # s per step of the single-model runs finished in this process
    for it, todo in work:
        if time.time() > deadline:
            break
        if (it.preset, it.overrides) in given_up:
            continue
        if args.one_seed_at_a_time:
            bound = hopeless(todo[0], min(fastest, default=None), deadline - time.time())
            if bound is not None:
                print(f"[queue] skipped {it.preset} {' '.join(it.overrides)} seed {todo[0].seed} without starting it: "
                      f"at least {bound:.0f}s at the fastest step timed here, {deadline - time.time():.0f}s left")
                given_up.add((it.preset, it.overrides))
                continue
        try:
            more = run_item(it, todo, deadline, args.data, args.device, skip,
                            together_ok=not args.one_seed_at_a_time, given_up=given_up, step_times=fastest)
            if not more:
                break
        except TrainingInterrupted as e:     # SIGTERM/Ctrl-C: the run saved its checkpoint; pack what finished
            print(f"[queue] {e}", flush=True)
            break
        except Exception:  # noqa: BLE001 - one broken item must not cost the rest of the window
            import traceback
            print(f"[queue] FAILED {it.preset} {' '.join(it.overrides)}:\n{traceback.format_exc()}", flush=True)
    if args.pack:
        n_packed = pack_records(Path(args.pack), args.profile, since=t0)
        print(f"[queue] packed {n_packed} new records into {args.pack}")
    print(f"[queue] done in {time.time() - t0:.0f}s")
    return 0


def run_item(it: Item, todo: list, deadline: float, data, device, skip: bool, together_ok: bool = True,
             given_up: set | None = None, step_times: list | None = None) -> bool:
    """Train one queue item's pending seeds; False when the budget ran out (stop the queue). An item
    that cannot finish in time is added to ``given_up``; each finished single-model run appends its
    seconds per step to ``step_times``."""
    from .experiments import snapshot_epochs
    from .multiseed import train_together
    from .train import train
    print(f"[queue] {it.preset} {' '.join(it.overrides)} seeds {[c.seed for c in todo]} "
          f"({deadline - time.time():.0f}s left)", flush=True)
    together = together_ok and it.together and len(todo) > 1 and todo[0].model.arch == "vit" and \
        todo[0].som.distance != "manhattan" and \
        not any((run_dir(c) / "checkpoint.pt").exists() for c in todo)
    solo = [c for c in todo if c.seed in it.snapshot_seeds]      # figure runs keep snapshots
    group = [c for c in todo if c.seed not in it.snapshot_seeds]
    if together and len(group) > 1:
        try:
            recs = train_together(group, data_root=data, device=device, progress=False, deadline=deadline,
                                  skip_unfinishable=skip)
        except Exception as e:  # noqa: BLE001 - the vmapped path failed: the seeds still train one by one
            print(f"[queue] seeds together failed for {it.preset} {' '.join(it.overrides)} "
                  f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); one seed at a time", flush=True)
            recs = None
        if recs is None:
            pass                                 # one seed at a time, below
        elif recs[0].get("unfinishable"):
            need, left = recs[0]["projected_s"], deadline - time.time()
            # one seed alone is assumed to take at least 1/S of the group's time (S models in one step
            # are never slower per model than one, on a GPU): if even that does not fit, move on
            alone_fits = need / len(group) < left
            print(f"[queue] skipped {it.preset} {' '.join(it.overrides)} seeds {[c.seed for c in group]}: "
                  f"{need:.0f}s more needed, {left:.0f}s left; "
                  + ("trying one seed at a time" if alone_fits else "one seed would not fit either"))
            if not alone_fits:
                if given_up is not None:
                    given_up.add((it.preset, it.overrides))
                return True
        elif any(r.get("interrupted") for r in recs):
            print(f"[queue] budget reached: {it.preset} seeds {[c.seed for c in group]} checkpointed "
                  f"at step {recs[0]['step']}")
            return False
        else:
            group = []
    for c in solo + group:
        if time.time() > deadline:
            return False
        snaps = snapshot_epochs(c.train.epochs) if c.seed in it.snapshot_seeds else ()
        rec = train(c, data_root=data, device=device, progress=False, deadline=deadline,
                    snapshot_epochs=snaps, skip_unfinishable=skip, force=it.redo)
        if rec.get("unfinishable"):
            print(f"[queue] skipped {c.preset} {' '.join(it.overrides)} seed {c.seed}: "
                  f"{rec['projected_s']:.0f}s more needed, {deadline - time.time():.0f}s left")
            if given_up is not None:
                given_up.add((it.preset, it.overrides))
            return True                      # the item's other seeds take as long: next item
        if rec.get("interrupted"):
            print(f"[queue] budget reached: {c.preset} seed {c.seed} checkpointed at step {rec['step']}")
            return False
        if step_times is not None and rec.get("steps") and rec.get("train_time_s"):
            step_times.append(rec["train_time_s"] / rec["steps"])
    return True


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 0 ≤ K < N; a clear error otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 0/3), got {text!r}") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 ≤ K < N, got {text!r}")
    return k, n


if __name__ == "__main__":
    raise SystemExit(main())
