"""Command line: ``python -m vitsom train --preset NAME [--profile P] [--seed S] [--set k=v …]``,
``presets``, ``show --preset NAME``, ``plan --profile P [--missing]``, ``summary [--write README.md]`` and
``diagnose RECORD.json …``."""
from __future__ import annotations

import argparse
import json
import sys

from .config import PRESETS, PROFILES, make_config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vitsom", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train one preset (skips runs whose record exists)")
    tr.add_argument("--preset", required=True, help="recipe name (see `python -m vitsom presets`)")
    tr.add_argument("--profile", default="paper", choices=list(PROFILES))
    tr.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds, run in turn")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. som.gamma=0.01 or train.epochs=5")
    tr.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    tr.add_argument("--data", default=None, help="dataset folder (default: $VITSOM_DATA or ./data)")
    tr.add_argument("--results", default=None, help="results folder (default: ./results)")
    tr.add_argument("--force", action="store_true", help="rerun even if a record exists")
    tr.add_argument("--repeat", default=None, metavar="TAG",
                    help="train a run that has a record again (e.g. with another OMP_NUM_THREADS) and file it "
                         "as results/<profile>/<preset>/repeats/<key>.TAG.json; the tables keep the record")
    tr.add_argument("--no-compile", action="store_true", help="never use torch.compile")
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("--together", action="store_true",
                    help="train all --seed values at once as one vectorised model (faster on a GPU)")
    sub.add_parser("presets", help="list the presets and profiles")
    sh = sub.add_parser("show", help="print the resolved config of a preset as JSON")
    sh.add_argument("--preset", required=True)
    sh.add_argument("--profile", default="paper", choices=list(PROFILES))
    sh.add_argument("--set", dest="overrides", action="append", default=[])
    pl = sub.add_parser("plan", help="list the book's runs for a profile: which have a record, which are missing")
    pl.add_argument("--profile", default="quick", choices=list(PROFILES))
    pl.add_argument("--seeds", nargs="+", default=None, help="default: the profile's seeds")
    pl.add_argument("--datasets", nargs="+", default=None, help="default: every dataset")
    pl.add_argument("--results", default=None, help="results folder (default: ./results)")
    pl.add_argument("--missing", action="store_true", help="list only the runs that lack a record")
    su = sub.add_parser("summary", help="the paper numbers that have a paper-profile record, ours beside them "
                                        "(markdown); --write FILE replaces the summary block in FILE, --check FILE "
                                        "fails if that block is out of date")
    su.add_argument("--results", default=None, help="results folder (default: ./results)")
    mode = su.add_mutually_exclusive_group()
    mode.add_argument("--write", default=None, metavar="FILE")
    mode.add_argument("--check", default=None, metavar="FILE")
    dg = sub.add_parser("diagnose", help="add the diagnostics (SOM gradient share, prototype gradient, latent "
                                         "spread, chance purity) that existing run records lack (needs their "
                                         "weights in runs/<key>/model.pt)")
    dg.add_argument("records", nargs="+", help="record JSON files, e.g. results/quick/*/KEY.json")
    dg.add_argument("--data", default=None)
    dg.add_argument("--redo", action="store_true", help="measure every diagnostic again, not only the missing ones")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "presets":
            for name, cfg in sorted(PRESETS.items()):
                s = cfg.som
                print(f"{name:32s} {cfg.task:14s} {cfg.dataset:12s} map {s.height}x{s.width}  "
                      f"γ={s.gamma}  T {s.t_max}→{s.t_min}  {cfg.train.epochs} ep  B={cfg.train.batch_size}")
            print("profiles:", ", ".join(PROFILES))
            return 0
        if args.cmd == "show":
            print(json.dumps(make_config(args.preset, args.profile, 0, args.overrides).to_dict(), indent=1))
            return 0
        if args.cmd == "plan":
            return print_plan(args.profile, args.seeds, args.datasets, args.results, args.missing)
        if args.cmd == "summary":
            return summary(args.results, args.write, args.check)
        if args.cmd == "diagnose":
            from .diagnostics import add_diagnostics
            for f in args.records:
                diag = add_diagnostics(f, data_root=args.data, redo=args.redo).get("diagnostics", {})
                shown = {"som_gradient": ("ratio", "cosine", "gamma_t"), "latent_spread": ("mean_pairwise_cosine",),
                         "chance_purity": ("purity", "chance_purity")}
                parts = {k: ({name: d[name] for name in fields if name in d} if "error" not in d else d)
                         for k, fields in shown.items() if (d := diag.get(k))}
                print(f"{f}: " + (json.dumps(parts) if parts else "not a ViT-SOM run: nothing to measure"))
            return 0
        from .train import train
        cfgs = [make_config(args.preset, args.profile, seed, args.overrides) for seed in args.seed]
        for cfg in cfgs:
            if args.no_compile:
                cfg.train.compile = False
        if args.together and args.repeat is not None:
            raise ValueError("--repeat trains one run at a time; drop --together")
        if args.together and len(cfgs) > 1:
            from .multiseed import train_together
            recs = train_together(cfgs, results=args.results, data_root=args.data, device=args.device,
                                  force=args.force, progress=not args.no_progress)
        else:
            recs = [train(cfg, results=args.results, data_root=args.data, device=args.device,
                          force=args.force, progress=not args.no_progress, repeat=args.repeat) for cfg in cfgs]
        for rec in recs:
            print(json.dumps({"preset": rec["preset"], "seed": rec["seed"], "profile": rec["profile"],
                              "metrics": rec["metrics"], "wall_time_s": rec["wall_time_s"]}))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:      # TrainingInterrupted says where its checkpoint is
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    return 0


def summary(results, write: str | None, check: str | None) -> int:
    """Print the paper-profile summary, or write it into (or check it against) a file's summary block."""
    from pathlib import Path
    from .records import atomic_write_bytes
    from .reported import paper_profile_summary, replace_summary
    text = paper_profile_summary(results)
    if write is None and check is None:
        print(text)
        return 0
    path = Path(write or check)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    old = path.read_text()
    new = replace_summary(old, text)
    if check is not None:
        if new != old:
            print(f"{path}: the paper-profile summary is out of date with the records in results/; "
                  f"run `python -m vitsom summary --write {path}` and commit it", file=sys.stderr)
            return 1
        print(f"{path}: the paper-profile summary matches the records")
        return 0
    atomic_write_bytes(path, new.encode())
    print(f"{path}: summary {'unchanged' if new == old else 'updated'}")
    return 0


def print_plan(profile: str, seeds, datasets, results, missing_only: bool = False) -> int:
    """One line per recipe of the book's plan (preset + overrides): the seeds with a record, the
    seeds without, and the pages that show it. Nothing is trained or loaded beyond the records."""
    from . import experiments as E
    from .book import device_label
    plan = E.Plan.make(profile, seeds=seeds, datasets=datasets, results=results)
    pages: dict[tuple, list[str]] = {}
    for nb in E.NOTEBOOKS:
        for r in E.runs(nb, plan):
            pages.setdefault((r.preset, r.overrides), []).append(nb[:2])
    outcomes = E.execute(E.all_runs(plan), plan, train_missing=False, log=lambda _: None)
    groups: dict[tuple, dict[str, list]] = {}
    for o in outcomes:
        g = groups.setdefault((o.run.preset, o.run.overrides), {"have": [], "missing": [], "walls": []})
        g["have" if o.record is not None else "missing"].append(o.run.seed)
        if o.record is not None and o.record.get("wall_time_s"):
            g["walls"].append((o.record["wall_time_s"], device_label(o.record)))
    print(f"profile {plan.profile}, seeds {' '.join(map(str, plan.seeds))}, results in "
          f"{plan.results or 'results/'}{plan.profile}/")
    for (preset, ov), g in groups.items():
        if missing_only and not g["missing"]:
            continue
        have = f"{len(g['have'])}/{len(g['have']) + len(g['missing'])}"
        miss = f"  missing seeds {' '.join(map(str, g['missing']))}" if g["missing"] else ""
        if g["missing"] and g["walls"]:    # what one of its records took, as a guide to the missing ones
            wall, dev = max(g["walls"])
            miss += f" (a record took {E.human_seconds(wall)} on {dev})"
        recipe = preset + (" " + " ".join(f"--set {o}" for o in ov) if ov else "")
        print(f"  {have:>5s}  {recipe:58s} pages {','.join(dict.fromkeys(pages[(preset, ov)]))}{miss}")
    n_have = sum(o.record is not None for o in outcomes)
    print(f"{n_have} of {len(outcomes)} runs have a record; train a missing one with "
          f"`python -m vitsom train --profile {plan.profile} --preset NAME [--set k=v] --seed S`, "
          f"or all of them with `make reproduce PROFILE={plan.profile}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
