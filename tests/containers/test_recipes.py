"""The recipes in containers/ stay in step with the project (no engine needed): every runtime
dependency the project declares is pinned exactly, so images never resolve anything new."""

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.conftest import ROOT

RECIPES = ["torch-cpu", "torch-cuda", "jetson-l4t"]


def pins(runtime: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "containers" / runtime / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier                    # exactly one: ==VERSION
            assert spec.operator == "==", f"{runtime}: {line} is not pinned with =="
            out[req.name.lower().replace("_", "-")] = spec.version
    return out


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = set()
    for item in project["dependencies"] + extras["torch"] + extras["references"]:
        req = Requirement(item)
        if req.name != "mlperf-edge":
            names.add(req.name.lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("runtime", RECIPES)
def test_every_declared_dependency_is_pinned(runtime):
    missing = declared() - set(pins(runtime))
    if runtime == "jetson-l4t":
        missing -= {"torch", "numpy"}                  # the l4t-pytorch base brings them
    assert not missing, f"containers/{runtime}/requirements.txt lacks pins for {missing}"


@pytest.mark.parametrize("runtime", RECIPES)
def test_recipe_builds_from_the_wheelhouse_only(runtime):
    text = (ROOT / "containers" / runtime / "Dockerfile").read_text()
    assert "--no-index" in text and "--find-links /build/wheels" in text
    assert "ARG BASE_IMAGE" in text
    # Dependencies before the project, so a code change never rebuilds the dependency layer.
    assert text.index("requirements.txt") < text.index("project/")
