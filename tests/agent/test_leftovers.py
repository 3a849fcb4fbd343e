"""What a crashed agent leaves is cleared before the next job: the job it was running is
named, a reference run still going (here, one that stays silent) is ended."""

import os
import subprocess
import sys
import time

import psutil

from agent.leftovers import RunningMarker, reap
from agent.protocol import JobAssignment
from tests.conftest import wait_for

JOB = JobAssignment(job_id="c1-0001", campaign_id="c1", benchmark="ncf", mode="smoke",
                    run_index=1, seed=1, seq=0, sent_at=0.0)


def test_a_silent_leftover_run_is_ended_and_its_job_named(tmp_path):
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               "references", "run"], start_new_session=True)
    # Until the child has exec'd, its command line is pytest's: not a run to end.
    wait_for(lambda: "references" in psutil.Process(orphan.pid).cmdline(), 15, what="exec")
    marker = RunningMarker(tmp_path)
    marker.begin(JOB)
    marker.started(pid=orphan.pid)
    assert reap(tmp_path, "pi-5", engine=None) == JOB
    assert orphan.wait(15) is not None                     # ended (SIGTERM)
    assert not marker.path.exists()
    assert reap(tmp_path, "pi-5", engine=None) is None      # a clean stop leaves nothing


def test_a_recycled_pid_of_another_program_is_left_alone(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             start_new_session=True)
    marker = RunningMarker(tmp_path)
    marker.begin(JOB)
    marker.started(pid=other.pid)
    try:
        reap(tmp_path, "pi-5", engine=None)
        time.sleep(0.5)
        assert other.poll() is None                        # not a reference run: untouched
    finally:
        other.kill()
        other.wait()


def test_a_damaged_marker_is_ignored(tmp_path):
    (tmp_path / "running.json").write_text("{not json")
    assert reap(tmp_path, "pi-5", engine=None) is None
    os.path.exists(tmp_path / "running.json") or None
