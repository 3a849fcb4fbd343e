"""Reading device profiles from YAML, validated, with errors that name the file and field.

The profiles shipped in the package (``device_profiles/``) are always read; a lab's own
folder (``--profiles-dir`` or ``$MLPERF_PROFILES_DIR``) adds profiles and overrides shipped
ones of the same name. A broken file anywhere is an error, never a silently missing profile."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from agent.errors import ConfigError
from agent.profiles.schema import DeviceProfile

#: A lab's own profiles folder when --profiles-dir is not given.
ENV_DIR = "MLPERF_PROFILES_DIR"


def builtin_dir() -> Path:
    """The profiles shipped in the package (the checkout's device_profiles/ when editable)."""
    import device_profiles

    return Path(device_profiles.__file__).resolve().parent


def lab_dir(given: Path | None = None) -> Path | None:
    """The lab's own profiles folder: ``given``, else $MLPERF_PROFILES_DIR, else None."""
    if given is not None:
        return Path(given).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    return None


def profiles_dir(given: Path | None = None) -> Path:
    """The folder profiles come from: the lab's own if there is one, else the shipped one."""
    return lab_dir(given) or builtin_dir()


def load_profile(path: Path) -> DeviceProfile:
    """One profile file; ConfigError like ``rpi5.yaml: container.memory_limit_mb: ...``."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"device profile {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"device profile {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"device profile {path}: expected a mapping of fields")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"device profile {path}: {where}: {first['msg']}{more}") from None


def read_folder(folder: Path) -> dict[str, DeviceProfile]:
    """Every ``*.yaml`` in one folder, by profile name; names must be unique within it."""
    if not folder.is_dir():
        raise ConfigError(f"device profiles folder {folder} does not exist "
                          f"(set --profiles-dir or {ENV_DIR})")
    profiles: dict[str, DeviceProfile] = {}
    origin: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        profile = load_profile(path)
        if profile.name in profiles:
            raise ConfigError(f"device profile {path}: name {profile.name!r} is already used "
                              f"by {origin[profile.name]}")
        profiles[profile.name], origin[profile.name] = profile, path
    if not profiles:
        raise ConfigError(f"device profiles folder {folder} holds no *.yaml file")
    return profiles


def load_profiles(folder: Path | None = None) -> dict[str, DeviceProfile]:
    """The shipped profiles, with the lab folder's (``folder``, else $MLPERF_PROFILES_DIR)
    added and overriding by name."""
    profiles = read_folder(builtin_dir())
    lab = lab_dir(folder)
    if lab is not None and lab.resolve() != builtin_dir():
        profiles.update(read_folder(lab))
    return profiles


def find_profile(name_or_path: str, folder: Path | None = None) -> DeviceProfile:
    """A profile by name (from the folder) or by path to a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_profile(Path(name_or_path).expanduser())
    profiles = load_profiles(folder)
    if name_or_path not in profiles:
        raise ConfigError(f"no device profile {name_or_path!r} "
                          f"(known: {', '.join(sorted(profiles))})")
    return profiles[name_or_path]
