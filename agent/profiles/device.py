"""This device's profile and engine, as ``mlperf-agent start`` sets them up: the profile named
in the settings, else the one detected; the container engine if one answers."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.profiles.detect import detect, gather
from agent.profiles.loading import find_profile, load_profiles
from agent.profiles.schema import DeviceProfile

log = logging.getLogger("mlperf.agent")


@dataclass(frozen=True)
class DeviceSetup:
    profile: DeviceProfile | None
    why: str
    engine: str | None
    platform: str | None = None         # the containers' platform (None: the host's)
    emulated: bool = False              # they run under qemu: times are the emulator's


def setup(profile: str | None, profiles_dir: Path | None, containers: bool = True,
          root: Path = Path("/"), platform: str | None = None) -> DeviceSetup:
    """Resolve the profile (a name or YAML path wins over detection) and find the engine.

    A profile that cannot be read -- the one named, or any file detection would choose from --
    is a ConfigError naming the file and field: a device never runs on silently without its
    profile (no cool-down, no power model, no selection by profile)."""
    from agent.container import engine_version

    if profile:
        chosen, why = find_profile(profile, profiles_dir), "set in the agent settings"
    else:
        match, _ = detect(load_profiles(profiles_dir), gather(root))
        chosen, why = match.profile, "detected: " + "; ".join(match.reasons)
    engine = engine_version() if containers and (chosen is None or chosen.uses_container) \
        else None
    emulated = False
    if platform is not None:
        emulated = emulation_check(platform, chosen, engine)
    return DeviceSetup(chosen, why, engine, platform, emulated)


def emulation_check(platform: str, profile: DeviceProfile | None, engine: str | None) -> bool:
    """Whether ``--platform`` asks for emulation here; ConfigError when it cannot work: no
    engine to run its containers, no qemu handler, or a profile of another platform."""
    from agent import platforms
    from agent.errors import ConfigError

    if profile is not None and profile.platform not in ("auto", platform):
        raise ConfigError(f"--platform {platform}: profile {profile.name} is for "
                          f"{profile.platform}; choose a profile for {platform}")
    if not platforms.emulated(platform):
        return False
    if engine is None:
        raise ConfigError(f"--platform {platform} runs every job in a {platform} container "
                          "under emulation: no container engine answers here (or "
                          "--no-containers, or a native profile)")
    problem = platforms.emulation_problem(platform)
    if problem:
        raise ConfigError(f"--platform {platform}: {problem}")
    log.warning("containers run as %s under qemu emulation on this %s host: every result "
                "is labelled emulated, its times are never a board's", platform,
                platforms.host_platform())
    return True


def workspace_fields(device: DeviceSetup, power_setting=None) -> dict:
    """Extra Workspace fields from the device: profile, engine, and the power config (the
    agent's own setting over the profile's) where the Workspace takes one."""
    from agent.jobs import Workspace

    extra = {"profile": device.profile, "engine": device.engine,
             "container_platform": device.platform}
    names = {f.name for f in dataclasses.fields(Workspace)}
    if "power" in names:
        power = power_setting if power_setting is not None else (
            device.profile.power if device.profile is not None else None)
        if device.emulated and power_setting is None:
            power = host_power(device.profile)
        if power is not None:
            extra["power"] = power
    return extra


def host_power(profile: DeviceProfile | None):
    """An emulating agent's power config: the profile's sources, model and cool-down describe
    the board, not this host, so this host's own measured sources are discovered instead (none:
    no energy figure), never a board's model applied to the emulator."""
    from agent.power.config import PowerConfig

    if profile is not None and (profile.power.sources or profile.power.model):
        log.warning("emulating %s: its power sources and model describe the board, not this "
                    "host; power is measured with this host's own sources, if any",
                    profile.name)
    return PowerConfig(rate_hz=profile.power.rate_hz if profile is not None else 10.0)
