"""The recipes in containers/ stay in step with the project (no engine needed): every runtime
dependency the project declares is pinned exactly, so images never resolve anything new."""

import pytest
import tomllib
from packaging.requirements import Requirement

from controller.images.context import resolve_requirements
from tests.conftest import ROOT

#: Each recipe and the platforms it is built for (its pins are resolved per platform).
RECIPES = [("torch-cpu", "linux/amd64"), ("torch-cpu", "linux/arm64"),
           ("torch-cuda", "linux/amd64"), ("jetson-l4t", "linux/arm64")]


def pins(runtime: str, platform: str) -> dict[str, str]:
    """Name -> version of every pin that applies to ``platform`` (resolve_requirements
    refuses any line that is not one exact pin)."""
    path = ROOT / "containers" / runtime / "requirements.txt"
    out = {}
    for line in resolve_requirements(path, platform):
        (spec,) = Requirement(line).specifier
        out[Requirement(line).name.lower().replace("_", "-")] = spec.version
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


@pytest.mark.parametrize("runtime,platform", RECIPES)
def test_every_declared_dependency_is_pinned(runtime, platform):
    missing = declared() - set(pins(runtime, platform))
    if runtime == "jetson-l4t":
        missing -= {"torch", "numpy"}                  # the l4t-pytorch base brings them
    assert not missing, f"containers/{runtime}/requirements.txt lacks pins for {missing}"


@pytest.mark.parametrize("runtime", sorted({r for r, _ in RECIPES}))
def test_recipe_builds_from_the_wheelhouse_only(runtime):
    text = (ROOT / "containers" / runtime / "Dockerfile").read_text()
    assert "--no-index" in text and "--find-links /build/wheels" in text
    assert "ARG BASE_IMAGE" in text
    # Dependencies before the project, so a code change never rebuilds the dependency layer.
    assert text.index("requirements.txt") < text.index("project/")
