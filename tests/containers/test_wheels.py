"""Pinned wheels per target platform, without an engine: environment markers evaluated for
the target (not this host), exact pins only, and a wheel missing for a platform named in one
line (real pip, against a wheelhouse folder: no index)."""

import pytest

from controller.images.context import collect_wheels, platform_tags, resolve_requirements
from controller.images.engine import ImageError
from tests.conftest import ROOT

TORCH_CPU = ROOT / "containers" / "torch-cpu" / "requirements.txt"


def pins(platform: str) -> dict[str, str]:
    return dict(line.split("==") for line in resolve_requirements(TORCH_CPU, platform))


def test_each_platform_gets_its_own_torch_and_the_same_rest():
    amd64, arm64 = pins("linux/amd64"), pins("linux/arm64")
    assert amd64["torch"] == "2.13.0+cpu"
    # PyPI's aarch64 torch is a CPU build up to 2.10.0 (later ones link CUDA 13)
    assert arm64["torch"] == "2.10.0"
    assert {k: v for k, v in amd64.items() if k != "torch"} == \
        {k: v for k, v in arm64.items() if k != "torch"}


@pytest.mark.parametrize("text,complaint", [
    ("numpy>=2\n", "numpy is not pinned with =="),
    ("numpy==2.4.6\nnumpy==2.4.5\n", "numpy is pinned twice for linux/arm64"),
    ("numpy==2.4.6 ; platform_machine ==\n", "requirements.txt:1:"),
])
def test_a_recipe_line_that_is_not_one_exact_pin_is_refused(tmp_path, text, complaint):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    with pytest.raises(ImageError, match=complaint):
        resolve_requirements(path, "linux/arm64")


def test_markers_for_another_platform_leave_a_line_out(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text('a==1; platform_machine == "x86_64"\nb==2; platform_machine == "aarch64"\n'
                    'c==3\n')
    assert resolve_requirements(path, "linux/arm64") == ["b==2", "c==3"]
    assert resolve_requirements(path, "linux/amd64") == ["a==1", "c==3"]


def test_target_tags_reach_back_to_manylinux2014():
    tags = platform_tags("linux/arm64")
    assert tags[0] == "manylinux_2_36_aarch64"          # bookworm's glibc
    assert "manylinux_2_28_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert tags[-1] == "any" and not any("x86_64" in t for t in tags)


def test_a_wheel_missing_for_the_platform_is_one_line_naming_it(tmp_path):
    """Only a pure-Python wheel in the wheelhouse: the first pin without an arm64 wheel is
    named with the platform, and nothing is built from source."""
    import subprocess
    import sys

    house = tmp_path / "house"
    src = tmp_path / "pkg"
    (src / "purelib_x").mkdir(parents=True)
    (src / "purelib_x" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "purelib-x"\nversion = "1.0"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(house), str(src)], check=True, capture_output=True)
    req = tmp_path / "torch-cpu" / "requirements.txt"
    req.parent.mkdir()
    req.write_text("purelib-x==1.0\ntorch==2.10.0\n")
    with pytest.raises(ImageError) as caught:
        collect_wheels(req, tmp_path / "cache", "linux/arm64", house, log=lambda line: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("torch-cpu: no wheel of torch==2.10.0 for linux/arm64 (cp311, "
                              "manylinux_2_36_aarch64 or older, or pure Python) in ")
    assert "--wheelhouse DIR" in message
    assert not list((tmp_path / "cache").glob("torch-*"))      # nothing built from source
