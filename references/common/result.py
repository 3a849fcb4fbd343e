"""OUT/result.json: what a reference run reports (the agent reads it; keys exactly these).

A run that ended by a signal writes none: only a run that completed has a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = 1
KEYS = (
    "schema", "benchmark", "mode", "division", "status", "reached_target", "target", "quality",
    "quality_parts", "epochs",
    "samples_trained", "timed_window_s", "time_to_target_s", "time_to_train_s",
    "throughput_samples_per_s", "epoch_time_s", "projection", "stop_reason", "dataset", "config",
    "source_revision", "seed", "platform", "mllog_file", "world_size", "rank", "first_losses",
)
STOP_REASONS = ("target_reached", "max_epochs", "max_steps", "max_seconds")
PROJECTION_KEYS = ("kind", "time_to_train_s", "epochs_to_converge", "epoch_time_s", "basis")


def write_result(out_dir: Path, result: dict[str, Any]) -> Path:
    """Check ``result`` against the schema and write it atomically (tmp file + rename), so a
    reader never sees half a file."""
    if tuple(result) != KEYS:
        missing = [k for k in KEYS if k not in result]
        extra = [k for k in result if k not in KEYS]
        raise ValueError(f"result keys differ from the schema: missing {missing}, extra {extra}")
    if result["division"] not in ("closed", "open"):
        raise ValueError(f"division {result['division']!r} not in ('closed', 'open')")
    if result["stop_reason"] not in STOP_REASONS:
        raise ValueError(f"stop_reason {result['stop_reason']!r} not in {STOP_REASONS}")
    if result["projection"] is not None and tuple(result["projection"]) != PROJECTION_KEYS:
        raise ValueError(f"projection keys must be {PROJECTION_KEYS}")
    path = Path(out_dir) / "result.json"
    fd, tmp = tempfile.mkstemp(prefix=".result.", suffix=".json", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
