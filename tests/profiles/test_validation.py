"""Profile files are validated on load: errors name the file and the field, in one line."""

import shutil
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.profiles.loading import (
    find_profile,
    load_profile,
    load_profiles,
    profiles_dir,
)

GOOD = """name: test-board
description: a test board
platform: linux/arm64
runtime: torch-cpu
"""


def write(tmp_path: Path, text: str, name: str = "board.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra,field", [
    ("colour: red\n", "colour: Extra inputs are not permitted"),
    ("priority: high\n", "priority: Input should be a valid integer"),
    ("container: {memory_limit_mb: 8}\n", "container.memory_limit_mb: Input should be greater"),
    ("match: {device_tree_model: Raspberry Pi 5}\n",
     "match.device_tree_model: Input should be a valid list"),
    ("power: {rate_hz: 0}\n", "power.rate_hz: Input should be greater than 0"),
    ("power: {cooldown: {threshold: 50}}\n", "power.cooldown.threshold: Extra inputs"),
    ("power: {model: {idle_w: 1}}\n", "power.model.max_w: Field required"),
    ("benchmarks: {ncf: {mode: turbo}}\n", "benchmarks.ncf.mode: Input should be"),
])
def test_bad_field_is_named_with_the_file(tmp_path, extra, field):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"device profile {path}: ")
    assert field in message
    assert "\n" not in message


def test_runtime_and_platform_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="runtime: Input should be 'torch-cpu'"):
        load_profile(write(tmp_path, GOOD.replace("torch-cpu", "tensorflow")))
    with pytest.raises(ConfigError, match="platform: Input should be"):
        load_profile(write(tmp_path, GOOD.replace("linux/arm64", "linux/riscv64")))


def test_yaml_errors_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_profile(write(tmp_path, "- a list\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_profiles(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no device profile 'pi9'"):
        find_profile("pi9")


def test_duplicate_names_are_refused(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError, match="name 'test-board' is already used by"):
        load_profiles(tmp_path)


def test_shipped_profiles_all_load(tmp_path):
    shutil.copytree(profiles_dir(), tmp_path / "p")
    assert len(load_profiles(tmp_path / "p")) == 8
    assert find_profile(str(tmp_path / "p" / "raspberry-pi-5.yaml")).name == "raspberry-pi-5"
