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
