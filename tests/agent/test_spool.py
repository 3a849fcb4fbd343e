"""The durable result spool: nothing is lost until acknowledged, even across restarts."""

import time

from agent.protocol import JobResult, Sequence
from agent.spool import Spool

seq = Sequence()


def result(n: int) -> JobResult:
    return JobResult(job_id=f"j{n}", result_id=f"r{n}", agent_id="a", benchmark="ncf",
                     mode="smoke", run_index=1, status="failed", started_at=1.0,
                     finished_at=2.0, error="boom", **seq())


def test_results_survive_a_restart_until_acked(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    first = result(1)
    spool.put(first)
    spool.put(result(2))
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert [r.result_id for r in spool.due()] == ["r1", "r2"]
    assert spool.due()[0] == first
    assert spool.ack("r1") is True
    assert spool.ack("r1") is False                 # a duplicate ack is harmless
    assert [r.result_id for r in spool.due()] == ["r2"]
    assert len(spool) == 1


def test_recently_sent_results_wait_for_the_resend_interval(tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    spool.put(result(1))
    spool.mark_sent("r1")
    assert spool.due(older_than_s=60) == []
    assert [r.result_id for r in spool.due(older_than_s=0)] == ["r1"]
    time.sleep(0.01)
    assert len(spool.due(older_than_s=0.001)) == 1


def test_job_ids_are_taken_once_and_remembered_within_a_bound(tmp_path, monkeypatch):
    import agent.spool as spool_module

    monkeypatch.setattr(spool_module, "MAX_SEEN_JOBS", 5)
    spool = Spool(tmp_path / "s.sqlite")
    assert spool.take_job("j1") is True and spool.take_job("j1") is False
    for n in range(2, 20):
        spool.take_job(f"j{n}")
        time.sleep(0.001)
    assert spool.seen_jobs() == 5
    spool.close()
    again = Spool(tmp_path / "s.sqlite")                      # across a restart
    assert again.take_job("j19") is False


def test_boots_count_up_across_restarts(tmp_path):
    first = Spool(tmp_path / "s.sqlite")
    a = first.next_boot()
    first.close()
    second = Spool(tmp_path / "s.sqlite")
    assert second.next_boot() == a + 1 and a > 1_000_000_000       # a wiped spool counts on


def test_resends_back_off_doubling_up_to_a_bound(tmp_path, monkeypatch):
    """A result sent n times waits older_than_s * 2**(n-1) (at most MAX_BACKOFF times) before
    it is due again: a controller behind its fleet is not buried under copies."""
    import agent.spool as spool_module

    spool = Spool(tmp_path / "s.sqlite")
    spool.put(result(1))
    clock = [1000.0]
    monkeypatch.setattr(spool_module.time, "time", lambda: clock[0])
    waits = []
    for _ in range(6):
        spool.mark_sent("r1")
        sent = clock[0]
        clock[0] = sent + 0.5
        while not spool.due(older_than_s=10):
            clock[0] += 1
        waits.append(int(clock[0] - sent))
    assert waits == [10, 20, 40, 80, 80, 80]          # each within the second
    assert spool_module.MAX_BACKOFF == 8
    spool.mark_sent("r1")
    assert [r.result_id for r in spool.due()] == ["r1"]   # the controller came back: now
