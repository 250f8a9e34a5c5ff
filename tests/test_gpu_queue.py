"""The GPU work queue: priority order, skipping runs that have records, packing records."""
import tarfile

import pytest
import torch

from vitsom import gpu_queue
from vitsom.config import make_config
from vitsom.records import atomic_write_json, record_path


def test_priority_starts_with_usps_vit_som_and_covers_baselines():
    items = gpu_queue.priority_list()
    assert (items[0].preset, items[0].overrides) == ("usps-clustering", ())
    assert items[1].preset == "usps-clustering-24x24"
    names = [i.preset for i in items]
    assert names.index("mnist-clustering") < names.index("desom-mnist") < names.index("fmnist-classification")
    assert all(len(i.seeds) >= 3 for i in items)
    assert names.index("som-fmnist") < names.index("usps-clustering-24x24-v1") < names.index("fmnist-classification")


def test_pending_skips_recorded_runs_and_packs_them(isolated_results, tmp_path):
    item = gpu_queue.Item("usps-clustering", (), (0, 1))
    done = make_config("usps-clustering", "paper", 0)
    atomic_write_json(record_path(done), {"schema": 1, "metrics": {"purity": 0.9}})
    todo = gpu_queue.pending([item], "paper")
    assert [c.seed for c in todo[0][1]] == [1]
    n = gpu_queue.pack_records(tmp_path / "r.tar.gz", "paper", since=0)
    assert n == 1
    with tarfile.open(tmp_path / "r.tar.gz") as tar:
        assert f"results/paper/usps-clustering/{done.key()}.json" in tar.getnames()


def test_records_with_bf16_som_distances_are_retrained_last(isolated_results):
    """GPU records made before the SOM distances were kept in fp32 are queued again, after every run
    that has no record, and trained over their record (force); fp32 and CPU records are not."""
    from vitsom.records import SCHEMA
    a = gpu_queue.Item("desom-usps", (), (0, 1, 2), together=False, note="DESOM")
    b = gpu_queue.Item("usps-clustering", (), (0,))
    cfg = {s: make_config("desom-usps", "paper", s) for s in (0, 1, 2)}
    old = {"schema": SCHEMA, "metrics": {}, "precision": str(torch.bfloat16), "config": cfg[0].to_dict()}
    atomic_write_json(record_path(cfg[0]), old)                                       # bf16 distances
    atomic_write_json(record_path(cfg[1]), {**old, "som_distances": "fp32"})          # after the fix
    work = gpu_queue.pending([a, b], "paper")
    assert [(it.preset, it.redo, [c.seed for c in todo]) for it, todo in work] == \
        [("desom-usps", False, [2]), ("usps-clustering", False, [0]), ("desom-usps", True, [0])]
    assert "again: bf16 SOM distances" in work[-1][0].note and not work[-1][0].together
    atomic_write_json(record_path(cfg[0]), {**old, "precision": "fp32"})              # a CPU record
    assert [it.redo for it, _ in gpu_queue.pending([a], "paper")] == [False]


def test_cannot_finish_projects_from_the_last_epoch():
    from vitsom.train import cannot_finish
    now = 1000.0
    # 10 s/epoch, 9 epochs left (+1 for evaluation) × 1.05 = 105 s needed
    assert cannot_finish(10.0, 9, 2, deadline=now + 100, now=now) == pytest.approx(105.0)
    assert cannot_finish(10.0, 9, 2, deadline=now + 110, now=now) is None
    assert cannot_finish(10.0, 9, 1, deadline=now + 1, now=now) is None      # first epoch: start-up costs
    assert cannot_finish(10.0, 0, 5, deadline=now + 1, now=now) is None      # nothing left to train
    assert cannot_finish(10.0, 9, 2, deadline=None, now=now) is None


TINY = ["train.max_train_samples=128", "train.batch_size=32", "som.height=4", "som.width=4",
        "train.warmup_epochs=0", "train.checkpoint_every=0"]


def test_unfinishable_run_gives_up_early(usps_root, isolated_results):
    """A run that cannot finish before the deadline stops after its second epoch (not at the
    deadline) with a checkpoint; a run that fits finishes under the same rule."""
    import time
    from pathlib import Path

    from vitsom.train import train
    cfg = make_config("usps-clustering", "smoke", 0, TINY + ["train.epochs=3000"])
    t0 = time.time()
    cut = train(cfg, data_root=usps_root, device="cpu", progress=False, deadline=t0 + 120,
                skip_unfinishable=True, log=lambda s: None)
    assert cut["unfinishable"] and cut["step"] == 2 * 4 and cut["projected_s"] > 120 - (time.time() - t0)
    assert Path(cut["checkpoint"]).exists() and time.time() - t0 < 60
    short = make_config("usps-clustering", "smoke", 0, TINY + ["train.epochs=3"])
    rec = train(short, data_root=usps_root, device="cpu", progress=False, deadline=time.time() + 120,
                skip_unfinishable=True, log=lambda s: None)
    assert not rec.get("interrupted") and rec["steps"] == 3 * 4


def test_queue_moves_past_a_run_that_cannot_finish(usps_root, isolated_results, monkeypatch, capsys):
    """The queue gives up on an item that cannot finish in the budget (3000 epochs: not even one
    seed alone would fit, so it does not try) and still trains the next item, which fits."""
    long = gpu_queue.Item("usps-clustering", tuple(TINY + ["train.epochs=3000"]), (0, 1))
    short = gpu_queue.Item("usps-clustering", tuple(TINY + ["train.epochs=2"]), (0,))
    monkeypatch.setattr(gpu_queue, "priority_list", lambda: [long, short])
    assert gpu_queue.main(["--budget-s", "150", "--profile", "smoke", "--device", "cpu",
                           "--data", str(usps_root)]) == 0
    out = capsys.readouterr().out
    assert "one seed would not fit either" in out and "skipped usps-clustering" in out
    assert "trying one seed at a time" not in out
    assert all(not record_path(make_config("usps-clustering", "smoke", s, list(long.overrides))).exists()
               for s in (0, 1))
    assert record_path(make_config("usps-clustering", "smoke", 0, list(short.overrides))).exists()
    # one seed at a time: seed 0 is found unfinishable, so seed 1 of the same item is not even tried
    record_path(make_config("usps-clustering", "smoke", 0, list(short.overrides))).unlink()
    assert gpu_queue.main(["--budget-s", "150", "--profile", "smoke", "--device", "cpu", "--data", str(usps_root),
                           "--one-seed-at-a-time"]) == 0
    out = capsys.readouterr().out
    assert "[queue] skipped usps-clustering" in out and "seed 0:" in out
    assert "seeds [1]" in out and "[queue] usps-clustering " + " ".join(long.overrides) + " seeds [1]" not in out
    assert record_path(make_config("usps-clustering", "smoke", 0, list(short.overrides))).exists()


def test_a_redo_item_trains_over_its_old_record(usps_root, isolated_results):
    import time

    from vitsom.records import SCHEMA, load_record
    cfg = make_config("som-usps", "smoke", 0, TINY)
    atomic_write_json(record_path(cfg), {"schema": SCHEMA, "metrics": {"purity": 0.0}, "precision": str(torch.bfloat16),
                                         "config": cfg.to_dict()})
    it = gpu_queue.Item("som-usps", tuple(TINY), (0,), together=False, redo=True)
    assert gpu_queue.run_item(it, [cfg], time.time() + 300, usps_root, "cpu", skip=True)
    rec = load_record(record_path(cfg))
    assert rec["som_distances"] == "fp32" and rec["metrics"]["purity"] > 0


def test_shards_split_the_queue_without_overlap(monkeypatch, capsys):
    """``--shard K/N`` processes together list every pending item exactly once."""
    items = [gpu_queue.Item("usps-clustering", (f"som.gamma={g}",), (0,)) for g in (0.001, 0.002, 0.003, 0.004, 0.005)]
    monkeypatch.setattr(gpu_queue, "priority_list", lambda: items)
    monkeypatch.setattr(gpu_queue, "pending", lambda its, profile: [(it, []) for it in its])
    seen = []
    for k in range(3):
        gpu_queue.main(["--budget-s", "1", "--dry-run", "--shard", f"{k}/3"])
        seen += [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("TODO")]
    assert sorted(seen) == sorted(it.overrides[0] for it in items)
    # one seed at a time: the shards split (item, seed) pairs, shard k taking seed k of each item
    two = [gpu_queue.Item("usps-clustering", (f"som.gamma={g}",), (0, 1)) for g in (0.001, 0.002)]
    monkeypatch.setattr(gpu_queue, "pending", lambda its, profile: [(it, [make_config(it.preset, "smoke", s)
                                                                         for s in it.seeds]) for it in two])
    for k in range(2):
        gpu_queue.main(["--budget-s", "1", "--dry-run", "--shard", f"{k}/2", "--one-seed-at-a-time"])
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("TODO")]
        assert [line.split("seeds")[1].split("]")[0] + "]" for line in lines] == [f" [{k}]"] * 2
    for bad in ("3/3", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            gpu_queue.parse_shard(bad)


def test_records_name_the_commit_the_device_tree_was_copied_from(monkeypatch):
    """On the device the copied tree's .git may be older than the code: VITSOM_GIT_COMMIT names the
    real commit, and what git read there is kept beside it."""
    from vitsom import records
    here = records._read_git()
    monkeypatch.setenv("VITSOM_GIT_COMMIT", "0" * 40)
    got = records._read_git()
    if here["commit"] is None:
        pytest.skip("not a git checkout")
    assert got["commit"] == "0" * 40 and got["dirty"] is None and here["commit"] in got["note"]
    monkeypatch.setenv("VITSOM_GIT_COMMIT", here["commit"])
    assert records._read_git() == here


def test_hopeless_runs_are_skipped_before_they_start(usps_root, isolated_results, monkeypatch, capsys):
    """After one finished run, a run whose step count times the fastest timed step (halved) exceeds
    the time left is skipped without loading data or compiling; the step count comes from another
    record of the same preset and data (here the first item's)."""
    short = gpu_queue.Item("usps-clustering", tuple(TINY + ["train.epochs=2"]), (0,))
    long = gpu_queue.Item("usps-clustering", tuple(TINY + ["train.epochs=100000"]), (0, 1))
    cfg = make_config("usps-clustering", "smoke", 0, list(long.overrides))
    assert gpu_queue.steps_per_epoch_hint(cfg) is None and gpu_queue.hopeless(cfg, 1.0, 10.0) is None
    monkeypatch.setattr(gpu_queue, "priority_list", lambda: [short, long])
    assert gpu_queue.main(["--budget-s", "150", "--profile", "smoke", "--device", "cpu", "--data", str(usps_root),
                           "--one-seed-at-a-time"]) == 0
    out = capsys.readouterr().out
    assert "skipped usps-clustering" in out and "seed 0 without starting it" in out
    assert "seed 1 without starting it" not in out           # the item is given up as a whole
    assert gpu_queue.steps_per_epoch_hint(cfg) == 4          # 128 images, batch 32
    assert gpu_queue.hopeless(cfg, 1e-9, 10.0) is None       # a fast enough step: try it
    assert gpu_queue.hopeless(cfg, 1e-3, 10.0) == pytest.approx(0.5 * 4 * 100000 * 1e-3)


def test_strategy_from_a_probe():
    """The queue's way of training is picked from a short benchmark probe: CUDA graphs only when
    clearly faster, seeds together only when S models step in under twice one model's time, and the
    tested default when the probe measured nothing."""
    def probe(**rows):
        return {"rows": {k: ({"s_per_step": v[0], "members": v[1]} if isinstance(v, tuple) else
                             {"s_per_step": v} if v else {"error": "RuntimeError: boom"}) for k, v in rows.items()}}
    st = gpu_queue.choose_strategy(probe(default=0.004, default_cudagraphs=0.0015, together_x5_compiled=(0.02, 5)))
    assert (st["compile_mode"], st["one_seed"], st["shards"]) == ("reduce-overhead", True, 5)
    assert "1.50 ms/step" in st["why"] and "7 min" in st["why"]          # 273,000 × 1.5 ms
    st = gpu_queue.choose_strategy(probe(default=0.004, default_cudagraphs=0.0038, together_x5_compiled=(0.006, 5)))
    assert (st["compile_mode"], st["one_seed"], st["shards"]) == ("default", False, 2)
    st = gpu_queue.choose_strategy(probe(default=0.004, default_cudagraphs=None))     # CUDA graphs failed
    assert (st["compile_mode"], st["one_seed"]) == ("default", True)
    st = gpu_queue.choose_strategy(probe(default_cudagraphs=0.002))                  # default row timed out
    assert st["compile_mode"] == "reduce-overhead"
    assert gpu_queue.choose_strategy({})["compile_mode"] == "default"


def test_strategy_command_prints_shell_assignments(tmp_path, capsys):
    import json
    import shlex
    f = tmp_path / "probe.json"
    f.write_text(json.dumps({"rows": {"default": {"s_per_step": 0.004}, "default_cudagraphs": {"s_per_step": 0.001}}}))
    assert gpu_queue.main(["--strategy", str(f)]) == 0
    line = capsys.readouterr().out.strip()
    env = dict(part.split("=", 1) for part in shlex.split(line.replace(";", " ")))
    assert env["VITSOM_COMPILE_MODE"] == "reduce-overhead" and env["ONE_SEED"] == "1" and env["SHARDS"] == "5"
    assert gpu_queue.main(["--strategy", str(tmp_path / "missing.json")]) == 0       # no probe: the default
    assert "VITSOM_COMPILE_MODE=default;" in capsys.readouterr().out
