"""Typed overrides for reference configs (frozen dataclasses).

``apply_overrides(cfg, {"batch_size": "4096"})`` parses each value to the field's declared type
and returns a new config. An unknown key or a value that does not parse is a ConfigError whose
one-line message names the key and the type it expects: a silently ignored override would run a
different benchmark than the one asked for.

Torch-free on purpose: the agent validates jobs with this before it starts anything.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from references.common.errors import ConfigError

C = TypeVar("C")
Value = str | int | float | bool

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null", ""}


def apply_overrides(cfg: C, overrides: Mapping[str, Value] | None) -> C:
    """A copy of ``cfg`` with ``overrides`` parsed to each field's type (see module doc)."""
    if not overrides:
        return cfg
    hints = field_types(type(cfg))
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(hints)}")
        changes[key] = parse_value(key, raw, hints[key])
    return dataclasses.replace(cfg, **changes)


#: Bounds every override is held to, whatever the field: a job is untrusted input.
MAX_TEXT_CHARS = 256
MAX_TUPLE_ITEMS = 32
MAX_ABS_INT = 2**31 - 1


def check_limits(cfg: Any) -> None:
    """ConfigError when a size or count exceeds its upper bound (the config class's
    ``LIMITS``: field -> largest value, each element for tuples)."""
    for key, largest in getattr(type(cfg), "LIMITS", {}).items():
        value = getattr(cfg, key)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and v > largest for v in values):
            shown = f"{int(largest):,}" if float(largest).is_integer() else f"{largest:g}"
            raise ConfigError(f"config key {key!r} is {value!r}; at most {shown} is allowed "
                              "(an upper bound every job is held to)")


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def config_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able data (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def type_name(tp: Any) -> str:
    """'int', 'float or none', 'comma-separated ints' ... for error messages."""
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is tuple:
        name = "comma-separated ints"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def parse_value(key: str, raw: Value, tp: Any) -> Any:
    """Parse ``raw`` (a string from the command line, or an already typed value from a job) to
    ``tp``: int, float, bool (true/false/1/0), str, tuple[int, ...] or any of them | None."""
    inner, optional = _unwrap_optional(tp)
    if optional and (raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE)):
        return None
    if isinstance(raw, str) and len(raw) > MAX_TEXT_CHARS:
        raise ConfigError(f"config key {key!r}: a value of {len(raw)} characters; at most "
                          f"{MAX_TEXT_CHARS}")
    try:
        value = _parse(raw, inner)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r} expects {type_name(tp)}, "
                          f"got {str(raw)[:60]!r}") from None
    values = value if isinstance(value, tuple) else (value,)
    if len(values) > MAX_TUPLE_ITEMS:
        raise ConfigError(f"config key {key!r}: {len(values)} values; at most {MAX_TUPLE_ITEMS}")
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_ABS_INT
           for v in values):
        raise ConfigError(f"config key {key!r}: {raw!r} is out of range "
                          f"(|value| <= {MAX_ABS_INT})")
    return value


def _parse(raw: Value, tp: Any) -> Any:
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(raw)
    if tp is int:
        # bool is an int subclass; "1.5" or 1.5 silently truncated would be a different run.
        if isinstance(raw, bool) or isinstance(raw, float):
            raise ValueError(raw)
        return int(raw.strip()) if isinstance(raw, str) else int(raw)
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    if tp is str:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    if typing.get_origin(tp) is tuple:
        parts = raw.split(",") if isinstance(raw, str) else list(raw)  # type: ignore[arg-type]
        values = tuple(_parse(p, int) for p in parts)
        if not values:
            raise ValueError(raw)
        return values
    raise TypeError(f"unsupported config field type {tp!r}")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(X, True) for ``X | None``; (tp, False) otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False
