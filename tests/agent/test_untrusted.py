"""What a run writes back is untrusted: links, huge files, endless lines, nested JSON and a
timed window outside the run are refused, not followed or believed."""

import os
from types import SimpleNamespace

import pytest

from agent.container import _lines
from agent.errors import JobError
from agent.jobs import implausible
from agent.mllog import WindowTracker, parse
from agent.protocol import JobAssignment
from agent.runner import _read_result
from agent.untrusted import append_text, read_bounded


def test_a_link_is_never_followed(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("root:x:0:0")
    (tmp_path / "result.json").symlink_to(secret)
    with pytest.raises(JobError, match="cannot be opened safely"):
        read_bounded(tmp_path / "result.json")
    outcome, error = _read_result(tmp_path / "result.json")
    assert outcome is None and "root:x" not in error
    (tmp_path / "mllog.txt").symlink_to(secret)
    with pytest.raises(JobError):
        append_text(tmp_path / "mllog.txt", "power lines\n")
    assert secret.read_text() == "root:x:0:0"                 # untouched


def test_a_fifo_or_a_folder_is_not_a_file(tmp_path):
    os.mkfifo(tmp_path / "result.json")
    with pytest.raises(JobError, match="not a regular file"):
        read_bounded(tmp_path / "result.json")


def test_sizes_are_bounded(tmp_path):
    (tmp_path / "result.json").write_text(" " * 1000)
    with pytest.raises(JobError, match="larger than 100 bytes"):
        read_bounded(tmp_path / "result.json", limit=100)
    (tmp_path / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    outcome, error = _read_result(tmp_path / "nested.json")
    assert outcome is None and "unusable" in error


def test_an_endless_line_is_cut_into_pieces():
    chunks = [b"x" * 1000] * 50 + [b"\nend\n"]
    lines = list(_lines(iter(chunks), longest=4096))
    assert max(len(line) for line in lines) <= 4097
    assert "".join(lines).replace("\n", "") == "x" * 50_000 + "end"


def test_nested_or_damaged_mllog_lines_never_set_the_window():
    tracker = WindowTracker()
    assert parse(":::MLLOG " + "[" * 100_000) is None
    tracker.feed(':::MLLOG {"key": "run_start", "time_ms": "soon"}')
    tracker.feed(':::MLLOG {"key": "run_stop", "time_ms": -5, "metadata": "x"}')
    assert tracker.window is None


def ran(start_ms, stop_ms, outcome=None):
    tracker = WindowTracker()
    tracker.run_start_ms, tracker.run_stop_ms = start_ms, stop_ms
    return SimpleNamespace(tracker=tracker, outcome=outcome)


JOB = JobAssignment(job_id="j", campaign_id="c", benchmark="ncf", mode="smoke", run_index=1,
                    seed=3, seq=0, sent_at=0.0)


def test_a_window_must_lie_inside_the_run_and_agree_with_result_json():
    assert implausible(JOB, ran(100_000, 105_000), 99.0, 106.0) is None
    assert "outside" in implausible(JOB, ran(1_000, 2_000), 99.0, 106.0)
    assert "outside" in implausible(JOB, ran(100_000, 900_000), 99.0, 106.0)
    assert "before run_start" in implausible(JOB, ran(105_000, 100_000), 99.0, 106.0)
    other = SimpleNamespace(benchmark="resnet", mode="smoke", seed=3, timed_window_s=5.0)
    assert "not this job's" in implausible(JOB, ran(100_000, 105_000, other), 99.0, 106.0)
    longer = SimpleNamespace(benchmark="ncf", mode="smoke", seed=3, timed_window_s=50.0,
                             rank=0, world_size=1)
    assert "the MLLOG lines say" in implausible(JOB, ran(100_000, 105_000, longer), 99.0, 106.0)
