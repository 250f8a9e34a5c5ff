"""The install paths agree on the torch build: pyproject, Makefile and environment.yml pin the same
torch/torchvision, so that no path pulls another torch."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(torch|torchvision)==([0-9][0-9.]*)", text))


def test_torch_pins_agree_everywhere():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    want = _pins(" ".join(deps))
    assert set(want) == {"torch", "torchvision"}
    for name in ("Makefile", "environment.yml"):
        assert _pins((ROOT / name).read_text()) == want, name


def test_environment_installs_this_package_with_test_extras():
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*-e \.\[book,test\]\s*$", env, re.M)
    # torch comes before the package, as in `make install`
    assert env.index("torch==") < env.index("-e .[")
