"""The YAML settings file both CLIs read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError


def read_settings_file(path: Path | None, default: Path, known: set[str],
                       relative: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The mapping in a CLI's YAML settings file, keys checked against ``known``.

    Both CLIs layer settings as flags > environment > this file > defaults. A missing default
    file is fine ({}); a missing explicit one, bad YAML or an unknown key is a ConfigError.
    Relative paths under the keys in ``relative`` (credential files) are taken from the
    file's own folder, so a folder of credentials can be copied to a device as it is.
    """
    explicit = path is not None
    path = (path or default).expanduser()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    for key in relative & set(data):
        value = data[key]
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = str(path.parent / value)
    return data
