"""Closed and open division: which config keys a run may override.

MLPerf's closed division fixes the model, the data and the training recipe; a submitter may
choose only the hyperparameters the rules list for that benchmark (batch size, learning rate
and its warmup ...). Each config class names those in ``CLOSED_TUNABLE``. The open division may
change anything. Keys that only bound or place a run (``RUN_CONTROL``: how long, how many
threads, which device, the projection's epoch count, whether the weights are kept) change no
training result and are allowed in both.

Torch-free: the agent checks jobs with this before it starts anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from references.common.errors import ConfigError

DIVISIONS = ("closed", "open")
RUN_CONTROL = frozenset({"max_epochs", "max_steps", "max_seconds", "threads", "device",
                         "workers", "epochs_to_converge", "save_checkpoint"})


def default_division(mode: str) -> str:
    """A full run follows the reference (closed); smoke and reduced runs are never MLPerf
    results, so they default to open."""
    return "closed" if mode == "full" else "open"


def check_division(division: str, mode: str, config_class: type, keys: Iterable[str]) -> None:
    """ConfigError unless ``keys`` may be overridden in ``division``."""
    if division not in DIVISIONS:
        raise ConfigError(f"unknown division {division!r}; divisions: {', '.join(DIVISIONS)}")
    if division == "closed" and mode == "smoke":
        raise ConfigError("smoke runs use a tiny model on synthetic data: they are open division "
                          "by definition (drop --division closed)")
    if division == "open":
        return
    allowed = RUN_CONTROL | frozenset(getattr(config_class, "CLOSED_TUNABLE", ()))
    refused = [k for k in keys if k not in allowed]
    if refused:
        tunable = ", ".join(sorted(getattr(config_class, "CLOSED_TUNABLE", ()))) or "none"
        raise ConfigError(f"closed division: {', '.join(refused)} may not be changed "
                          f"(closed allows {tunable}, plus run bounds); use --division open")
