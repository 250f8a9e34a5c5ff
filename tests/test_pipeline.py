"""The book pipeline: the experiment plan, the paper's numbers, the plots, and an end-to-end smoke
build of the book (USPS, 1 seed, shrunken runs) whose HTML must contain every table and figure."""
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from vitsom import experiments as E, book as B, reported as R
from vitsom import plots as P
from vitsom.pipeline import ipynb_text
from vitsom.records import REPO_ROOT

# What each page must show when the book is built for USPS alone (markers emitted by
# book.show_table / show_figure).
TABLES = {
    "01_clustering": ["tbl-runs", "tbl-clustering-purity", "tbl-desom-stall", "tbl-clustering-length",
                      "tbl-clustering-all"],
    "02_classification": ["tbl-runs", "tbl-classification", "tbl-small-data"],
    "03_ablation_distance": ["tbl-runs", "tbl-ablation-distance"],
    "04_ablation_grid": ["tbl-runs", "tbl-ablation-grid"],
    "05_ablation_gamma": ["tbl-runs", "tbl-ablation-gamma"],
    "06_efficiency": ["tbl-runs", "tbl-efficiency-ours", "tbl-efficiency-paper"],
    "07_figures": ["tbl-runs"],
}
FULL_RECIPE_TABLES = {       # a smoke/quick build's tables of the paper-profile records that exist
    "01_clustering": "tbl-clustering-purity-paper-profile",
    "03_ablation_distance": "tbl-ablation-distance-paper-profile",
    "04_ablation_grid": "tbl-ablation-grid-paper-profile",
    "05_ablation_gamma": "tbl-ablation-gamma-paper-profile",
}
REPEATS_TABLES = {"03_ablation_distance": "tbl-distance-repeats", "04_ablation_grid": "tbl-grid-repeats",
                  "05_ablation_gamma": "tbl-gamma-repeats"}
FIGURES = {
    "01_clustering": ["fig-desom-curves", "fig-clustering-length"],
    "03_ablation_distance": ["fig-ablation-distance"],
    "04_ablation_grid": ["fig-ablation-grid", "fig-ablation-grid-time"],
    "05_ablation_gamma": ["fig-ablation-gamma"],
    "07_figures": ["fig-architecture", "fig-size-vs-score", "fig-umap-progression", "fig-prototypes",
                   "fig-hitmap-umatrix"],
}


# ----------------------------------------------------------------------------- plan and numbers

def test_default_seeds_and_narrowing():
    assert E.Plan.make("smoke").seeds == (0,)
    assert E.Plan.make("quick").seeds == (0, 1, 2)
    assert E.Plan.make("paper").seeds == (0, 1, 2, 3, 4)
    plan = E.Plan.make("quick", seeds=[2, 1], datasets=["usps", "fashion-mnist"])
    assert plan.seeds == (1, 2) and plan.datasets == ("usps", "fmnist")
    runs = E.runs("01_clustering", plan)
    assert {r.dataset for r in runs} == {"usps", "fmnist"} and {r.seed for r in runs} == {1, 2}
    # papermill may pass strings
    assert E.Plan.make("smoke", seeds="0 3", datasets="usps,mnist").seeds == (0, 3)


def test_every_notebook_has_a_plan_and_smoke_is_cut_down():
    smoke, paper = E.Plan.make("smoke"), E.Plan.make("paper")
    for nb in E.NOTEBOOKS:
        assert E.runs(nb, paper), nb
        assert len(E.runs(nb, smoke)) <= len(E.runs(nb, paper))
    # smoke: ablations on USPS only; paper: on all three clustering datasets
    for nb in ("03_ablation_distance", "04_ablation_grid", "05_ablation_gamma"):
        assert {r.dataset for r in E.runs(nb, smoke)} == {"usps"}
        assert {r.dataset for r in E.runs(nb, paper)} == set(E.CLUSTERING_DATASETS)
    # the grid ablation reuses the clustering table's runs for 8, 24 and 40
    keys = {(r.preset, r.overrides) for r in E.runs("01_clustering", paper)}
    grid = [(r.preset, r.overrides) for r in E.runs("04_ablation_grid", paper) if r.dataset == "usps"]
    assert sum(k in keys for k in set(grid)) == 3
    # the distance page: 3 distances on patch tokens + cosine on the CLS token alone, which must reach the config
    dist = E.runs("03_ablation_distance", E.Plan.make("quick", datasets=["usps"], seeds=[0]))
    assert sorted((dict(r.factors)["distance"], dict(r.factors)["som_input"]) for r in dist) == \
        [("cosine", "cls"), ("cosine", "patches"), ("euclidean", "patches"), ("manhattan", "patches")]
    cls_run = next(r for r in dist if dict(r.factors)["som_input"] == "cls")
    assert cls_run.config("quick").som.som_input == "cls" and set(E.SOM_INPUTS) == {"patches", "cls"}
    # the γ sweep: 6 values × warm-up on/off, γ = 0 once
    gam = E.runs("05_ablation_gamma", E.Plan.make("paper", datasets=["usps"], seeds=[0]))
    assert len(gam) == 11 + len(E.SMALL_EPS_GAMMAS)          # 6 γ × warm-up on/off (γ = 0 once) + the ε = 1e-12 reruns
    assert sum(dict(r.factors)["eps"] == E.SMALL_EPS for r in gam) == len(E.SMALL_EPS_GAMMAS)
    # the latent-progression run keeps weight snapshots, in the clustering notebook too
    fr = E.figure_run(smoke)
    assert fr.snapshots and fr.preset == "mnist-clustering-24x24"
    assert any(r.preset == fr.preset and r.seed == fr.seed and r.snapshots for r in E.runs("01_clustering", smoke))
    assert E.snapshot_epochs(500) == (0, 10, 100, 500) and E.snapshot_epochs(2) == (0, 1, 2)


def test_training_length_study_stretches_the_recipe_on_the_ablation_datasets():
    # the preset's warm-up (25 of 500 epochs) scales with the epochs, as a profile scales it
    assert E.length_overrides("usps-clustering", 100) == ("train.epochs=100", "train.warmup_epochs=5")
    assert E.length_overrides("usps-clustering", 30) == ("train.epochs=30", "train.warmup_epochs=2")
    assert E.length_overrides("usps-clustering", 4) == ("train.epochs=4", "train.warmup_epochs=1")
    with pytest.raises(ValueError, match="epochs must be"):
        E.length_overrides("usps-clustering", 0)
    quick = E.runs("01_clustering", E.Plan.make("quick", seeds=[0]))
    longer = [r for r in quick if r.model.endswith(" epochs")]
    assert {(r.dataset, r.model) for r in longer} == {("usps", E.length_model(n)) for n in E.TRAINING_LENGTHS["quick"]}
    for r in longer:
        cfg, base = r.config("quick"), E.Run("usps-clustering").config("quick")
        n = int(r.model.split(", ")[-1].split()[0])
        assert cfg.train.epochs == n and cfg.train.epochs > base.train.epochs
        # only the length changes: same map, γ, temperatures and learning rate as the 10-epoch row
        assert (cfg.som, cfg.train.lr, cfg.train.batch_size) == (base.som, base.train.lr, base.train.batch_size)
    paper = E.runs("01_clustering", E.Plan.make("paper", seeds=[0]))
    assert {r.dataset for r in paper if r.model.endswith(" epochs")} == set(E.CLUSTERING_DATASETS)


def test_desom_gamma_times_units_row_multiplies_only_gamma_by_the_map_size():
    quick = [r for r in E.runs("01_clustering", E.Plan.make("quick", seeds=[0])) if r.model == E.DESOM_K]
    assert [r.dataset for r in quick] == ["usps"]          # the ablation datasets only
    paper = [r for r in E.runs("01_clustering", E.Plan.make("paper", seeds=[0])) if r.model == E.DESOM_K]
    assert {r.dataset for r in paper} == set(E.CLUSTERING_DATASETS)
    cfg, base = paper[-1].config("paper"), E.Run("desom-usps").config("paper")
    assert cfg.som.gamma == pytest.approx(base.som.gamma * 64) and cfg.som.gamma == pytest.approx(0.064)
    assert (cfg.train, cfg.model, cfg.som.distance, cfg.som.t_max) == \
        (base.train, base.model, base.som.distance, base.som.t_max)
    # the classification page's γ×K rows use the same helper: γ × K of their own map
    som = E.Run("fmnist-classification").config("quick").som
    assert E.gamma_times_units("fmnist-classification", "quick") == \
        f"som.gamma={som.gamma * som.height * som.width:g}"
    assert not [r for r in E.runs("01_clustering", E.Plan.make("smoke")) if r.model == E.DESOM_K]


def test_desom_mse_row_changes_only_the_reconstruction_loss():
    quick = [r for r in E.runs("01_clustering", E.Plan.make("quick", seeds=[0])) if r.model == E.DESOM_MSE]
    assert [r.dataset for r in quick] == ["usps"]          # the ablation datasets only
    paper = [r for r in E.runs("01_clustering", E.Plan.make("paper", seeds=[0])) if r.model == E.DESOM_MSE]
    assert {r.dataset for r in paper} == set(E.CLUSTERING_DATASETS)
    for r in paper:
        cfg, base = r.config("paper"), E.Run(r.preset).config("paper")
        assert cfg.train.recon_loss == "mse" and base.train.recon_loss == "l1"
        cfg.train.recon_loss = "l1"
        assert cfg == base
    assert not [r for r in E.runs("01_clustering", E.Plan.make("smoke")) if r.model == E.DESOM_MSE]


def test_original_desom_length_rows_train_usps_for_10000_steps():
    assert E.epochs_for_steps(10_000, 9_298, 256) == 278            # 36 full batches an epoch: 10,008 steps
    assert E.epochs_for_steps(72, 9_298, 128) == 1 and E.epochs_for_steps(73, 9_298, 128) == 2
    with pytest.raises(ValueError, match="no full batch"):
        E.epochs_for_steps(10, 100, 256)
    rows = (E.DESOM_LONG, E.DESOM_MSE_LONG)
    paper = [r for r in E.runs("01_clustering", E.Plan.make("paper", seeds=[0])) if r.model in rows]
    assert [(r.model, r.dataset) for r in paper] == [(m, "usps") for m in rows]
    base = E.Run("desom-usps").config("paper")
    for r in paper:
        cfg = r.config("paper")
        assert cfg.train.epochs == 278 and (E.USPS_IMAGES // cfg.train.batch_size) * cfg.train.epochs >= 10_000
        assert cfg.train.recon_loss == ("mse" if r.model == E.DESOM_MSE_LONG else "l1")
        cfg.train.epochs, cfg.train.recon_loss = base.train.epochs, "l1"
        assert cfg == base                                               # nothing else changes
    for profile in ("smoke", "quick"):
        assert not [r for r in E.runs("01_clustering", E.Plan.make(profile)) if r.model in rows]


def test_every_run_config_is_valid_or_its_preset_is_reported_missing():
    for r in E.all_runs(E.Plan.make("paper")):
        if E.preset_known(r.preset):
            r.config("paper")            # raises on a bad override


def test_reported_numbers_cover_the_papers_tables():
    by = lambda s: [r for r in R.REPORTED if r.section == s]  # noqa: E731
    assert len(by("clustering")) == 5 * 4          # 5 models × (3 datasets + params)
    assert len(by("classification")) == 6 * 7      # 6 models × (6 datasets + params)
    assert len(by("train_time")) == len(by("inference_time")) == len(by("memory")) == 9
    assert len(by("figure_v1")) == 7
    r = R.reported("clustering", E.VIT_SOM_40, "mnist")
    assert (r.value, r.std) == (0.955, 0.001)
    assert R.reported("classification", E.VIT_SOM_CLS, "cifar10").value == 0.920
    assert "reported" in R.reported_cell("clustering", E.DESOM, "usps")
    assert R.reported_cell("clustering", E.VIT_SOM_40, "params") == "5.0M (reported)"


def test_status_table_without_records(tmp_path):
    plan = E.Plan.make("smoke", results=tmp_path / "results", data_root=tmp_path / "nodata")
    st = R.status_table(plan)
    assert len(st) == len(R.REPORTED)
    assert (st["ours"] == "—").all() and st["note"].str.len().gt(0).all()
    assert set(st.columns) >= {"paper", "ours", "difference", "seeds", "profile", "device", "note"}


def _copy_recipe_records(preset: str, results: Path, overridden_too: bool = False) -> None:
    """Copy the committed paper-profile records of ``preset``'s own recipe (no overrides, unless
    ``overridden_too``) to ``results``."""
    import shutil
    from vitsom.config import make_config
    dest = results / "paper" / preset
    dest.mkdir(parents=True)
    for f in (REPO_ROOT / "results" / "paper" / preset).glob("*.json"):
        rec = json.loads(f.read_text())
        if overridden_too or rec["key"] == make_config(preset, "paper", rec["seed"]).key():
            shutil.copy(f, dest / f.name)
            for rep in (f.parent / "repeats").glob(f"{rec['key']}.*.json"):     # its repeats, if any
                (dest / "repeats").mkdir(exist_ok=True)
                shutil.copy(rep, dest / "repeats" / rep.name)


def test_status_page_shows_paper_profile_records_in_other_builds(tmp_path):
    """A quick/smoke build still shows the paper-profile (GPU) records that exist, beside the
    paper, with their device; their times are not compared when the GPU was shared."""
    from vitsom.pipeline import status_markdown
    for preset in ("desom-usps", "desom-mnist"):             # committed records: USPS CPU, MNIST H200 and CPU
        _copy_recipe_records(preset, tmp_path / "results")
    recs = sorted((tmp_path / "results" / "paper" / "desom-usps").glob("*.json"))
    assert len(recs) == 5
    plan = E.Plan.make("smoke", results=tmp_path / "results", data_root=tmp_path / "nodata")
    st = R.status_table(plan)
    row = st[(st["section"] == "clustering") & (st["model"] == E.DESOM) & (st["column"] == "USPS")].iloc[0]
    vals = [json.loads(f.read_text())["metrics"]["purity"] for f in recs]
    assert row["ours"] == "—"                               # nothing of the smoke profile
    assert row["paper_profile_ours"] == B.fmt(float(np.mean(vals)), float(np.std(vals)), 5, 3)
    assert row["paper_profile_difference"] == f"{np.mean(vals) - 0.857:+.3f}"
    assert row["paper_profile_seeds"] == "0, 1, 2, 3, 4"
    assert json.loads(recs[0].read_text())["device"]["name"] in row["paper_profile_device"]
    times = st[(st["section"] == "train_time") & (st["paper_profile_ours"] != "—")]
    assert len(times) and (times["paper_profile_difference"] == "not comparable").all()   # shared GPU
    md = status_markdown(st, plan, [], {}, "test")
    assert "| paper profile | its difference | paper profile from |" in md and "Runs of the paper's full recipe" in md
    assert set(st[st["paper_profile_ours"] != "—"]["model"]) <= {E.DESOM, f"{E.DESOM} [clustering]"}


def test_paper_profile_summary_lists_the_records_it_has_and_the_cells_it_lacks(tmp_path):
    """The README's summary: a cell with paper-profile records shows their mean, its distance in the paper's
    stds and their device; a cell without any is listed as not yet run."""
    _copy_recipe_records("desom-usps", tmp_path / "results")
    recs = [json.loads(f.read_text()) for f in (tmp_path / "results" / "paper" / "desom-usps").glob("*.json")]
    vals = [r["metrics"]["purity"] for r in recs]
    md = R.paper_profile_summary(tmp_path / "results")
    row = next(line for line in md.splitlines() if line.startswith(f"| Clustering purity | {E.DESOM} | USPS |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:6] == ["0.857 ± 0.011", B.fmt(float(np.mean(vals)), float(np.std(vals)), 5, 3),
                          f"{np.mean(vals) - 0.857:+.3f}"]
    assert cells[6] == f"{(np.mean(vals) - 0.857) / 0.011:+.1f}" and cells[7] == "0, 1, 2, 3, 4"
    assert recs[0]["device"]["name"] in cells[8]
    assert f"- Clustering purity, {E.VIT_SOM_40}: MNIST, Fashion-MNIST, USPS, params" in md   # none of its records
    assert f"- Clustering purity, {E.DESOM}: MNIST, Fashion-MNIST, params" in md   # params: its MNIST records
    assert md.count("| Clustering purity |") == 1


def test_readme_summary_matches_the_committed_records():
    """The README's results table is generated from results/; regenerate it when a record changes."""
    text = (REPO_ROOT / "README.md").read_text()
    assert R.replace_summary(text, R.paper_profile_summary(REPO_ROOT / "results")) == text, \
        "README.md's paper-profile summary is out of date: run `python -m vitsom summary --write README.md`"
    with pytest.raises(ValueError, match="no summary block"):
        R.replace_summary("no block here", "x")


def test_summary_command_writes_and_checks_a_files_summary_block(tmp_path, capsys):
    from vitsom.__main__ import main
    _copy_recipe_records("desom-usps", tmp_path / "results")
    f = tmp_path / "README.md"
    f.write_text(f"# title\n\n{R.SUMMARY_BEGIN}\nold table\n{R.SUMMARY_END}\n\nafter\n")
    args = ["summary", "--results", str(tmp_path / "results")]
    assert main(args + ["--check", str(f)]) == 1 and "out of date" in capsys.readouterr().err
    assert main(args + ["--write", str(f)]) == 0
    text = f.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and "old table" not in text
    assert f"| Clustering purity | {E.DESOM} | USPS |" in text
    assert main(args + ["--check", str(f)]) == 0
    f.write_text("no block\n")
    assert main(args + ["--write", str(f)]) == 2 and "no summary block" in capsys.readouterr().err


def test_timing_cells_never_average_a_cpu_run_with_a_gpu_run():
    gpu = {"seed": 0, "device": {"type": "cuda", "name": "NVIDIA H200"}, "train_time_s": 120.0,
           "metrics": {"purity": 0.70}}
    cpu = [{"seed": s, "device": {"type": "cpu", "name": "AMD EPYC", "cpu_threads": 1}, "train_time_s": 1800.0,
            "metrics": {"purity": p}} for s, p in ((1, 0.68), (2, 0.72))]
    time_row = next(rp for rp in R.REPORTED if rp.unit == "s" and rp.ours is not None)
    purity_row = next(rp for rp in R.REPORTED if rp.unit == "fraction" and rp.ours is not None)
    assert R.one_device(time_row, [gpu, *cpu]) == [gpu]          # the GPU's, as the paper's timings
    assert R.one_device(time_row, cpu) == cpu                    # one device: all of them
    cpu2 = {**cpu[0], "seed": 3, "device": {"type": "cpu", "name": "AMD EPYC", "cpu_threads": 2}}
    assert R.one_device(time_row, [*cpu, cpu2]) == cpu           # the device with the most records
    assert R.one_device(purity_row, [gpu, *cpu]) == [gpu, *cpu]  # scores keep every record


def test_pages_of_other_builds_read_the_paper_profile_records_without_training(tmp_path):
    """The clustering page of a quick/smoke build shows the full-recipe runs that exist (a table of
    their own, and the training-length study's 500-epoch point): read, never trained."""
    _copy_recipe_records("desom-usps", tmp_path / "results")
    plan = E.Plan.make("smoke", results=tmp_path / "results", data_root=tmp_path / "nodata")
    full = B.full_recipe_frame("01_clustering", plan)
    have = full[full["status"] == "existing"]
    assert set(have["model"]) == {E.DESOM} and sorted(have["seed"]) == [0, 1, 2, 3, 4]
    assert (have["profile"] == "paper").all() and (have["dataset"] == "usps").all()
    assert set(full["status"]) == {"existing", "not-run"}               # the rest is planned, not trained
    assert not any((tmp_path / "results" / "paper").glob("[!d]*"))      # nothing new was written
    vit40 = full[full["model"] == E.VIT_SOM_40]
    assert len(vit40) and (vit40["planned_epochs"] == 500).all()        # the recipe at full length
    vals = [json.loads(f.read_text())["metrics"]["purity"]
            for f in sorted((tmp_path / "results" / "paper" / "desom-usps").glob("*.json"))]
    assert B.cell(full, "purity", model=E.DESOM, dataset="usps").startswith(B.fmt(float(np.mean(vals)),
                                                                                    float(np.std(vals)), 5))
    assert B.cell(full, "purity", model=E.VIT_SOM_40, dataset="usps") == "—"
    read = B.full_recipe_outcomes("01_clustering", plan)                   # read once, used twice
    assert B.full_recipe_frame("01_clustering", plan, read=read).equals(full)
    no_desom = (read[0], [o for o in read[1] if o.run.model != E.DESOM])
    assert B.full_recipe_frame("01_clustering", plan, read=no_desom).empty  # what it was given, not re-read
    paper_plan = E.Plan.make("paper", results=tmp_path / "results")
    assert B.full_recipe_outcomes("01_clustering", paper_plan) is None      # its own outcomes are the recipe
    assert B.full_recipe_frame("01_clustering", paper_plan).empty
    assert B.full_recipe_frame("01_clustering", E.Plan.make("smoke", results=tmp_path / "other")).empty


def test_ablation_pages_of_other_builds_group_the_paper_profile_records_they_have(tmp_path):
    """The ablation pages' full-recipe tables: one row per setting with a record, its records only,
    and how many of the setting's planned runs they are; settings without a record are left out."""
    for preset in ("usps-clustering", "usps-clustering-24x24"):
        _copy_recipe_records(preset, tmp_path / "results")
    plan = E.Plan.make("smoke", results=tmp_path / "results", data_root=tmp_path / "nodata")
    grid = B.full_recipe_frame("04_ablation_grid", plan)
    assert {16, 32, 8} <= set(grid["grid"])                           # planned, without a record
    groups = {key: (got, n) for key, got, n in B.recorded_groups(grid, ["dataset", "grid"])}
    assert set(groups) == {("usps", 24), ("usps", 40)}
    for (ds, side), (got, n) in groups.items():
        assert n == 5 and sorted(got["seed"]) == [0, 1, 2, 3, 4] and (got["status"] == "existing").all()
        preset = "usps-clustering" if side == 40 else "usps-clustering-24x24"
        vals = [json.loads(f.read_text())["metrics"]["purity"]
                for f in (tmp_path / "results" / "paper" / preset).glob("*.json")]
        assert sorted(got["purity"]) == sorted(vals)
    dist = B.full_recipe_frame("03_ablation_distance", plan)
    assert [k for k, _, _ in B.recorded_groups(dist, ["dataset", "distance", "som_input"])] == [
        ("usps", "cosine", "patches")]
    assert list(B.recorded_groups(dist.iloc[0:0], ["dataset"])) == []
    assert "The table above stays the smoke profile's" in B.full_recipe_note(dist[dist["status"] == "existing"], "smoke")


def test_pages_of_a_smoke_build_render_the_full_recipe_records(tmp_path):
    """Executed with paper-profile records present and no smoke records (nothing trained): each page
    shows its table of full-recipe runs, with the seeds each row averages; the clustering page also
    crosses the v1-era recipe's γ schedule with Adam's ε at full length and sets the held-out protocol
    beside the paper's, and the γ page compares the two ε at the 40×40 recipe."""
    _copy_recipe_records("usps-clustering", tmp_path / "results", overridden_too=True)   # with the ablations
    _copy_recipe_records("usps-clustering-24x24", tmp_path / "results")
    _copy_recipe_records("usps-clustering-24x24-v1", tmp_path / "results", overridden_too=True)
    recipe = [json.loads(f.read_text())["config"] for f in (tmp_path / "results/paper/usps-clustering").glob("*.json")]
    cosine = [c for c in recipe if c["som"]["distance"] == "cosine" and c["som"]["som_input"] == "patches"]
    small_eps = sum(c["train"]["eps"] == 1e-12 and c["som"]["gamma"] == 0.005 for c in cosine)
    assert small_eps >= 1                                                  # committed: results/paper/usps-clustering/
    # the γ sweep's other settings at the default ε: their paragraph's title → seeds recorded
    gamma_runs = Counter(("No SOM loss (γ = 0)" if c["som"]["gamma"] == 0 else
                          f"γ = {c['som']['gamma']:g} {'with' if c['som']['gamma_warmup'] else 'without'} warm-up")
                         for c in cosine if c["train"]["eps"] == 1e-8
                         and (c["som"]["gamma"], c["som"]["gamma_warmup"]) != (0.005, True))
    assert gamma_runs["No SOM loss (γ = 0)"] >= 1 and gamma_runs["γ = 0.005 without warm-up"] >= 1  # committed
    from vitsom.config import make_config
    usps = [json.loads(f.read_text()) for f in (tmp_path / "results/paper/usps-clustering").glob("*.json")]
    heldout = [r["eval"]["test"]["heldout_purity"] for r in usps if r["config"]["split"] == "train"]
    assert heldout                                                         # committed: the held-out protocol
    recipe_purity = [r["metrics"]["purity"] for r in usps if r["key"] == make_config(r["preset"], "paper", r["seed"]).key()]
    purity_24 = [json.loads(f.read_text())["metrics"]["purity"]
                 for f in (tmp_path / "results/paper/usps-clustering-24x24").glob("*.json")]
    v1 = [json.loads(f.read_text())["config"] for f in (tmp_path / "results/paper/usps-clustering-24x24-v1").glob("*.json")]
    v1_plain = sum(not c["som"]["gamma_warmup"] and c["train"]["eps"] == 1e-8 for c in v1)
    env = dict(os.environ, VITSOM_DATA=str(tmp_path / "nodata"), VITSOM_RESULTS=str(tmp_path / "results"),
               VITSOM_RUNS=str(tmp_path / "runs"), PYTHONPATH=str(REPO_ROOT))
    build = tmp_path / "book"
    p = subprocess.run([sys.executable, "-m", "vitsom.pipeline", "--profile", "smoke", "--datasets", "usps",
                        "--book-only", "--no-book", "--build-dir", str(build), "--notebooks", *FULL_RECIPE_TABLES],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    for name, table in FULL_RECIPE_TABLES.items():
        nb = json.loads((build / "executed" / f"{name}.ipynb").read_text())
        html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] for o in c.get("outputs", []))
        assert f'data-vitsom-table="{table}"' in html, name
        assert "5 of 5" in html or name == "01_clustering", name       # the seeds column of the ablation pages
        assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", [])), name
        if name in REPEATS_TABLES:          # each repeat of a run of this page, beside its record
            planned = {r.config("paper").key() for r in E.runs(name, E.Plan.make("paper", datasets=["usps"]))}
            n_rep = sum(f.name.split(".")[0] in planned for f in
                        (tmp_path / "results/paper/usps-clustering/repeats").glob("*.json"))
            assert n_rep >= 1, name                                        # committed: the seed-2 recipe's repeat
            rep_table = html[html.index(f'data-vitsom-table="{REPEATS_TABLES[name]}"'):]
            rep_table = rep_table[:rep_table.index("</table>")]
            assert rep_table.count("<td>repeat</td>") == n_rep, (name, rep_table)
            assert rep_table.count("<td>the tables' record</td>") == len({f.name.split(".")[0] for f in
                (tmp_path / "results/paper/usps-clustering/repeats").glob("*.json")} & planned), name
        if name == "01_clustering":
            assert 'data-vitsom-table="tbl-v1-full-usps"' in html
            v1_table = html[html.index('data-vitsom-table="tbl-v1-full-usps"'):]
            assert f"units, {v1_plain} of 5 seeds)" in v1_table[:v1_table.index("</table>")]
            mds = ["".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"] for o in c.get("outputs", [])]
            held_text = next(m for m in mds if m.startswith("**Held-out protocol on USPS (paper profile, "))
            assert f"{len(heldout)} seed" in held_text and B.fmt(*B.mean_std(heldout)) + " on the test split" in held_text
            assert f"{B.fmt(*B.mean_std(recipe_purity))} under the paper's protocol" in held_text
        if name == "04_ablation_grid":             # the map-size paragraph, from the copied records
            mds = ["".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"] for o in c.get("outputs", [])]
            size_text = next(m for m in mds if m.startswith("**USPS, paper profile (full recipe).**"))
            assert f"to {B.fmt(*B.mean_std(recipe_purity))} on the 40×40 map" in size_text
            gain = B.mean_std(recipe_purity)[0] - B.mean_std(purity_24)[0]
            assert f"a gain of +0.013; ours between the same sizes is {gain:+.3f}." in size_text, size_text
        if name == "05_ablation_gamma":
            mds = ["".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"] for o in c.get("outputs", [])]
            paragraphs = {m[2:m.index(".**")]: m for m in mds if m.startswith("**") and ".**" in m}
            eps_text = paragraphs["Adam's ε at full length (USPS, γ = 0.005, with warm-up)"]
            assert f"units, {small_eps} seed" in eps_text and "units, 5 seeds" in eps_text
            for title, n in gamma_runs.items():     # each against its reference's 5 seeds: one change at a time
                text = paragraphs[f"{title} at full length (USPS)"]
                g = title.split(" ")[2]                                # "γ = 0.05 without warm-up" → "0.05"
                if title.endswith("without warm-up") and g != "0.005":   # the same γ with warm-up, then the recipe
                    assert f"against γ = {g} with warm-up at " in text, text
                    assert "The recipe (γ = 0.005 with warm-up, ε = 1e-8) scores" in text, text
                else:
                    assert "against the recipe's (γ = 0.005 with warm-up)" in text, text
                assert f"units, {n} seed" in text and "units, 5 seeds" in text, text
            l1_by_seed = defaultdict(list)                             # every full-length run of the page, by seed
            for r in usps:
                c = r["config"]
                if (c["split"], c["train"]["epochs"], c["som"]["height"], c["som"]["distance"],
                        c["som"]["som_input"]) == ("all", 500, 40, "cosine", "patches"):
                    l1_by_seed[r["seed"]].append(r["metrics"]["recon_l1"])
            assert len(l1_by_seed) >= 2                                # committed: seeds 0–4 of the recipe
            l1_table = html[html.index('data-vitsom-table="tbl-gamma-l1-by-seed-usps"'):]
            l1_table = l1_table[:l1_table.index("</table>")]
            for seed, l1 in l1_by_seed.items():
                lo, hi = f"{min(l1):.4f}", f"{max(l1):.4f}"
                assert f"<td>{seed}</td>\n      <td>{len(l1)}</td>\n      <td>{lo if lo == hi else lo + '–' + hi}</td>" \
                    in l1_table, (seed, l1_table)
            assert 'data-vitsom-figure="fig-gamma-l1-by-seed-usps"' in html
    assert not (tmp_path / "results" / "smoke").exists()                   # nothing was trained


def test_execute_reports_every_run_it_cannot_do(tmp_path, monkeypatch):
    monkeypatch.setenv("VITSOM_RUNS", str(tmp_path / "runs"))
    plan = E.Plan.make("smoke", results=tmp_path / "results")
    rs = [E.Run("usps-clustering", (), 0), E.Run("no-such-preset", (), 0),
          E.Run("flowers17-classification", (), 0)]
    out = E.execute(rs, plan, train_missing=False, log=lambda s: None)
    assert [o.status for o in out] == ["not-run", "unknown-preset", "not-run"]
    monkeypatch.setenv("VITSOM_DOWNLOAD", "0")
    plan = E.Plan.make("smoke", results=tmp_path / "results", data_root=tmp_path / "nodata")
    out = E.execute(rs[2:] + rs[2:], plan, train_missing=True, log=lambda s: None)
    assert [o.status for o in out] == ["no-data", "no-data"] and "Flowers-17" in out[0].note
    df = B.frame(out)
    assert list(df["status"]) == ["no-data", "no-data"]


def test_execute_prints_one_line_for_consecutive_seeds_with_nothing_to_report(tmp_path, monkeypatch):
    """A book-only build of the paper profile used to print a line per missing seed (hundreds on
    page 01); consecutive seeds of one setting and status now share a line, anything else breaks it."""
    monkeypatch.setenv("VITSOM_RUNS", str(tmp_path / "runs"))
    plan = E.Plan.make("smoke", results=tmp_path / "results")
    rs = ([E.Run("usps-clustering", (), s) for s in (0, 1, 2)] + [E.Run("no-such-preset", (), 0)]
          + [E.Run("usps-clustering", ("som.gamma=0.0",), s) for s in (3, 4)] + [E.Run("usps-clustering", (), 4)])
    lines: list[str] = []
    out = E.execute(rs, plan, train_missing=False, log=lines.append)
    assert [o.status for o in out] == ["not-run"] * 3 + ["unknown-preset"] + ["not-run"] * 3
    assert [l.split(":")[0].strip() for l in lines[:-1]] == [
        "[       not-run] usps-clustering seeds 0 1 2", "[unknown-preset] no-such-preset seed 0",
        "[       not-run] usps-clustering som.gamma=0.0 seeds 3 4", "[       not-run] usps-clustering seed 4"], lines
    assert lines[0].endswith("no record yet (book-only build: nothing is trained)")
    assert lines[-1].startswith("7 of 7 runs have no record")


def test_progress_lines_reach_the_terminal(tmp_path, capsys):
    """What a notebook's training appends to $VITSOM_PROGRESS_LOG is printed by the pipeline as it
    comes; epoch lines are thinned to one per ``every_s`` seconds (first and last epoch always)."""
    from vitsom.pipeline import ProgressTail
    with ProgressTail(tmp_path / "p.log", prefix="| ", every_s=0.05):
        progress = E.ProgressLog(every_s=3600)                 # reads the path from the environment
        assert progress.active and os.environ[E.PROGRESS_ENV] == str(tmp_path / "p.log")
        progress.write("[1/2] usps-clustering seed 0: training, 3 epochs")
        on_epoch = progress.epoch_callback("[1/2] usps-clustering seed 0")
        for ep in (1, 2, 3):
            on_epoch({"epoch": ep, "epochs": 3, "step": 10 * ep, "total_steps": 30, "loss": 0.5 / ep, "epoch_s": 120.0})
        time.sleep(0.2)
        mid = capsys.readouterr().out                          # printed while still running
    out = mid + capsys.readouterr().out
    assert "| [1/2] usps-clustering seed 0: training, 3 epochs" in mid
    assert "epoch 1/3, loss 0.5, 120.0 s/epoch, about 4 min left" in out
    assert "epoch 2/3" not in out                              # within every_s of epoch 1
    assert "epoch 3/3, loss 0.1667, 120.0 s/epoch\n" in out    # the last epoch, nothing left
    assert E.PROGRESS_ENV not in os.environ and not (tmp_path / "p.log").exists()
    assert not E.ProgressLog().active                          # outside the pipeline: a no-op
    assert E.human_seconds(45) == "45 s" and E.human_seconds(720) == "12 min" and E.human_seconds(11520) == "3.2 h"


def test_missing_figure_weights_are_retrained_without_touching_the_record(usps_root, isolated_results, tmp_path,
                                                                          monkeypatch):
    """runs/ is not committed: a record whose weights are gone gets them back by training again into a
    scratch folder; the committed record stays as it was, and progress goes to the pipeline's file."""
    import shutil
    from vitsom.train import train
    plan = E.Plan.make("smoke", seeds=[0], datasets=["usps"],
                       extra=["train.max_train_samples=128", "som.height=4", "som.width=4"], data_root=usps_root)
    run = E.Run("usps-clustering-8x8", (), 0, "m", "usps", snapshots=True)
    cfg = run.config(plan.profile, plan.extra)
    rec = train(cfg, data_root=usps_root, progress=False, log=lambda s: None)
    weights = isolated_results / "runs" / cfg.key()
    shutil.rmtree(weights)
    got, note = E.ensure_snapshots(run, plan, train_missing=False, log=lambda s: None)
    assert got == () and "not on this machine" in note
    monkeypatch.setenv(E.PROGRESS_ENV, str(tmp_path / "progress.log"))
    got, note = E.ensure_snapshots(run, plan, log=lambda s: None)
    assert got == E.snapshot_epochs(cfg.train.epochs) and "recreated" in note
    assert (weights / "model.pt").exists() and all((weights / f"epoch_{e}.pt").exists() for e in got)
    assert json.loads((isolated_results / "results" / "smoke" / cfg.preset / f"{cfg.key()}.json").read_text()) \
        == json.loads(json.dumps(rec))                                   # the record is untouched
    progress = (tmp_path / "progress.log").read_text()
    assert "training it again" in progress and "(figure weights): epoch 2/2" in progress


def test_missing_weights_of_a_pixel_som_are_retrained_for_its_figure(usps_root, isolated_results):
    """ensure_weights hands back the record whose weights are on disk: the original while its
    weights are here, the retrained run's record (same key, so the same runs/ folder) once they are
    gone, and nothing with a note when it may not train (book-only)."""
    import shutil
    from vitsom.train import train
    plan = E.Plan.make("smoke", seeds=[0], datasets=["usps"], data_root=usps_root,
                       extra=["train.max_train_samples=256", "som.height=4", "som.width=4"])
    run = E.Run("ksom-usps", (), 0, E.CLASSIC_SOM_24, "usps")
    rec = train(run.config(plan.profile, plan.extra), data_root=usps_root, progress=False, log=lambda s: None)
    assert E.ensure_weights(run, rec, plan, log=lambda s: None) == (rec, "")
    shutil.rmtree(E.runs_root_of(rec))
    got, note = E.ensure_weights(run, rec, plan, train_missing=False, log=lambda s: None)
    assert got is None and "not on this machine" in note and "--book-only" in note
    narrow = E.Run("ksom-usps", ("som.t_min=0.1",), 0, E.CLASSIC_SOM_24_NARROW, "usps")
    assert "ksom-usps som.t_min=0.1 seed 0" in E.ensure_weights(narrow, rec, plan, train_missing=False,
                                                                     log=lambda s: None)[1]
    got, note = E.ensure_weights(run, rec, plan, log=lambda s: None)
    assert (E.runs_root_of(rec) / "model.pt").exists() and got["key"] == rec["key"]
    assert got["metrics"]["purity"] == pytest.approx(rec["metrics"]["purity"])   # deterministic batch map
    assert note == f"ksom-usps seed 0 trained again on CPU for its weights, purity {got['metrics']['purity']:.4f} " \
        f"(the record: {rec['metrics']['purity']:.4f})"


def test_collapsed_maps_are_found_by_units_used():
    import pandas as pd
    df = pd.DataFrame([
        {"model": "a", "dataset": "usps", "status": "existing", "units_used": 1, "purity": 0.167},
        {"model": "a", "dataset": "usps", "status": "existing", "units_used": 2, "purity": 0.167},
        {"model": "b", "dataset": "usps", "status": "existing", "units_used": 1, "purity": 0.167},
        {"model": "b", "dataset": "usps", "status": "existing", "units_used": 40, "purity": 0.8},   # one seed escaped
        {"model": "c", "dataset": "usps", "status": "not-run", "units_used": None, "purity": None},
    ])
    found = B.collapsed(df, ["model", "dataset"])
    assert [k for k, _ in found] == [("a", "usps")] and len(found[0][1]) == 2
    assert B.collapsed(df.drop(columns="units_used"), ["model"]) == []
    assert B.units_phrase(1.0) == "a single unit of the map" and B.units_phrase(2) == "at most 2 units of the map"


def test_mean_std_and_formatting():
    assert B.mean_std([1.0, 3.0, None, float("nan")]) == (2.0, 1.0, 2)   # population std, as the paper
    assert B.fmt(0.5, 0.01, 2) == "0.500 ± 0.010"
    assert B.fmt(0.5, 0.0, 1) == "0.500"
    assert B.fmt(float("nan")) == "—"
    assert B.fmt_reported(0.955, 0.001) == "0.955 ± 0.001 (reported)"
    assert B.contrast_digits(-0.0092, 0.0090) == 4 and B.contrast_digits(0.012, 0.009) == 3   # 0.009 vs 0.009: 4


def test_seed_by_seed_pairs_only_the_seeds_both_cells_ran():
    import pandas as pd
    ref = pd.DataFrame({"seed": [0, 1, 2, 3], "purity": [0.90, 0.95, 0.93, 0.99]})
    alt = pd.DataFrame({"seed": [2, 1, 0, 4], "purity": [0.96, 0.955, 0.91, 0.50]})   # other order; seed 4 unpaired
    assert B.seed_by_seed(ref, alt) == "higher on each of the 3 seeds both cells ran (by 0.005 to 0.030)"
    assert B.seed_by_seed(alt, ref) == "lower on each of the 3 seeds both cells ran (by 0.005 to 0.030)"
    mixed = alt.assign(purity=[0.95, 0.95, 0.89, 0.5])                     # seed 2 +0.02, seed 1 level, seed 0 -0.01
    assert B.seed_by_seed(ref, mixed) == ("higher on 1 of the 3 seeds both cells ran, lower on 1, level on 1 "
                                          "(differences -0.010 to +0.020)")
    assert B.seed_by_seed(ref, alt[alt["seed"].isin([0, 4])]) == ""                   # one shared seed: no pairs
    tiny = ref.assign(purity=ref["purity"] + [0.0002, -0.0004, 0.02, 0.0])            # rounds to 0 at 3 digits: level
    assert B.seed_by_seed(ref, tiny) == ("higher on 1 of the 4 seeds both cells ran, level on 3 "
                                         "(differences +0.000 to +0.020)")
    assert B.seed_by_seed(ref, tiny.assign(purity=ref["purity"])) == "level on each of the 4 seeds both cells ran"


def test_shared_seed_diff_compares_a_smaller_cell_on_the_seeds_both_ran():
    import pandas as pd
    import pytest
    ref = pd.DataFrame({"seed": [0, 1, 2, 3, 4], "purity": [0.949, 0.953, 0.958, 0.954, 0.957]})
    one = pd.DataFrame({"seed": [0], "purity": [0.948]})
    diff, on = B.shared_seed_diff(ref, one)          # against ref's seed 0 (0.949), not ref's mean (0.9542)
    assert diff == pytest.approx(-0.001) and on == " on the 1 seed both cells ran (0)"
    diff, on = B.shared_seed_diff(ref, ref.assign(purity=ref["purity"] + 0.002))   # same seeds: all of them
    assert diff == pytest.approx(0.002) and on == ""
    two = pd.DataFrame({"seed": [3, 1, 7], "purity": [0.950, 0.957, 0.5]})          # seed 7 unpaired
    diff, on = B.shared_seed_diff(ref, two)
    assert diff == pytest.approx(0.0) and on == " on the 2 seeds both cells ran (1, 3)"
    diff, on = B.shared_seed_diff(ref, pd.DataFrame({"seed": [9], "purity": [0.9]}))  # no shared seed: all seeds
    assert diff == pytest.approx(0.9 - ref["purity"].mean()) and on == ""


def test_levels_off_at_finds_where_longer_training_stops_mattering():
    assert B.seed_noise((0.9, 0.004, 5), (0.95, 0.001, 5)) == 0.01          # floor
    assert B.seed_noise((0.9, 0.04, 5), (0.95, 0.3, 1)) == 0.08             # one seed has no std
    curve = {10: (0.853, 0.040, 5), 30: (0.934, 0.003, 5), 100: (0.946, 0.001, 5), 500: (0.953, 0.004, 5)}
    assert B.levels_off_at(curve) == 100
    assert B.levels_off_at({**curve, 100: (0.930, 0.001, 5)}) == 500        # still rising before the longest
    # a shorter length within noise does not count once a longer one between is not
    assert B.levels_off_at({**curve, 30: (0.950, 0.001, 5), 100: (0.920, 0.001, 5)}) == 500
    assert B.levels_off_at({10: (0.95, 0.0, 1), 30: (0.951, 0.0, 1), 500: (0.952, 0.0, 1)}) == 10


def test_record_row_puts_purity_above_its_chance_level():
    rec = {"metrics": {"purity": 0.9}, "config": {"train": {"epochs": 2}},
           "diagnostics": {"chance_purity": {"chance_purity": 0.2, "purity": 0.9}}}
    row = B.record_row(rec)
    assert row["chance_purity"] == 0.2 and row["purity_above_chance"] == pytest.approx(0.7 / 0.8)
    assert "purity_above_chance" not in B.record_row({"metrics": {"purity": 0.9}})    # older records: no baseline


def test_metric_cells_formats_each_column_of_a_group():
    import pandas as pd
    g = pd.DataFrame({"purity": [0.9, 0.8], "units_used": [10, 13], "ratio": [1e-5, float("nan")]})
    cells = B.metric_cells(g, [("purity", "P"), ("units_used", "U"), ("ratio", "R"), ("absent", "A")],
                           scientific=("ratio",))
    assert cells == {"P": "0.850 ± 0.050", "U": "11.5 ± 1.5", "R": "1.0e-05", "A": "—"}
    assert B.metric_cells(g.iloc[:1], [("purity", "P"), ("units_used", "U")], digits=2) == {"P": "0.90", "U": "10"}


def test_seeds_cell_counts_the_planned_runs_that_have_a_record():
    import pandas as pd
    g = pd.DataFrame({"status": ["existing", "trained", "not-run", "no-data", "existing"]})
    assert B.seeds_cell(g) == "3 of 5"
    assert B.seeds_cell(g[g["status"] == "not-run"]) == "0 of 1"


def test_plateau_exit_is_the_first_epoch_below_the_mark():
    hist = [{"epoch": e, "task_loss": v} for e, v in enumerate([0.09, 0.066, 0.051, 0.049, 0.06, 0.03])]
    assert B.plateau_exit({"history": hist}) == 4               # 1-based, the first one below 0.05, not the last
    assert B.plateau_exit({"history": hist}, mark=0.04) == 6
    assert B.plateau_exit({"history": hist[:3]}) is None and B.plateau_exit({}) is None


def test_repeats_table_sets_each_record_beside_its_repeats(tmp_path):
    """A page's repeats table: the record, then its repeats, for runs that have one; the device column
    names the thread count, time is the training time of every segment (not the last one's wall time)."""
    from vitsom.config import make_config
    from vitsom.records import SCHEMA, atomic_write_json, record_path, repeats_dir
    hist = [{"epoch": e, "task_loss": v} for e, v in enumerate([0.07, 0.06, 0.04])]

    def rec(seed, threads, l1, hist_):
        cfg = make_config("usps-clustering", "paper", seed)
        return {"schema": SCHEMA, "profile": "paper", "preset": cfg.preset, "key": cfg.key(), "seed": seed,
                "config": cfg.to_dict(), "history": hist_, "git": {"commit": "abcdef0123"},
                "metrics": {"purity": 0.95, "recon_l1": l1, "units_used": 1500},
                "device": {"type": "cpu", "name": "Xeon", "cpu_threads": threads},
                "train_time_s": 600.0, "wall_time_s": 60.0}
    r2, r3 = rec(2, 2, 0.0365, hist), rec(3, 1, 0.0361, hist)
    for r in (r2, r3):
        atomic_write_json(record_path(make_config(r["preset"], "paper", r["seed"]), tmp_path), r)
    outs = [E.Outcome(E.Run("usps-clustering", (), s, dataset="usps"), "existing", r) for s, r in ((3, r3), (2, r2))]
    outs.append(E.Outcome(E.Run("usps-clustering", (), 4, dataset="usps"), "not-run"))
    df, shown = B.repeats_table(outs, tmp_path, lambda c: c["som"]["distance"])
    assert df.empty and shown == []                                  # no run has a repeat yet
    atomic_write_json(repeats_dir(r2, tmp_path) / f"{r2['key']}.1thread.json", rec(2, 1, 0.0386, hist[:2]))
    df, shown = B.repeats_table(outs, tmp_path, lambda c: c["som"]["distance"])
    assert df["run"].tolist() == ["the tables' record", "repeat"] and df["seed"].tolist() == [2, 2]
    assert df["device"].tolist() == ["cpu (Xeon, 2 threads)", "cpu (Xeon, 1 thread)"]
    assert df["epoch the training L1 first fell below 0.05"].tolist() == [3, "never"]
    assert df["eval L1"].tolist() == ["0.0365", "0.0386"] and df["setting"].tolist() == ["cosine", "cosine"]
    assert df["training time (min)"].tolist() == [10, 10] and df["commit"].tolist() == ["abcdef0", "abcdef0"]
    assert [r["device"]["cpu_threads"] for r in shown] == [2, 1]


def test_missing_note_names_the_missing_seeds_of_partial_runs():
    def oc(preset, seed, rec, ov=()):
        return E.Outcome(E.Run(preset, ov, seed), "existing" if rec else "not-run", {"k": 1} if rec else None,
                         "" if rec else "no record yet")
    outs = [oc("a", 0, True), oc("a", 1, True), oc("a", 2, False),
            oc("b", 0, False), oc("b", 1, False), oc("b", 0, False, ("x=1",))]
    note = B.missing_note(outs)
    assert "a seed 2, b, b x=1 (not-run: no record yet)" in note
    assert B.missing_note(outs[:2]) == "Every planned run has a record."


def test_table_cells_say_how_many_seeds_and_which_device():
    import pandas as pd
    nan = float("nan")
    df = pd.DataFrame({"model": ["A"] * 5 + ["B"] * 3, "dataset": ["x"] * 8,
                       "purity": [0.7, 0.8, nan, nan, nan, 0.9, 0.9, 0.9],
                       "device_type": ["cuda", "cuda", None, None, None, "cpu", "cpu", "cpu"]})
    # a page mixing GPU and CPU records: every cell names its device; a partial cell its seed count
    assert B.cell(df, "purity", model="A", dataset="x") == "0.750 ± 0.050 (2 of 5 seeds, GPU)"
    assert B.cell(df, "purity", model="B", dataset="x") == "0.900 ± 0.000 (CPU)"
    one_device = df[df["model"] == "A"]
    assert B.cell(one_device, "purity", model="A", dataset="x") == "0.750 ± 0.050 (2 of 5 seeds)"
    assert B.cell(one_device.iloc[:1], "purity", model="A", dataset="x") == "0.700"
    assert B.cell(df, "purity", model="C", dataset="x") == "—"
    assert B.cell(df.assign(purity=nan), "purity", model="A", dataset="x") == "—"
    # GPU records from before the SOM distances were kept in fp32 say so; later ones and non-SOM ones do not
    rec = {"precision": str(torch.bfloat16), "config": {"som": {"height": 24}, "train": {"epochs": 1}}, "device": {"type": "cuda"}}
    assert B.record_row(rec)["bf16_som"] and B.device_label(rec) == "cuda (?, bf16 SOM distances)"
    from vitsom.records import REPO_ROOT, bf16_som_distances, load_record   # the committed GPU records
    old_gpu = sorted((REPO_ROOT / "results" / "paper" / "som-usps").glob("*.json"))
    assert old_gpu and all(bf16_som_distances(load_record(p)) for p in old_gpu)
    assert not B.record_row({**rec, "som_distances": "fp32"})["bf16_som"]
    assert not B.record_row({**rec, "config": {"som": {"height": 0}, "train": {"epochs": 1}}})["bf16_som"]
    assert not B.record_row({**rec, "precision": "fp32"})["bf16_som"]
    flagged = df.assign(bf16_som=[True, False, False, False, False, False, False, False])
    assert B.cell(flagged, "purity", model="A", dataset="x") == "0.750 ± 0.050 (2 of 5 seeds, GPU, bf16 SOM distances)"
    assert B.cell(flagged, "purity", model="B", dataset="x") == "0.900 ± 0.000 (CPU)"


# ----------------------------------------------------------------------------- plots

def test_u_matrix_and_tiles():
    # 1×3 map, prototypes 0, 0, 3 along one axis (euclidean): borders 0 and 3
    w = np.array([[0.0], [0.0], [3.0]])
    np.testing.assert_allclose(P.u_matrix(w, 1, 3, "euclidean"), [[0.0, 1.5, 3.0]])
    imgs = np.random.default_rng(0).random((6, 1, 4, 4))
    t = P.tile_images(imgs, 2, 3, pad=1)
    assert t.shape == (2 * 5 + 1, 3 * 5 + 1)
    np.testing.assert_allclose(t[1:5, 6:10], imgs[1, 0])
    assert P.hit_counts(np.array([0, 0, 5]), 2, 3).tolist() == [[2, 0, 0], [0, 0, 1]]
    assert P.majority_labels(np.array([0, 0, 0, 5]), np.array([1, 1, 2, 3]), 2, 3).tolist() == [[1, -1, -1], [-1, -1, 3]]


def test_plot_functions_return_figures():
    import pandas as pd
    from matplotlib.figure import Figure
    rng = np.random.default_rng(0)
    figs = [P.architecture_figure(),
            P.latent_progression_figure([rng.random((50, 2))] * 3, rng.integers(0, 10, 50), ["a", "b", "c"]),
            P.prototype_grid_figure(rng.random((16, 1, 8, 8)), 4, 4, "t"),
            P.map_figure(rng.integers(0, 5, (4, 4)), rng.random((4, 4)), rng.integers(0, 10, (4, 4))),
            P.size_vs_score_figure([{"name": "a", "params": 2.5, "score": 0.9, "kind": "paper-ours"}],
                                   [{"name": "b", "params": 5.0, "score": 0.8, "kind": "repro", "err": 0.01}]),
            P.difference_figure([0.01, 1.0], [0.02, 0.0], [0.01, 0.0], ["MNIST", "MNIST"])]
    df = pd.DataFrame({"grid": [8, 16, 8, 16], "purity": [0.5, 0.6, 0.52, 0.61], "gamma": [0, 0.01, 0, 0.01],
                       "warm": ["y", "y", "n", "n"], "distance": ["cosine", "cosine", "euclidean", "euclidean"]})
    figs += [P.metric_vs_factor_figure(df, "grid", [("purity", "purity"), ("missing", "m")], logx=True),
             P.metric_vs_factor_figure(df, "gamma", [("purity", "purity")], hue="warm", symlogx=1e-4),
             P.metric_bars_figure(df, "distance", [("purity", "purity")])]
    two = P.prototype_grids_figure([(rng.random((16, 1, 8, 8)), 4, 4, "a"), (rng.random((6, 1, 8, 8)), 2, 3, "b")])
    assert [ax.get_title() for ax in two.axes] == ["a", "b"]
    assert two.axes[1].images[0].get_array().shape == (2 * 9 + 1, 3 * 9 + 1)   # the 2×3 map's mosaic
    figs.append(two)
    with pytest.raises(ValueError, match="no maps"):
        P.prototype_grids_figure([])
    for f in figs:
        assert isinstance(f, Figure)
        f.savefig(os.devnull, format="png")


def test_loss_curves_draw_each_history_and_the_reference_line():
    h = [{"epoch": e, "task_loss": 1.0 / (e + 1)} for e in range(4)]
    fig = P.loss_curves_figure([("MNIST", {"seed 0": h, "seed 1": h[:2]}, 0.4), ("USPS", {"seed 0": h}, None)],
                               ylabel="L1", reference_label="input-blind")
    left, right = fig.axes
    assert [ln.get_label() for ln in left.lines] == ["seed 0", "seed 1", "input-blind"]
    np.testing.assert_allclose(left.lines[0].get_xdata(), [1, 2, 3, 4])          # epochs counted from 1
    np.testing.assert_allclose(left.lines[0].get_ydata(), [1.0, 0.5, 1 / 3, 0.25])
    assert list(left.lines[2].get_ydata()) == [0.4, 0.4] and len(right.lines) == 1
    assert (left.get_title(), left.get_ylabel()) == ("MNIST", "L1")
    fig.savefig(os.devnull, format="png")


def test_grouped_curves_colour_by_group_with_one_legend_entry_each():
    h = [{"epoch": e, "task_loss": 1.0 / (e + 1)} for e in range(4)]
    fig = P.grouped_curves_figure({"seed 0": [h, h[:3]], "seed 2": [h]}, ylabel="L1", logy=True)
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed 0 (2 runs)", "seed 2 (1 run)"]
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [1, 2, 3])                # epochs counted from 1
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "L1"
    fig.savefig(os.devnull, format="png")


def test_bar_error_bars_are_the_population_std_of_the_tables():
    """Two seeds at 0 and 1: mean 0.5, population std 0.5 (the tables'), sample std 0.71 (seaborn's "sd")."""
    import pandas as pd
    from vitsom import plots as P
    fig = P.metric_bars_figure(pd.DataFrame({"distance": ["cosine", "cosine"], "purity": [0.0, 1.0]}),
                               "distance", [("purity", "purity")])
    spans = [sorted(line.get_ydata()) for line in fig.axes[0].lines if len(line.get_ydata()) == 2]
    assert len(spans) == 1 and np.allclose(spans[0], [0.0, 1.0])


# ----------------------------------------------------------------------------- notebooks

def test_notebook_ipynb_files_match_their_sources():
    """notebooks/*.ipynb (for Colab) must be the jupytext conversion of notebooks/*.py."""
    import jupytext
    for name in E.NOTEBOOKS:
        src, nb = REPO_ROOT / "notebooks" / f"{name}.py", REPO_ROOT / "notebooks" / f"{name}.ipynb"
        assert src.exists(), src
        assert nb.exists(), f"{nb} missing: run python -m vitsom.pipeline (its first stage writes it)"
        assert nb.read_text() == ipynb_text(name), \
            f"{nb} is stale: run python -m vitsom.pipeline --sync-notebooks"
        cells = jupytext.read(src).cells
        tags = [c.metadata.get("tags", []) for c in cells]
        assert sum("parameters" in t for t in tags) == 1, name
        params = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
        for p in ("profile", "seeds", "datasets", "results_dir"):
            assert re.search(rf"^{p} = ", params, re.M), (name, p)


# ----------------------------------------------------------------------------- end to end

def _img_after(html: str, marker: str, page: Path) -> Path | None:
    i = html.find(f'data-vitsom-figure="{marker}"')
    if i < 0:
        return None
    m = re.search(r'<img[^>]+src="([^"]+)"', html[i:])
    return (page.parent / m.group(1)).resolve() if m else None


@pytest.mark.slow
def test_smoke_pipeline_builds_the_book(usps_root, tmp_path):
    """USPS, 1 seed, runs shrunk to 128 images: every notebook executes, the book builds with -W, and
    every page holds its tables and figures."""
    env = dict(os.environ, VITSOM_DATA=str(usps_root), VITSOM_RESULTS=str(tmp_path / "results"),
               VITSOM_RUNS=str(tmp_path / "runs"), PYTHONPATH=str(REPO_ROOT))
    build = tmp_path / "book"
    p = subprocess.run([sys.executable, "-m", "vitsom.pipeline", "--profile", "smoke", "--datasets", "usps",
                        "--seeds", "0", "--set", "train.max_train_samples=128", "--build-dir", str(build)],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    # training progress reached the terminal while the notebooks ran (and stayed out of the pages)
    assert re.search(r"\| \[\d+/\d+\] usps-clustering seed 0: training, 2 epochs", p.stdout), p.stdout[-4000:]
    assert re.search(r"\| \[\d+/\d+\] usps-clustering seed 0: epoch 2/2, loss ", p.stdout), p.stdout[-4000:]
    for stage in (*E.NOTEBOOKS, "status page", "jupyter-book build -W", "total"):
        assert re.search(rf"\d+\.\d s  {re.escape(stage)}", p.stdout), stage
    html_dir = build / "_build" / "html"
    for name in E.NOTEBOOKS:
        page = html_dir / "executed" / f"{name}.html"
        html = page.read_text()
        assert "pipeline check, not a reproduction" in html, name
        for t in TABLES[name]:
            assert f'data-vitsom-table="{t}"' in html, (name, t)
        for f in FIGURES.get(name, []):
            img = _img_after(html, f, page)
            assert img is not None and img.exists() and img.stat().st_size > 2000, (name, f, img)
        assert "Traceback" not in html and "s/epoch" not in html, name
    status = (html_dir / "executed" / "status.html").read_text()
    for title in R.SECTION_TITLES.values():
        assert title.split(" (")[0] in status, title
    assert "paper (reported)" in status and "Known deviations" in status and "status.csv" in status
    assert "0.955 ± 0.001" in status                      # a paper number
    assert re.search(r"<td[^>]*><p>0\.\d{3}</p></td>", status)   # an ours number (USPS purity, 1 seed)
    # the intro's architecture figure and the Colab badges are local files
    assert (html_dir / "_images" / "architecture.png").exists()
    assert "colab.research.google.com/github/vitsom-companion/vitsom/blob/main/notebooks/01_clustering.ipynb" \
        in (html_dir / "rerun.html").read_text()
    # offline: no page loads a script, stylesheet or image from the internet
    for page in html_dir.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?://', text), page
    timings = json.loads((build / "executed" / "timings.json").read_text())
    assert [t["stage"] for t in timings][1:8] == list(E.NOTEBOOKS)
