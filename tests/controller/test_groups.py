"""Group runs in the store (controller.groups): nodes reserved and sent all at once with one
rendezvous on rank 0's address, every member ended when one fails, the group retried as a whole
within the budget -- never one member alone."""

from types import SimpleNamespace

import pytest

from agent.protocol import Capabilities, JobAssignment, JobState
from controller.errors import CampaignError, StoreError
from controller.groups import PORTS, choose_nodes, group_spec
from tests.controller.test_store import KEY, result, status

MOVE = (JobState.ACCEPTED, JobState.PREPARING, JobState.RUNNING)


def node(store, agent_id, address="10.0.0.1", profile="x86-64-cpu-server"):
    caps = Capabilities(hostname=agent_id, os="Linux", arch="x86_64", cpu_count=2,
                        memory_total_bytes=1, python="3.11", benchmarks=["ncf", "resnet"],
                        agent_version="0", profile=profile, address=address)
    store.enrol(status(agent_id, capabilities=caps), KEY, "test")


def running(store, job):
    for state in MOVE:
        store._test_move(job.id, state)


@pytest.fixture
def group_store(store):
    def move(job_id, state):
        with store.tx() as s:
            from controller.models import Job
            store._move(s, s.get(Job, job_id), state, "agent", None)
    store._test_move = move
    return store


def members(store, cid):
    return sorted((j for j in store.jobs(cid) if not j.superseded), key=lambda j: j.rank)


def test_a_group_is_sent_only_when_every_node_is_idle_and_then_all_at_once(group_store):
    store = group_store
    node(store, "a", address="10.0.0.7")
    node(store, "b", address="10.0.0.8")
    busy = store.create_campaign(["ncf"], "smoke", 1, ["b"], "b", {})
    [d] = store.claim_dispatches()
    assert d.agent_id == "b"                                   # b is now busy
    c = store.create_campaign(["ncf"], "smoke", 1, ["a", "b"], "all", {}, nodes=2,
                              group_timeout_s=60.0)
    other = store.create_campaign(["ncf"], "smoke", 1, ["a"], "a", {})
    # a is idle, but its oldest job is a member of a group b cannot join yet: a is reserved.
    assert store.claim_dispatches() == []
    assert store.job(store.jobs(other.id)[0].id).state == "queued"
    store.store_result(result(store.job(d.job.id)))            # b is free
    sent = store.claim_dispatches()
    assert sorted(x.agent_id for x in sent) == ["a", "b"]
    assert {x.job.group_id for x in sent} == {f"{c.id}-g0001"}
    where = {x.job.rendezvous for x in sent}
    assert len(where) == 1
    host, port = where.pop().rsplit(":", 1)
    assert host == "10.0.0.7" and int(port) in PORTS           # rank 0's announced address
    for x in sent:                                             # what the signed job carries
        spec = group_spec(x.job)
        job = JobAssignment(job_id=x.job.id, campaign_id=c.id, benchmark="ncf", mode="smoke",
                            run_index=1, seed=1, group=spec, seq=1, sent_at=1.0)
        assert (job.group.rank, job.group.world_size) == (x.job.rank, 2)
        # 60 s asked, but the profile may cool down for 300 s plus a 5 s baseline first
        assert job.group.timeout_s == 300 + 5 + 60
    assert busy.id != c.id


def test_the_wait_is_what_was_asked_where_no_profile_cools_down(group_store):
    store = group_store
    node(store, "a", profile=None)
    node(store, "b", profile=None)
    store.create_campaign(["ncf"], "smoke", 1, ["a", "b"], "all", {}, nodes=2,
                          group_timeout_s=42.0)
    assert {group_spec(x.job).timeout_s for x in store.claim_dispatches()} == {42.0}


def test_one_member_failing_ends_the_others_and_the_group_is_retried_whole(group_store):
    store = group_store
    node(store, "a")
    node(store, "b")
    c = store.create_campaign(["resnet"], "smoke", 1, ["a", "b"], "all", {}, nodes=2)
    sent = {x.job.rank: x.job for x in store.claim_dispatches()}
    for job in sent.values():
        running(store, job)
    # rank 1 was killed from outside: its device's failure
    store.store_result(result(sent[1], status="failed").model_copy(update={"retryable": True}))
    [(other, why)] = store.broken_groups()
    assert other.id == sent[0].id and why.startswith("rank 1 of its group failed")
    assert [j.id for j in store.jobs(c.id)] == [sent[0].id, sent[1].id]   # not alone
    assert store.retry_groups() == []                          # rank 0 still holds it
    store.store_result(result(sent[0], status="cancelled"))    # the controller's cancel
    assert store.broken_groups() == []
    assert store.close_finished_campaigns() == []              # its retry is still to come
    [(old, new)] = store.retry_groups()
    assert old == f"{c.id}-g0001" and new == f"{c.id}-g0001-a2"
    again = members(store, c.id)
    assert [(j.rank, j.attempt, j.state, j.group_id) for j in again] == [
        (0, 2, "queued", new), (1, 2, "queued", new)]
    assert store.close_finished_campaigns() == []
    sent = {x.job.rank: x.job for x in store.claim_dispatches()}
    assert set(sent) == {0, 1}
    for job in sent.values():
        running(store, job)
        store.store_result(result(job).model_copy(update={"result_id": f"r2-{job.id}"}))
    assert store.retry_groups() == [] and store.close_finished_campaigns() == [c.id]


def test_a_lost_node_breaks_the_group_and_the_budget_bounds_the_retries(group_store):
    store = group_store
    node(store, "a")
    node(store, "b")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a", "b"], "all", {}, nodes=2, retries=1)
    for attempt in (1, 2):
        sent = {x.job.rank: x.job for x in store.claim_dispatches()}
        assert {j.attempt for j in sent.values()} == {attempt}
        store.mark_lost(sent[0].id, "agent went offline")
        assert [j.id for j, _ in store.broken_groups()] == [sent[1].id]
        store.store_result(result(sent[1], status="cancelled").model_copy(
            update={"result_id": f"r{attempt}"}))
        store.retry_groups()
    assert [(j.attempt, j.state) for j in members(store, c.id)] == [(2, "lost"),
                                                                       (2, "cancelled")]
    assert store.close_finished_campaigns() == [c.id]          # budget spent: it ends


def test_the_jobs_own_failure_is_not_retried_and_a_done_run_is_kept(group_store):
    store = group_store
    node(store, "a")
    node(store, "b")
    c = store.create_campaign(["ncf"], "smoke", 2, ["a", "b"], "all", {}, nodes=2)
    sent = {x.job.rank: x.job for x in store.claim_dispatches()}
    store.store_result(result(sent[0], status="failed"))      # e.g. a bad parameter
    store.store_result(result(sent[1], status="failed"))
    assert store.retry_groups() == []
    sent = {x.job.rank: x.job for x in store.claim_dispatches()}
    assert {j.run_index for j in sent.values()} == {2}
    store.store_result(result(sent[0]))                        # rank 0 answered the run
    store.mark_lost(sent[1].id, "its report never came")
    assert store.retry_groups() == []
    assert store.close_finished_campaigns() == [c.id]


def test_the_retry_command_retries_a_group_whole(group_store):
    store = group_store
    node(store, "a")
    node(store, "b")
    c = store.create_campaign(["ncf"], "smoke", 1, ["a", "b"], "all", {}, nodes=2)
    sent = {x.job.rank: x.job for x in store.claim_dispatches()}
    store.store_result(result(sent[1], status="failed"))
    with pytest.raises(StoreError, match="still running on 1 node"):
        store.retry(sent[1].id)
    store.store_result(result(sent[0], status="cancelled"))
    again = store.retry(sent[1].id)
    assert sorted((j.rank, j.attempt) for j in again) == [(0, 2), (1, 2)]
    assert len({j.group_id for j in members(store, c.id)}) == 1


def dev(name, profile="p", address="10.0.0.1", host=None):
    caps = {"profile": profile, "host_id": host or name,
            **({"address": address} if address else {})}
    return SimpleNamespace(name=name, agent_id=name, capabilities=caps)


def test_choosing_nodes_says_why_it_cannot():
    pick = choose_nodes([dev("b"), dev("a"), dev("c")], 2, set(), "tag:rack")
    assert [d.name for d in pick] == ["a", "b"]                # by name; rank 0 first
    named = choose_nodes([dev("c"), dev("a")], 2, set(), "c,a")
    assert [d.name for d in named] == ["c", "a"]               # the order the operator gave
    with pytest.raises(CampaignError, match=r"--nodes 3: tag:rack selects 2 device\(s\)"):
        choose_nodes([dev("a"), dev("b")], 3, set(), "tag:rack")
    with pytest.raises(CampaignError, match=r"p: 1 ready of 2 \(busy: b\)"):
        choose_nodes([dev("a"), dev("b")], 2, {"b"}, "all")
    with pytest.raises(CampaignError, match=r"no 2 idle devices of one profile"):
        choose_nodes([dev("a", "p"), dev("b", "q")], 2, set(), "all")
    with pytest.raises(CampaignError, match=r"--address: b"):
        choose_nodes([dev("a"), dev("b", address=None)], 2, set(), "all")
    # Several hosts: rank 0 must not announce a loopback address the others cannot reach.
    lead = choose_nodes([dev("a", address="127.0.0.1"), dev("b", address="10.0.0.2")], 2,
                        set(), "all")
    assert [d.name for d in lead] == ["b", "a"]
    one_host = choose_nodes([dev("a", address="127.0.0.1", host="h"),
                             dev("b", address="127.0.0.1", host="h")], 2, set(), "all")
    assert [d.name for d in one_host] == ["a", "b"]
    with pytest.raises(CampaignError, match="loopback address the others cannot reach"):
        choose_nodes([dev("a", address="127.0.0.1"), dev("b", address="::1")], 2, set(), "all")


def finish(store, job, seconds, energy_j, samples=10_000, status="done", start_ms=1_000_000):
    from agent.protocol import JobResult, Sequence
    from tests.controller.results_factory import outcome, power

    out = outcome(job.benchmark, job.mode, seconds, samples=samples).model_copy(
        update={"world_size": job.world_size or 1, "rank": job.rank or 0})
    store.store_result(JobResult(
        job_id=job.id, result_id=f"r-{job.id}", agent_id=job.agent_id,
        campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
        run_index=job.run_index, status=status, started_at=1.0, finished_at=2.0,
        outcome=out, power=power(energy_j, seconds, start_ms=start_ms), **Sequence()()))


def test_a_group_is_one_row_with_its_nodes_energy_summed_and_its_scaling(group_store,
                                                                          tmp_path):
    from controller import runs as run_records
    from controller.report import build_html
    from controller.scoring import score_all

    store = group_store
    node(store, "a")
    node(store, "b")
    alone = store.create_campaign(["resnet"], "smoke", 1, ["a"], "a", {})
    [d] = store.claim_dispatches()
    finish(store, d.job, 10.0, 100.0, samples=1_000)                # 100 samples/s alone
    c = store.create_campaign(["resnet"], "smoke", 2, ["a", "b"], "all", {}, nodes=2)
    energies = {0: 60.0, 1: 80.0}
    for run in (1, 2):
        for x in store.claim_dispatches():
            finish(store, x.job, 8.0, energies[x.job.rank] if run == 1 or x.job.rank == 0
                   else None, samples=1_200, start_ms=5_000_000 + run * 100_000)
    rows = run_records.load(store, [c.id])
    assert [(r.run_index, r.nodes, r.device) for r in rows] == [(1, 2, "2 nodes: a, b"),
                                                                 (2, 2, "2 nodes: a, b")]
    first, second = rows
    assert first.energy_j == 140.0 and first.avg_power_w == 140.0 / 8.0
    assert [(d["rank"], d["energy_j"]) for d in first.node_detail] == [(0, 60.0), (1, 80.0)]
    # 1,200 samples in 8 s on two nodes against 100 samples/s alone: 150 / (2 x 100)
    assert first.scaling_efficiency == pytest.approx(0.75)
    assert second.energy_j is None and "no energy figure from rank 1 (b" in second.power_note
    # The group is its own system: never scored with a's single run.
    scores = score_all(run_records.load(store, [alone.id, c.id]))
    assert sorted(s.device for s in scores) == ["2 nodes: a, b", "a"]
    html, _ = build_html(store, [alone.id, c.id])
    # rank 1 has a figure for run 1 only: its mean is over that run
    assert "energy by node, mean per run: rank 0 a 60.0 J, rank 1 b 80.0 J" in html
    assert "2 nodes · 75% scaling efficiency" in html
