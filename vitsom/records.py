"""Run records: provenance, atomic writes, and lookup by config key.

A record is one JSON file per run at ``results/<profile>/<preset>/<key>.json`` holding the metrics
and everything needed to say where they came from (config, seed, profile, git commit, device,
wall time, peak memory); a run made again under another arithmetic order (e.g. CPU thread
count) is kept apart as a *repeat* (:func:`repeats_dir`). Writes are atomic (temp file + rename),
so an interrupted run never leaves a half-written record.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = 1


def results_root(path: str | os.PathLike | None = None) -> Path:
    """Explicit path, else env ``VITSOM_RESULTS``, else ``<repo>/results``."""
    return Path(path or os.environ.get("VITSOM_RESULTS") or REPO_ROOT / "results")


def runs_root(path: str | os.PathLike | None = None) -> Path:
    """Checkpoints and trained weights (git-ignored): env ``VITSOM_RUNS`` or ``<repo>/runs``."""
    return Path(path or os.environ.get("VITSOM_RUNS") or REPO_ROOT / "runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def git_commit() -> dict[str, Any]:
    """The commit of the code this process loaded, and whether the working tree had uncommitted
    changes then (None outside git). Read once, when vitsom was imported: a run that lasts hours
    records the code it ran, not a commit made while it was running."""
    return dict(_GIT_AT_IMPORT)


def _read_git() -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    here = {"commit": commit, "dirty": bool(status) if status is not None else None}
    named = os.environ.get("VITSOM_GIT_COMMIT")
    if named and named != commit:
        # a working tree copied to another machine with an older .git (the GPU device): the
        # committed tree it is a copy of is named by whoever sent it; what git said there is kept
        return {"commit": named, "dirty": None,
                "note": f"commit named by VITSOM_GIT_COMMIT; git in the copied tree read {commit} "
                        f"(dirty: {here['dirty']})"}
    return here


def bf16_som_distances(rec: dict) -> bool:
    """A record made before the SOM distances were kept in fp32 under bf16 autocast (the GPU records
    of 2026-11-27): its BMUs came from bf16 distances (see the deviation "SOM distance precision")."""
    return (rec.get("precision") in ("torch.bfloat16", "bf16") and "som_distances" not in rec
            and (rec.get("config", {}).get("som", {}).get("height") or 0) > 0)


def device_info(device: torch.device) -> dict[str, Any]:
    """Type, name and torch version of the device; ``shared`` says what else ran on it at the same
    time (from env ``VITSOM_DEVICE_SHARED``, which the GPU session script sets when several queue
    processes share one GPU): such a run's times are not the device's own speed."""
    info: dict[str, Any] = {"type": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = _cpu_name()
        info["cpu_threads"] = torch.get_num_threads()
    if os.environ.get("VITSOM_DEVICE_SHARED"):
        info["shared"] = os.environ["VITSOM_DEVICE_SHARED"]
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_path(cfg, results: str | os.PathLike | None = None) -> Path:
    return results_root(results) / cfg.profile / cfg.preset / f"{cfg.key()}.json"


def existing_record_path(cfg, results: str | os.PathLike | None = None) -> Path | None:
    """The record of ``cfg``'s run: its own (:func:`record_path`), else the record of the very same
    run made under another profile, else None.

    A profile only scales a preset (epochs, data subset), so with overrides a run of one profile
    can be the same computation as a run of another: the paper profile's 10-epoch point of the
    training-length study *is* the quick profile's 10-epoch run on the full data. "The same" means
    the configs are equal in every field of the record key except the profile's name. Such a
    record keeps the profile it was made under, so tables built from it say so."""
    own = record_path(cfg, results)
    if own.exists():
        return own
    from .config import PROFILES
    for other in PROFILES:
        if other != cfg.profile:
            alt = record_path(dataclasses.replace(cfg, profile=other), results)
            if alt.exists():
                return alt
    return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load_record(path: str | os.PathLike) -> dict:
    with open(path) as f:
        rec = json.load(f)
    if rec.get("schema") != SCHEMA or "metrics" not in rec:
        raise ValueError(f"{path} is not a vitsom run record (schema {rec.get('schema')!r})")
    return rec


def iter_records(results: str | os.PathLike | None = None, profile: str | None = None,
                 preset: str | None = None) -> Iterator[dict]:
    """All records under the results folder, optionally filtered by profile and preset."""
    root = results_root(results)
    pattern = f"{profile or '*'}/{preset or '*'}/*.json"
    for p in sorted(root.glob(pattern)):
        try:
            rec = load_record(p)
        except (ValueError, json.JSONDecodeError):
            continue
        rec["_path"] = str(p)
        yield rec


def repeats_dir(rec: dict, results: str | os.PathLike | None = None) -> Path:
    """Where repeats of the run ``rec`` live: ``results/<profile>/<preset>/repeats/``.

    A repeat is the same config (same key, seed included) run again under another arithmetic
    order, e.g. another CPU thread count. Tables use only the run's own record; its repeats, named
    ``<key>.<tag>.json``, show how far a run moves when only the arithmetic changes."""
    return results_root(results) / rec["profile"] / rec["preset"] / "repeats"


_REPEAT_TAG = re.compile(r"[A-Za-z0-9_-]+")


def repeat_path(cfg, tag: str, results: str | os.PathLike | None = None) -> Path:
    """The record of repeat ``tag`` of ``cfg``'s run: ``repeats/<key>.<tag>.json`` (see :func:`repeats_dir`)."""
    if not isinstance(tag, str) or not _REPEAT_TAG.fullmatch(tag):
        raise ValueError(f"repeat tag {tag!r}: use only letters, digits, '-' and '_' (e.g. 2threads), "
                         "since it becomes part of the file name <key>.<tag>.json")
    return repeats_dir({"profile": cfg.profile, "preset": cfg.preset}, results) / f"{cfg.key()}.{tag}.json"


def run_dir(cfg, repeat: str | None = None) -> Path:
    """Checkpoint and weights folder of ``cfg``'s run, ``runs/<key>/``; a repeat gets its own,
    ``runs/<key>.<tag>/``, so it never resumes from or overwrites the run it repeats."""
    return runs_root() / (cfg.key() if repeat is None else f"{cfg.key()}.{repeat}")


def iter_repeats(rec: dict, results: str | os.PathLike | None = None) -> list[dict]:
    """The repeats of the run ``rec`` (see :func:`repeats_dir`), each checked to be the same config:
    its config must hash to ``rec``'s key. (Comparing the config dicts would be too strict: a record
    written by older code lacks fields added since at their default, which the key leaves out.)"""
    from .config import config_from_dict
    out = []
    for p in sorted(repeats_dir(rec, results).glob(f"{rec['key']}.*.json")):
        rep = load_record(p)
        try:
            same = config_from_dict(rep["config"]).key() == rec["key"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{p} is filed as a repeat of run {rec['key']} but its config cannot be read ({e!r})")
        if rep.get("key") != rec["key"] or not same:
            raise ValueError(f"{p} is filed as a repeat of run {rec['key']} but holds another config "
                             f"(key {rep.get('key')!r}); move it out of {p.parent}")
        rep["_path"] = str(p)
        out.append(rep)
    return out


_GIT_AT_IMPORT = _read_git()
