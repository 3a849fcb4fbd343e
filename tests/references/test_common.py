"""Targets, result.json, provenance and the MLLOG set-up."""

from __future__ import annotations

import io
import json

import pytest

from references.common import provenance
from references.common.mllogging import MLLog
from references.common.result import KEYS, write_result
from references.common.targets import Target, reached, target_for


def test_targets_are_data_checked_by_a_plain_function():
    full = target_for("ncf", "full")
    assert (full.metric, full.value, full.direction) == ("hr@10", 0.635, "max")
    assert "MLPerf training v0.5" in full.source
    assert target_for("ncf", "reduced") == full
    assert "synthetic" in target_for("ncf", "smoke").source
    assert reached(full, 0.635) and not reached(full, 0.6349)
    assert not reached(full, None) and not reached(full, float("nan"))
    assert reached(Target("loss", 2.0, "min", "x"), 1.9)


def sample_result(**changes):
    result = {key: None for key in KEYS}
    result.update({"schema": 1, "division": "open", "stop_reason": "max_epochs",
                   "projection": None, **changes})
    return result


def test_result_is_written_atomically_and_checked(tmp_path):
    path = write_result(tmp_path, sample_result(quality=0.5))
    assert json.loads(path.read_text())["quality"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]     # no temp file left
    with pytest.raises(ValueError, match="missing"):
        write_result(tmp_path, {"schema": 1})
    with pytest.raises(ValueError, match="stop_reason"):
        write_result(tmp_path, sample_result(stop_reason="tired"))


def test_source_revision(monkeypatch):
    monkeypatch.setenv("MLPERF_SOURCE_REVISION", "abc123")
    assert provenance.source_revision() == "abc123"
    monkeypatch.delenv("MLPERF_SOURCE_REVISION")
    revision = provenance.source_revision()
    assert revision and revision != "abc123"       # a commit, a version, or "unknown"


def test_mllog_lines_go_to_stdout_and_the_file_alike(tmp_path):
    stream = io.StringIO()
    log = MLLog(tmp_path / "mllog.txt", stdout=stream)
    t = log.event("seed", 3)
    log.start("run_start")
    log.end("run_stop", metadata={"status": "success"})
    log.close()
    lines = stream.getvalue().splitlines()
    assert lines == (tmp_path / "mllog.txt").read_text().splitlines()
    assert all(line.startswith(":::MLLOG {") for line in lines)
    first = json.loads(lines[0][len(":::MLLOG "):])
    assert first["key"] == "seed" and first["value"] == 3 and first["time_ms"] == t
    assert first["metadata"]["file"].endswith("test_common.py")     # the caller, not the wrapper
    assert json.loads(lines[2][9:])["metadata"]["status"] == "success"
