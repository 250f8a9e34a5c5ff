"""Time-boxed GPU work queue: run the next paper-profile runs that have no record yet.

GPU time comes in short windows (about 15 minutes a session). This script walks a fixed priority
list (the order of the "fill the book with GPU runs" issue), skips every run whose record exists,
and trains the rest until the budget is spent. A run cut off by the budget leaves its checkpoint
in ``runs/<key>/checkpoint.pt`` and resumes there next time with the same result as an
uninterrupted run. Records are packed into one archive for the trip back from the GPU machine::

    PYTHONPATH=. python3 -m vitsom.gpu_queue --budget-s 480 --pack $OUT/records.tar.gz [--dry-run]

Seeds of one item are trained together (one vectorised model) when ``together`` is set.
"""
from __future__ import annotations

import argparse
import io
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import make_config
from .records import record_path, results_root, runs_root

SEEDS5 = (0, 1, 2, 3, 4)


@dataclass
class Item:
    preset: str
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = SEEDS5
    together: bool = True
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def priority_list() -> list[Item]:
    """The runs of the GPU issue, most important first."""
    items = [Item("usps-clustering"), Item("usps-clustering-24x24")]
    items += [Item("mnist-clustering"), Item("fmnist-clustering"),
              Item("mnist-clustering-24x24"), Item("fmnist-clustering-24x24")]
    for ds in ("usps", "mnist", "fmnist"):
        items += [Item(f"desom-{ds}", together=False), Item(f"som-{ds}", together=False),
                  Item(f"{ds}-clustering-8x8")]
    abl = "usps-clustering"
    items += [Item(abl, (f"som.distance={d}",), note="distance ablation") for d in ("euclidean", "manhattan")]
    items += [Item(abl, (f"som.height={g}", f"som.width={g}"), note="grid ablation") for g in (8, 16, 32)]
    items += [Item(abl, (f"som.gamma={g}",), note="gamma ablation") for g in (0.0, 0.0005, 0.001, 0.01, 0.05)]
    items += [Item(abl, ("som.gamma_warmup=false",), note="gamma ablation (no warm-up)")]
    for frac in (0.01, 0.1, 1.0):
        for gamma in ("0.0", None):
            ov = (f"train.label_fraction={frac}",) + ((f"som.gamma={gamma}",) if gamma else ())
            items.append(Item("fmnist-classification", ov, seeds=(0, 1, 2), together=False,
                              note="small-data test"))
    return items


def pending(items: list[Item], profile: str, results=None) -> list[tuple[Item, list]]:
    out = []
    for it in items:
        try:
            cfgs = [make_config(it.preset, profile, s, list(it.overrides)) for s in it.seeds]
        except ValueError as e:          # a preset another module has not added yet
            print(f"skip {it.preset}: {e}")
            continue
        todo = [c for c in cfgs if not record_path(c, results).exists()]
        if todo:
            out.append((it, todo))
    return out


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, required=True, help="stop starting/continuing runs after this")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--pack", default=None, help="write the new records into this tar.gz")
    ap.add_argument("--dry-run", action="store_true", help="list what would run")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    deadline = t0 + args.budget_s
    work = pending(priority_list(), args.profile)
    for it, todo in work:
        print(f"{'TODO':5s} {it.preset:28s} {' '.join(it.overrides):40s} seeds {[c.seed for c in todo]} {it.note}")
    if args.dry_run:
        return 0
    from .multiseed import train_together
    from .train import train
    for it, todo in work:
        if time.time() > deadline:
            break
        print(f"[queue] {it.preset} {' '.join(it.overrides)} seeds {[c.seed for c in todo]} "
              f"({deadline - time.time():.0f}s left)", flush=True)
        together = it.together and len(todo) > 1 and todo[0].model.arch == "vit" and \
            todo[0].som.distance != "manhattan" and \
            not any((runs_root() / c.key() / "checkpoint.pt").exists() for c in todo)
        if together:
            train_together(todo, data_root=args.data, device=args.device, progress=False)
        else:
            for c in todo:
                if time.time() > deadline:
                    break
                rec = train(c, data_root=args.data, device=args.device, progress=False, deadline=deadline)
                if rec.get("interrupted"):
                    print(f"[queue] budget reached: {c.preset} seed {c.seed} checkpointed at step {rec['step']}")
                    break
    if args.pack:
        n = pack_records(Path(args.pack), args.profile, since=t0)
        print(f"[queue] packed {n} new records into {args.pack}")
    print(f"[queue] done in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
