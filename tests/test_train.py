"""End-to-end training on real USPS (CPU, seconds), determinism, resume, and bad input."""
import json
import re

import pytest
import torch

from vitsom import config as C
from vitsom import data as vdata
from vitsom.evaluation import evaluate
from vitsom.taskdata import load_task_data
from vitsom.train import NonFiniteLossError, build_model, lr_factor, make_optimizer, train

# A short but real run: 2,000 USPS images, 5 epochs (155 steps), the paper's model with a 12×12 map,
# T 4 → 0.05 and lr 0.02. With the full recipe's 40×40 map and T_max = 20 the map needs several
# hundred steps to leave its collapsed start (all samples on one unit), more than a unit test affords.
SHORT = ["train.epochs=5", "train.max_train_samples=2000", "train.batch_size=64", "train.warmup_epochs=1",
         "som.height=12", "som.width=12", "som.t_max=4.0", "som.t_min=0.05", "train.lr=0.02",
         "train.checkpoint_every=0"]


def short_cfg(seed=0, extra=()):
    return C.make_config("usps-clustering", "smoke", seed, SHORT + list(extra))


def test_training_raises_purity_and_is_deterministic(usps_root, isolated_results):
    cfg = short_cfg()
    data = load_task_data(cfg, usps_root)
    torch.manual_seed(cfg.seed)
    untrained = evaluate(build_model(cfg), data.train, torch.device("cpu"), "clustering")
    epochs = []
    rec = train(cfg, data_root=usps_root, device="cpu", progress=False, log=lambda s: None, on_epoch=epochs.append)
    assert rec["metrics"]["n"] == 2000
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5] and {e["epochs"] for e in epochs} == {5}
    assert epochs[-1]["step"] == epochs[-1]["total_steps"] == rec["steps"] and epochs[-1]["epoch_s"] > 0
    assert rec["metrics"]["purity"] > untrained["purity"] + 0.3, (untrained, rec["metrics"])
    assert rec["metrics"]["recon_l1"] < untrained["recon_l1"]
    # the record is on disk, complete, with provenance
    path = isolated_results / "results" / "smoke" / "usps-clustering" / f"{cfg.key()}.json"
    on_disk = json.loads(path.read_text())
    for field in ("config", "seed", "git", "device", "profile", "wall_time_s", "peak_memory", "metrics"):
        assert field in on_disk
    sg = on_disk["diagnostics"]["som_gradient"]          # how hard the SOM pulled on the encoder at the end
    assert sg["ratio"] > 0 and sg["task_grad_norm"] > 0 and sg["batch"] == 64, sg
    pg = on_disk["diagnostics"]["prototype_gradient"]    # the prototypes' gradient next to Adam's ε
    assert pg["rms_bmu_rows"] > 0 and pg["adam_eps"] == 1e-8, pg
    assert on_disk["train_cpu_time_s"] > 0 and on_disk["cpu_share"] > 0     # contention shows as a share < 1
    ls = on_disk["diagnostics"]["latent_spread"]         # how alike the SOM's inputs are
    assert -1.0 < ls["mean_pairwise_cosine"] < 1.0 and ls["batch"] == 64, ls
    # same seed → identical metrics (forced rerun)
    again = train(short_cfg(), data_root=usps_root, device="cpu", progress=False, force=True, log=lambda s: None)
    assert again["metrics"] == rec["metrics"]
    # an existing record is reused, not retrained
    assert train(short_cfg(), data_root=usps_root, device="cpu", progress=False)["created"] == again["created"]
    # a repeat trains the run again into repeats/ with its own checkpoint folder; the record stays
    from vitsom.records import iter_repeats
    rep = train(short_cfg(), data_root=usps_root, device="cpu", progress=False, log=lambda s: None, repeat="again")
    assert rep["metrics"] == rec["metrics"] and rep["repeat"] == "again"
    assert json.loads(path.read_text())["created"] == again["created"]
    assert [r["created"] for r in iter_repeats(again)] == [rep["created"]]
    assert (isolated_results / "runs" / f"{cfg.key()}.again" / "model.pt").exists()


def test_peak_rss_is_measured_per_run():
    """The CPU peak-memory figure covers one run, not everything the process did before it."""
    import numpy as np

    from vitsom.train import _peak_memory, reset_peak_rss
    if not reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs here: peak RSS is process-wide (the record says rss_scope=process)")
    big = np.ones(400 * 2**20 // 8)                      # 400 MiB, touched
    before = _peak_memory(torch.device("cpu"), True)
    del big
    assert reset_peak_rss()
    after = _peak_memory(torch.device("cpu"), True)
    assert before["rss_scope"] == after["rss_scope"] == "run"
    assert before["process_max_rss_gb"] - after["process_max_rss_gb"] > 0.3, (before, after)


def test_resume_after_interruption_gives_the_same_result(usps_root, isolated_results):
    extra = ["train.max_train_samples=1000", "train.epochs=2"]
    full = train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    (isolated_results / "results").rename(isolated_results / "results_full")
    cut = train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False,
                stop_after_steps=11, log=lambda s: None)       # mid-epoch (15 steps per epoch)
    assert cut["interrupted"] and cut["step"] == 11
    resumed = train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    assert resumed["metrics"] == full["metrics"]


def test_checkpoints_are_rate_limited_but_a_stop_always_saves(usps_root, isolated_results, monkeypatch):
    """checkpoint_every_s caps how often a run saves (on a GPU the step rule alone would save a 60 MB
    checkpoint every half second); a stop saves whatever the cap, and at 0 the step rule and every
    epoch end save as before. The record says how many checkpoints were written."""
    import vitsom.train as T
    saved = []
    real_save = T.atomic_torch_save
    monkeypatch.setattr(T, "atomic_torch_save", lambda obj, path: (saved.append(path.name), real_save(obj, path)))
    extra = ["train.max_train_samples=1000", "train.epochs=2", "train.checkpoint_every=5"]   # 15 steps an epoch
    cut = train(short_cfg(1, extra + ["train.checkpoint_every_s=1e9"]), data_root=usps_root, device="cpu",
                progress=False, stop_after_steps=11, log=lambda s: None)
    assert cut["interrupted"] and saved == ["checkpoint.pt"]         # the stop's save only, not steps 5 and 10
    saved.clear()
    rec = train(short_cfg(1, extra + ["train.checkpoint_every_s=1e9"]), data_root=usps_root, device="cpu",
                progress=False, log=lambda s: None)                   # resumes at step 11, to the end
    assert saved.count("checkpoint.pt") == 1 and rec["checkpoints_written"] == 1      # the last epoch's
    assert rec["checkpoint_time_s"] >= 0
    saved.clear()
    every = train(short_cfg(1, extra + ["train.checkpoint_every_s=0"]), data_root=usps_root, device="cpu",
                  progress=False, force=True, log=lambda s: None)
    # steps 5, 10, 15 (and 15's epoch end), 20, 25, 30 (and 30's epoch end)
    assert saved.count("checkpoint.pt") == every["checkpoints_written"] == 8
    assert every["metrics"] == rec["metrics"]                        # how often it saved changes nothing
    with pytest.raises(ValueError, match="checkpoint_every_s must be ≥ 0"):
        short_cfg(1, ["train.checkpoint_every_s=-1"]).validate()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_saves_a_checkpoint_and_the_rerun_resumes_there(usps_root, isolated_results, sig):
    """Ctrl-C (or a scheduler's SIGTERM) mid-run: the run checkpoints after the step it is in and
    raises TrainingInterrupted naming the checkpoint; the same call again resumes there and ends
    exactly where an uninterrupted run ends. The signal handlers are put back afterwards."""
    import os
    import signal

    from vitsom.train import TrainingInterrupted
    extra = ["train.max_train_samples=1000", "train.epochs=2"]
    full = train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False, log=lambda s: None)
    (isolated_results / "results").rename(isolated_results / "results_full")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def send(e):
        if e["epoch"] == 1:
            os.kill(os.getpid(), getattr(signal, sig))
    with pytest.raises(TrainingInterrupted, match=f"stopped by {sig} at step 15 of 30.*run the same command"):
        train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False, log=lambda s: None,
              on_epoch=send)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    logs = []
    resumed = train(short_cfg(1, extra), data_root=usps_root, device="cpu", progress=False, log=logs.append)
    assert any("resuming" in m and "at step 15/30" in m for m in logs), logs
    assert resumed["metrics"] == full["metrics"]


def test_a_second_ctrl_c_stops_at_once(usps_root, isolated_results):
    import os
    import signal

    from vitsom.train import TrainingInterrupted

    def twice(e):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job
    with pytest.raises(KeyboardInterrupt, match="again: stopped at once") as e:
        train(short_cfg(1, ["train.max_train_samples=500", "train.epochs=2"]), data_root=usps_root,
              device="cpu", progress=False, log=lambda s: None, on_epoch=twice)
    assert not isinstance(e.value, TrainingInterrupted)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_nan_loss_stops_with_clear_error(usps_root, isolated_results):
    cfg = short_cfg(extra=["train.lr=1e30", "train.max_train_samples=512", "train.epochs=2"])
    with pytest.raises(NonFiniteLossError, match="lower train.lr or som.gamma"):
        train(cfg, data_root=usps_root, device="cpu", progress=False, log=lambda s: None)


def test_missing_data_error_names_path(tmp_path, isolated_results):
    cfg = short_cfg()
    with pytest.raises(vdata.DataNotFoundError) as e:
        train(cfg, data_root=tmp_path / "nowhere", device="cpu", progress=False)
    assert "nowhere" in str(e.value) and "VITSOM_DATA" in str(e.value)


@pytest.mark.parametrize("override,match", [
    ("som.distance=chebyshev", "unknown SOM distance"),
    ("som.topology=triangle", "unknown SOM topology"),
    ("som.height=0", "at least 1×1"),
    ("som.gamma=-0.1", "gamma must be ≥ 0"),
    ("som.t_min=30", "t_min must be smaller than t_max"),
    ("train.precision=fp8", "unknown precision"),
    ("som.nonsense=1", "unknown config key"),
    ("train.epochs=many", "expects a int"),
    ("train.eps=0", "Adam's ε"),
    ("train.recon_loss=huber", "unknown recon_loss"),
])
def test_bad_config_is_a_clear_error(override, match):
    with pytest.raises(ValueError, match=match):
        C.make_config("usps-clustering", "smoke", 0, [override])


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown preset"):
        C.make_config("imagenet-clustering")
    with pytest.raises(ValueError, match="unknown profile"):
        C.make_config("usps-clustering", "huge")
    with pytest.raises(ValueError, match="valid|available|choose|known"):
        vdata.get_spec("imagenet")


def test_cli_reports_errors_without_traceback(capsys):
    from vitsom.__main__ import main
    assert main(["train", "--preset", "usps-clustering", "--set", "som.gamma=-1"]) == 2
    err = capsys.readouterr().err
    assert "gamma must be ≥ 0" in err and "Traceback" not in err


def test_lr_schedule_matches_reference_numbers():
    # MNIST recipe: base lr 0.005; epoch 0 → 2e-4, epoch 250 → 2.5e-3, epoch 499 → floor 1e-5 × base
    assert 0.005 * lr_factor(0, 500, 25, 1e-5) == pytest.approx(2e-4)
    assert 0.005 * lr_factor(250, 500, 25, 1e-5) == pytest.approx(2.5e-3)
    assert 0.005 * lr_factor(499, 500, 25, 1e-5) == pytest.approx(5e-8)
    assert lr_factor(24, 500, 25, 1e-5) == pytest.approx(0.5 * (1 + __import__("math").cos(3.14159265 * 24 / 500)), rel=1e-6)


def test_presets_cover_the_paper():
    for name in ("mnist-clustering", "fmnist-clustering", "usps-clustering", "mnist-clustering-24x24",
                 "cifar10-classification", "cifar100-classification", "flowers17-classification",
                 "svhn-classification", "tinyimagenet-classification", "pathmnist-classification"):
        C.make_config(name)
    m = C.make_config("mnist-clustering")
    assert (m.som.height, m.som.t_max, m.som.t_min, m.som.gamma, m.train.epochs, m.train.batch_size) == \
        (40, 20.0, 0.001, 0.005, 500, 128)
    smoke = C.make_config("mnist-clustering", "smoke")
    assert smoke.som == m.som and smoke.model == m.model and smoke.train.epochs < m.train.epochs
    assert build_model(m).som.prototypes.shape == (1600, 3136)
    assert C.make_config("usps-clustering", seed=1).key() != C.make_config("usps-clustering", seed=2).key()
    # the v1-era 24×24 recipe (digest §3.4): only the map, schedules and optimiser differ from today's
    v1, now = C.make_config("mnist-clustering-24x24-v1"), C.make_config("mnist-clustering-24x24")
    assert (v1.som.height, v1.som.t_max, v1.som.t_min, v1.som.gamma) == (24, 24.0, 0.1, 0.0005)
    assert not v1.som.gamma_warmup and now.som.gamma_warmup              # the warm-up came after v1
    assert (v1.train.epochs, v1.train.batch_size, v1.train.lr, v1.train.warmup_epochs, v1.train.weight_decay) == \
        (200, 256, 5e-4, 10, 0.0)
    assert v1.model == now.model and v1.som.distance == now.som.distance == "cosine"
    assert C.make_config("usps-clustering-24x24-v1", "quick").train.warmup_epochs == 1   # 10 of 200 → 1 of 10


def test_late_fields_enter_the_key_only_off_their_default():
    """train.eps and train.recon_loss were added after records existed: at their defaults the key is
    the old one (hashed without the fields), so those records keep their names; set off it, the key
    changes and the optimiser (or the loss) gets it."""
    import hashlib
    cfg = C.make_config("usps-clustering", "quick", 0)
    d = cfg.to_dict()
    for k in ("compile", "checkpoint_every", "checkpoint_every_s", "eps", "recon_loss"):
        d["train"].pop(k)
    assert cfg.key() == hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]
    off = C.make_config("usps-clustering", "quick", 0, ["train.eps=1e-12"])
    assert off.key() != cfg.key()
    assert C.make_config("usps-clustering", "quick", 0, ["train.recon_loss=mse"]).key() not in (cfg.key(), off.key())
    opt = make_optimizer(off, build_model(C.make_config("usps-clustering", "smoke", 0, ["train.eps=1e-12"])),
                         torch.device("cpu"))
    assert {g["eps"] for g in opt.param_groups} == {1e-12}


def _write_fake_cifar10(root, n_train=200, n_test=60):
    import pickle
    import numpy as np
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        x = rng.integers(0, 256, (n_train // 5, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, n_train // 5).tolist()
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": x, b"labels": y}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                     b"labels": rng.integers(0, 10, n_test).tolist()}, f)


def test_colour_classification_goes_through_augmented_loader(tmp_path, isolated_results):
    """CIFAR-10 recipe (scaled down) on format-faithful fake files: loader path, record with top-1."""
    from vitsom.taskdata import LoaderBatches, uses_loader
    _write_fake_cifar10(tmp_path / "data")
    cfg = C.make_config("cifar10-classification", "smoke", 0,
                        ["model.depth=1", "model.emb_dim=24", "model.heads=3", "model.dec_emb=6",
                         "train.batch_size=32", "train.epochs=1", "train.checkpoint_every=0"])
    assert uses_loader(cfg)
    data = load_task_data(cfg, tmp_path / "data")
    assert len(data.train) == 160 and len(data.eval_sets["val"]) == 40 and len(data.eval_sets["test"]) == 60
    x, y = next(LoaderBatches(data.train, 32, torch.device("cpu"), 0, num_workers=0).epoch(0))
    assert x.shape == (32, 3, 32, 32) and x.min() < 0          # normalised, augmented tensors
    rec = train(cfg, data_root=tmp_path / "data", device="cpu", progress=False, log=lambda s: None)
    assert 0.0 <= rec["metrics"]["top1"] <= 1.0 and rec["metrics"]["n"] == 60
    assert rec["steps"] == 5


def test_cli_plan_lists_the_runs_with_and_without_a_record(tmp_path, capsys):
    """`python -m vitsom plan` counts a committed record as present and everything else as missing."""
    import shutil
    from vitsom import experiments as E
    from vitsom.__main__ import main
    from vitsom.records import record_path
    plan = E.Plan.make("quick", seeds=[0], datasets=["usps"], results=tmp_path)
    n = len(E.all_runs(plan))
    committed = record_path(C.make_config("usps-clustering-8x8", "quick", 0))   # a record in results/quick
    assert committed.exists()
    args = ["plan", "--profile", "quick", "--seeds", "0", "--datasets", "usps", "--results", str(tmp_path)]
    assert main(args) == 0
    assert f"0 of {n} runs have a record" in capsys.readouterr().out
    target = record_path(C.make_config("usps-clustering-8x8", "quick", 0), tmp_path)
    target.parent.mkdir(parents=True)
    shutil.copy(committed, target)
    assert main(args + ["--missing"]) == 0
    out = capsys.readouterr().out
    assert f"1 of {n} runs have a record" in out
    assert "usps-clustering-8x8 " not in out and "missing seeds 0" in out     # --missing hides the complete one
    assert main(args) == 0
    assert re.search(r"1/1\s+usps-clustering-8x8\s+pages 01,04", capsys.readouterr().out)
    # a recipe with a missing seed gets its existing record's wall time, as a guide
    assert main([*args[:4], "0", "1", *args[5:]]) == 0
    assert re.search(r"1/2\s+usps-clustering-8x8 .*missing seeds 1 \(a record took .+ on cpu", capsys.readouterr().out)


def test_cpu_use_is_cpu_time_over_wall_time_and_threads():
    from vitsom.train import cpu_use
    assert cpu_use(2.0, 4.0, threads=1) == {"train_cpu_time_s": 2.0, "cpu_share": 0.5}
    assert cpu_use(8.0, 4.0, threads=2)["cpu_share"] == 1.0
    assert cpu_use(None, 4.0) == {"train_cpu_time_s": None, "cpu_share": None}     # resumed from an old checkpoint


def test_loader_workers_leave_ctrl_c_to_the_training_loop():
    """Ctrl-C in a terminal reaches the DataLoader's workers too. They must not stop on it (the loader
    would fail with "worker exited unexpectedly" before the training loop could save its checkpoint),
    whatever handler they started with: forked outside the loop's handler here, as a spawned worker
    (macOS, Windows) always is."""
    import multiprocessing
    import os
    import signal

    from torch.utils.data import TensorDataset

    from vitsom.taskdata import LoaderBatches
    ds = TensorDataset(torch.arange(64.0).view(64, 1), torch.zeros(64, dtype=torch.long))
    batches = LoaderBatches(ds, 8, torch.device("cpu"), seed=0, num_workers=1)
    got = []
    for i, (x, _) in enumerate(batches.epoch(0)):
        got.append(x)
        if i == 1:
            workers = multiprocessing.active_children()
            assert workers
            for w in workers:
                os.kill(w.pid, signal.SIGINT)
    assert len(got) == 8 and sorted(torch.cat(got).view(-1).tolist()) == list(range(64))


def test_a_record_of_the_same_run_under_another_profile_is_that_runs_record(tmp_path):
    """The paper profile's 10-epoch point of the training-length study is the very run the quick
    profile trains (same config and seed; only the profile's name differs): its quick record is
    found, train() returns it without training (and says so), and a config that differs in any
    other field, or another seed, is not matched."""
    from vitsom import experiments as E
    from vitsom.records import SCHEMA, atomic_write_json, existing_record_path, record_path
    quick = C.make_config("usps-clustering", "quick", 0)
    paper = C.make_config("usps-clustering", "paper", 0, list(E.length_overrides("usps-clustering", 10)))
    assert quick.key() != paper.key()                                   # the profile's name is in the key
    assert existing_record_path(paper, tmp_path) is None
    atomic_write_json(record_path(quick, tmp_path), {"schema": SCHEMA, "profile": "quick", "preset": quick.preset,
                                                     "seed": 0, "metrics": {"purity": 0.5}, "wall_time_s": 1.0})
    assert existing_record_path(paper, tmp_path) == record_path(quick, tmp_path)
    assert existing_record_path(quick, tmp_path) == record_path(quick, tmp_path)
    longer = C.make_config("usps-clustering", "paper", 0, list(E.length_overrides("usps-clustering", 30)))
    assert existing_record_path(longer, tmp_path) is None               # 30 epochs: a different run
    assert existing_record_path(C.make_config("usps-clustering", "paper", 1,
                                              list(E.length_overrides("usps-clustering", 10))), tmp_path) is None
    lines: list[str] = []
    rec = train(paper, results=tmp_path, data_root=tmp_path / "no-data-here", log=lines.append)
    assert rec["profile"] == "quick" and rec["metrics"]["purity"] == 0.5
    assert any("another profile" in line and str(record_path(quick, tmp_path)) in line for line in lines)
    with pytest.raises(vdata.DataNotFoundError):                         # force: trains, so it needs the data
        train(paper, results=tmp_path, data_root=tmp_path / "no-data-here", force=True, log=lines.append)


def test_repeats_stay_out_of_the_tables_and_must_hold_the_same_config(tmp_path):
    """A repeat (same config, another thread count) sits in ``repeats/`` beside the run's record:
    the tables' reader skips it, ``iter_repeats`` finds it, and a file filed there with another
    config is a clear error, not a silent mismatch."""
    from vitsom.records import SCHEMA, atomic_write_json, iter_records, iter_repeats, record_path, repeats_dir
    cfg = C.make_config("usps-clustering", "paper", 2)
    rec = {"schema": SCHEMA, "profile": "paper", "preset": cfg.preset, "key": cfg.key(), "seed": 2,
           "config": cfg.to_dict(), "metrics": {"purity": 0.95}, "device": {"cpu_threads": 2}}
    atomic_write_json(record_path(cfg, tmp_path), rec)
    assert iter_repeats(rec, tmp_path) == []
    rep = dict(rec, metrics={"purity": 0.96}, device={"cpu_threads": 1})
    atomic_write_json(repeats_dir(rec, tmp_path) / f"{cfg.key()}.1thread.json", rep)
    assert [r["metrics"]["purity"] for r in iter_records(tmp_path)] == [0.95]        # the tables see one run
    assert [r["device"]["cpu_threads"] for r in iter_repeats(rec, tmp_path)] == [1]
    # a record written before a field existed (absent = its default) still matches a repeat made since
    old = dict(rec, config={**rec["config"], "train": {k: v for k, v in rec["config"]["train"].items()
                                                         if k not in ("recon_loss", "checkpoint_every_s")}})
    assert [r["device"]["cpu_threads"] for r in iter_repeats(old, tmp_path)] == [1]
    other = C.make_config("usps-clustering", "paper", 3)
    atomic_write_json(repeats_dir(rec, tmp_path) / f"{cfg.key()}.wrong.json",
                      dict(rec, key=other.key(), config=other.to_dict()))
    with pytest.raises(ValueError, match="another config"):
        iter_repeats(rec, tmp_path)
    # train(repeat=...) refuses a tag that cannot be a file-name part, and a run without a record
    with pytest.raises(ValueError, match="letters, digits"):
        train(cfg, results=tmp_path, data_root=tmp_path / "no-data-here", repeat="1 thread")
    with pytest.raises(ValueError, match="train it first without --repeat"):
        train(other, results=tmp_path, data_root=tmp_path / "no-data-here", repeat="1thread")
