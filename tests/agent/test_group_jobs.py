"""An agent's side of a run several nodes train together: what it refuses before running, the
command line it builds from the signed job, and whose timed window it measures power over."""

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError, JobError
from agent.jobs import validate
from agent.mllog import WindowTracker
from agent.protocol import GroupSpec, JobAssignment, Sequence
from agent.runner import RunRequest
from agent.settings import resolve

seq = Sequence()


def job(benchmark="ncf", rank=1, world=2, **params):
    return JobAssignment(job_id="j1", campaign_id="c1", benchmark=benchmark, mode="smoke",
                         run_index=1, seed=1, params=params,
                         group=GroupSpec(group_id="g1", rank=rank, world_size=world,
                                         master_addr="10.0.0.5", master_port=29501,
                                         timeout_s=90.0), **seq())


def test_a_group_job_a_reference_cannot_train_is_refused_before_it_runs():
    validate(job())
    with pytest.raises(JobError, match="transformer cannot train across several nodes"):
        validate(job("transformer"))
    with pytest.raises(JobError, match="4 nodes need at least 4"):
        validate(job(world=4, batch_size=2))


def test_the_command_line_carries_rank_world_and_rendezvous():
    spec = job(rank=1, world=3).group
    argv = RunRequest(benchmark="ncf", mode="smoke", seed=1, out_dir=Path("/o"),
                      platform="p", group=spec).argv()
    at = argv.index("--rank")
    assert argv[at:] == ["--rank", "1", "--world-size", "3", "--rendezvous", "10.0.0.5:29501",
                         "--group-timeout", "90"]
    alone = RunRequest(benchmark="ncf", mode="smoke", seed=1, out_dir=Path("/o"), platform="p")
    assert "--rank" not in alone.argv()


def line(key, time_ms):
    return ":::MLLOG " + json.dumps({"key": key, "time_ms": time_ms, "value": None,
                                     "metadata": {}, "event_type": "POINT_IN_TIME",
                                     "namespace": ""})


def test_rank_1_measures_over_its_node_window_never_over_a_run_start_it_prints():
    node = WindowTracker(node=True)
    for key, t in (("run_start", 10), ("mlperf_edge_node_run_start", 1000),
                   ("run_stop", 20), ("mlperf_edge_node_run_stop", 3000)):
        node.feed(line(key, t))
    assert (node.window.run_start_ms, node.window.run_stop_ms) == (1000, 3000)
    lead = WindowTracker()
    for key, t in (("mlperf_edge_node_run_start", 5), ("run_start", 100), ("run_stop", 200)):
        lead.feed(line(key, t))
    assert (lead.window.run_start_ms, lead.window.run_stop_ms) == (100, 200)


@pytest.mark.parametrize("address", ["10.0.0.5; true", "-x", "a b", ""])
def test_a_bad_address_is_one_line(tmp_path, address):
    with pytest.raises(ConfigError, match="--address"):
        resolve({"address": address, "work_dir": tmp_path}, None)
    assert resolve({"address": "node1.lab", "work_dir": tmp_path}, None).address == "node1.lab"


def test_a_result_json_that_claims_another_rank_is_refused():
    from types import SimpleNamespace

    from agent.jobs import implausible
    from agent.protocol import TimedWindow
    from tests.agent.test_protocol import outcome

    window = TimedWindow(run_start_ms=10_000, run_stop_ms=14_200, duration_s=4.2)

    def ran(**claims):
        return SimpleNamespace(tracker=SimpleNamespace(window=window),
                               outcome=outcome(**claims))

    member = job(rank=1, world=2)
    assert implausible(member, ran(rank=1, world_size=2), 9.0, 15.0) is None
    assert "rank 0 of 2 node(s), not this job's rank 1 of 2" in implausible(
        member, ran(rank=0, world_size=2), 9.0, 15.0)
    alone = member.model_copy(update={"group": None})
    assert "not this job's rank 0 of 1" in implausible(alone, ran(rank=0, world_size=4), 9.0,
                                                       15.0)
