"""Shared fixtures. Tests that need the real datasets skip when ``VITSOM_DATA`` does not hold them;
with ``VITSOM_REQUIRE_DATA=1`` (set by CI) such a skip fails the run instead."""
import os
from pathlib import Path

import pytest

# Tests never touch the network: a missing dataset is an error, not a download.
os.environ.setdefault("VITSOM_DOWNLOAD", "0")

DATA_HINT = "set VITSOM_DATA=/path/to/shared/data (holding mnist/, fashion-mnist/, usps/usps.h5) to enable"


def real_data_root(*needed: str) -> Path:
    root = os.environ.get("VITSOM_DATA")
    if not root or not all((Path(root) / n).exists() for n in needed):
        pytest.skip(f"real data {', '.join(needed)} not found; {DATA_HINT}")
    return Path(root)


@pytest.fixture
def usps_root() -> Path:
    return real_data_root("usps/usps.h5")


@pytest.fixture
def mnist_root() -> Path:
    return real_data_root("mnist")


@pytest.fixture
def isolated_results(tmp_path, monkeypatch):
    """Results and checkpoints go to a temp folder, never into the repo."""
    monkeypatch.setenv("VITSOM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("VITSOM_RUNS", str(tmp_path / "runs"))
    return tmp_path


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("VITSOM_REQUIRE_DATA") != "1":
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = tr.stats.get("skipped", []) if tr else []
    missing = [r for r in skipped if "VITSOM_DATA" in str(r.longrepr)]
    if missing:
        tr.write_line(f"VITSOM_REQUIRE_DATA=1 but {len(missing)} real-data tests skipped: "
                      f"VITSOM_DATA={os.environ.get('VITSOM_DATA')} lacks the data", red=True)
        session.exitstatus = 1
