"""How the agent sets itself up from a profile: named or detected, engine or not, and the
power section handed to the job workspace (the agent's own setting wins)."""

import pytest

from agent.errors import ConfigError
from agent.power.config import PowerConfig
from agent.profiles.device import setup, workspace_fields


def test_named_profile_wins_and_containers_can_be_off(make_board):
    device = setup("raspberry-pi-5", None, containers=False, root=make_board("jetson-nano"))
    assert device.profile.name == "raspberry-pi-5"
    assert device.why == "set in the agent settings" and device.engine is None


def test_detected_profile_says_why(make_board):
    device = setup(None, None, containers=False, root=make_board("orin-nano"))
    assert device.profile.name == "jetson-orin-nano"
    assert device.why.startswith("detected: + device-tree model")


def test_native_profile_never_gets_an_engine(make_board):
    device = setup(None, None, containers=True, root=make_board("android"))
    assert device.profile.name == "android-phone" and device.engine is None


def test_a_wrong_profile_name_is_a_config_error():
    with pytest.raises(ConfigError, match="no device profile 'pi9'"):
        setup("pi9", None, containers=False)


def test_power_comes_from_the_profile_unless_the_agent_sets_it(make_board):
    device = setup("raspberry-pi-5", None, containers=False)
    fields = workspace_fields(device)
    assert fields["profile"].name == "raspberry-pi-5"
    assert fields["power"] == device.profile.power
    assert fields["power"].cooldown.threshold_c == 60
    own = PowerConfig(rate_hz=2.0)
    assert workspace_fields(device, own)["power"] is own


def test_a_broken_profile_anywhere_stops_the_agent_with_file_and_field(tmp_path, make_board):
    """A typo in an unrelated profile must not leave the device running without its own."""
    (tmp_path / "jetson-nano.yaml").write_text(
        "name: jetson-nano\ndescription: x\nplatform: linux/arm64\nruntime: torch-cpu\n"
        "power: {rate_hz: fast}\n")
    with pytest.raises(ConfigError, match=r"jetson-nano.yaml: power.rate_hz"):
        setup(None, tmp_path, containers=False, root=make_board("rpi5"))


def test_a_lab_folder_adds_and_overrides_shipped_profiles(tmp_path, make_board):
    (tmp_path / "pi5.yaml").write_text(
        "name: raspberry-pi-5\ndescription: our Pi 5s, with a fan\npriority: 50\n"
        "match: {device_tree_model: ['Raspberry Pi 5']}\nplatform: linux/arm64\n"
        "runtime: native\n")
    (tmp_path / "rack.yaml").write_text(
        "name: rack-server\ndescription: x\nplatform: linux/amd64\nruntime: torch-cpu\n")
    from agent.profiles.loading import load_profiles

    profiles = load_profiles(tmp_path)
    assert "rack-server" in profiles and "jetson-nano" in profiles          # added, kept
    device = setup(None, tmp_path, containers=False, root=make_board("rpi5"))
    assert device.profile.description == "our Pi 5s, with a fan"            # overridden
