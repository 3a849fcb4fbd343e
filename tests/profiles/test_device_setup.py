"""How the agent sets itself up from a profile: named or detected, engine or not, and the
power section handed to the job workspace (the agent's own setting wins)."""

import pytest

from agent.errors import ConfigError
from agent.platforms import host_platform
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


FOREIGN = "linux/arm64" if host_platform() == "linux/amd64" else "linux/amd64"


def test_emulating_another_platform_needs_an_engine_and_a_matching_profile():
    from agent.profiles.device import emulation_check
    from agent.profiles.loading import find_profile

    pi = find_profile("raspberry-pi-5", None)
    x86 = find_profile("x86-64-cpu-server", None)
    native = "linux/amd64" if FOREIGN == "linux/arm64" else "linux/arm64"
    with pytest.raises(ConfigError, match="no container engine answers here"):
        emulation_check(FOREIGN, None, None)
    wrong = pi if pi.platform != FOREIGN else x86
    with pytest.raises(ConfigError, match=f"profile {wrong.name} is for {wrong.platform}; "
                                          f"choose a profile for {FOREIGN}"):
        emulation_check(FOREIGN, wrong, "docker 20.10")
    assert emulation_check(native, None, None) is False        # the host's own: no emulation


def test_without_a_qemu_handler_emulation_is_refused_with_the_fix(monkeypatch, tmp_path):
    from agent import platforms
    from agent.profiles.device import emulation_check

    monkeypatch.setattr(platforms, "BINFMT", tmp_path)          # no handler registered
    monkeypatch.setattr(platforms.emulation_problem, "__defaults__", (tmp_path,))
    with pytest.raises(ConfigError, match="update-binfmts --enable qemu-"):
        emulation_check(FOREIGN, None, "docker 20.10")


def test_an_emulating_agent_measures_this_host_never_the_boards_model():
    """The profile's sources (the Pi's PMIC) and power model describe the board: under
    emulation the host's own sources are discovered, and no model estimates the emulator."""
    from agent.profiles.device import DeviceSetup
    from agent.profiles.loading import find_profile

    pi = find_profile("raspberry-pi-5", None)
    assert pi.power.sources and pi.power.model is not None
    device = DeviceSetup(pi, "set", "docker 20.10", "linux/arm64", emulated=True)
    power = workspace_fields(device)["power"]
    assert power.sources == [] and power.model is None
    assert power.cooldown.threshold_c is None
    assert workspace_fields(device)["container_platform"] == "linux/arm64"
    own = PowerConfig(rate_hz=2.0)
    assert workspace_fields(device, own)["power"] is own            # the agent's own wins


def test_a_bad_platform_setting_is_one_line(tmp_path):
    from agent.settings import AgentSettings

    with pytest.raises(ConfigError, match="--platform: platform 'linux/riscv64': use one of"):
        AgentSettings(work_dir=tmp_path, platform="linux/riscv64")
    with pytest.raises(ConfigError, match="--platform: platform "):
        AgentSettings(work_dir=tmp_path, platform=["linux/arm64"])
