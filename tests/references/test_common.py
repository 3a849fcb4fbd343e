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


def test_a_projection_only_from_the_mlperf_dataset_or_a_count_set_for_the_run():
    from references.common import datasets
    from references.common.harness import projection_for

    mlperf = datasets.Verdict(True, "ml-20m (MovieLens 20M: ...)")
    other = datasets.Verdict(False, "ratings.csv in ml-20m/ -- NOT the MLPerf dataset (...)")
    basis = "11 epochs: MLPerf's expectation"
    got = projection_for("reduced", mlperf, 11.0, 11.0, 2.0, basis)
    assert got["time_to_train_s"] == 22.0 and got["basis"] == basis
    assert projection_for("full", mlperf, 11.0, 11.0, 2.0, basis) is None
    assert projection_for("reduced", other, 11.0, 11.0, 2.0, basis) is None
    own = projection_for("reduced", other, 4.0, 11.0, 2.0, basis)
    assert own["time_to_train_s"] == 8.0 and "set for this run, NOT the reference's" in \
        own["basis"] and "NOT the MLPerf dataset" in own["basis"]
