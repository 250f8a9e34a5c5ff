"""The GPU work queue: priority order, skipping runs that have records, packing records."""
import tarfile

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
