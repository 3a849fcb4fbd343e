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


def setup(profile: str | None, profiles_dir: Path | None, containers: bool = True,
          root: Path = Path("/")) -> DeviceSetup:
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
    return DeviceSetup(chosen, why, engine)


def workspace_fields(device: DeviceSetup, power_setting=None) -> dict:
    """Extra Workspace fields from the device: profile, engine, and the power config (the
    agent's own setting over the profile's) where the Workspace takes one."""
    from agent.jobs import Workspace

    extra = {"profile": device.profile, "engine": device.engine}
    names = {f.name for f in dataclasses.fields(Workspace)}
    if "power" in names:
        power = power_setting if power_setting is not None else (
            device.profile.power if device.profile is not None else None)
        if power is not None:
            extra["power"] = power
    return extra
