"""`mlperf-controller export --layout mlcommons`: the MLCommons training results layout from a
store populated directly -- one system per device and mode, the reference's lines and the
agent's power lines split, v0.6 lines for ruleset 0.6.0, the system description's fields,
retried runs left out, and one clear line for what cannot be done."""

from __future__ import annotations

import json

import pytest

from agent.power.mllog_power import line as power_line
from agent.protocol import JobEvent, JobResult, Sequence
from controller.export_mlcommons import (
    ExportError,
    export_mlcommons,
    render,
    sanitise,
    split_power,
)
from controller.runs import load
from controller.store import Store
from references.common.mllogging import v06_line
from tests.conftest import cli
from tests.controller.results_factory import device, outcome

seq = Sequence()
T0 = 1_700_000_000_000
DIGEST = "sha256:" + "ab" * 32                  # an image id (the store keeps 80 chars)


def mllog(time_ms: int, key: str, value=None, **metadata) -> str:
    """A stored line as mlperf_logging.mllog writes it."""
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms, "event_type":
                                     "POINT_IN_TIME", "key": key, "value": value,
                                     "metadata": {"file": "train.py", "lineno": 1, **metadata}})


def reference_log(t: int, benchmark: str = "resnet") -> list[str]:
    return [mllog(t, "submission_benchmark", benchmark), mllog(t + 1, "init_start"),
            mllog(t + 5, "init_stop"), mllog(t + 10, "run_start"),
            mllog(t + 400, "run_stop", status="success")]


def power_log(t: int, watts: float = 10.0) -> list[str]:
    meta = {"host": "edge", "scope": "package", "unit": "W", "sources": ["rapl/package-0"]}
    return [power_line(t + 10, "INTERVAL_START", "power_measurement_start", None, meta),
            power_line(t + 210, "POINT_IN_TIME", "power_reading", watts, {"host": "edge"}),
            power_line(t + 400, "POINT_IN_TIME", "power_reading", watts, {"host": "edge"}),
            power_line(t + 400, "INTERVAL_END", "power_measurement_stop", None,
                       {"host": "edge"})]



@pytest.fixture
def store(tmp_path):
    """SQLite only: the export reads the store through controller.runs.load, which the scoring
    tests already run on SQLite and PostgreSQL; drawing every case twice only costs time."""
    s = Store(f"sqlite:///{tmp_path / 'c.db'}")
    yield s
    s.close()

def finish(store, job, lines: list[str], status: str = "done", division: str = "open",
           **result):
    """Forward the job's MLLOG lines (as the agent does, in one event) and store its result."""
    if lines:
        store.apply_event(JobEvent(job_id=job.id, agent_id=job.agent_id, state=None,
                                   mllog=lines, **seq()))
    out = outcome(job.benchmark, job.mode, 0.39).model_copy(update={"division": division})
    store.store_result(JobResult(
        job_id=job.id, result_id=f"r-{job.id}", agent_id=job.agent_id,
        campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
        run_index=job.run_index, status=status, started_at=1.0, finished_at=2.0,
        outcome=out if status == "done" else None, **result, **seq()))


def run_campaign(store, mode: str = "smoke", runs: int = 2, agent: str = "edge-1",
                 benchmark: str = "resnet", power: bool = True, division: str | None = None,
                 images: dict | None = None) -> str:
    c = store.create_campaign([benchmark], mode, runs, [agent], "all", {},
                              division=division, images=images)
    while dispatches := store.claim_dispatches():
        for d in dispatches:
            t = T0 + 10_000 * d.job.run_index
            lines = reference_log(t, benchmark) + (power_log(t) if power else [])
            finish(store, d.job, lines, division=division or "open")
    return c.id


def read(path) -> list[str]:
    return path.read_text().splitlines()


def test_layout_splits_power_and_writes_v06_lines(store, tmp_path):
    device(store, "edge-1")
    cid = run_campaign(store, runs=2)
    done = export_mlcommons(store, tmp_path / "out", [cid])
    bench = tmp_path / "out/results/edge-1-smoke/resnet"
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*") if p.is_file()) == [
        "results/edge-1-smoke/resnet/power/result_0/node_0.txt",
        "results/edge-1-smoke/resnet/power/result_1/node_0.txt",
        "results/edge-1-smoke/resnet/result_0.txt",
        "results/edge-1-smoke/resnet/result_1.txt",
        "systems/edge-1-smoke.json"]
    assert done.files == 5 and done.systems == ["edge-1-smoke"]
    assert [(f.system, f.benchmark, len(f.runs), f.required, f.power)
            for f in done.folders] == [("edge-1-smoke", "resnet", 2, 5, True)]
    # run order: result_1 is run 2; its lines are the reference's, converted one for one
    t = T0 + 20_000
    expected = [json.loads(x[len(":::MLLOG "):]) for x in reference_log(t)]
    assert read(bench / "result_1.txt") == [
        v06_line(e["time_ms"], e["key"], e["value"], e["metadata"]).rstrip("\n")
        for e in expected]
    node = read(bench / "power/result_1/node_0.txt")
    assert [x.split()[2] for x in node] == ["power_measurement_start:", "power_reading:",
                                            "power_reading:", "power_measurement_stop:"]
    assert node[1].startswith(f":::MLL {(t + 210) / 1000:.3f} power_reading: ")


def test_v06_files_parse_and_the_summarizer_integrates_the_power(store, tmp_path):
    from mlperf_logging.compliance_checker.mlp_parser import parse_file
    from mlperf_logging.result_summarizer.result_summarizer import _compute_power_node

    device(store, "edge-1")
    export_mlcommons(store, tmp_path / "out", [run_campaign(store, runs=1)])
    bench = tmp_path / "out/results/edge-1-smoke/resnet"
    lines, errors = parse_file(str(bench / "result_0.txt"), ruleset="0.6.0")
    assert not errors and [x.key for x in lines][-2:] == ["run_start", "run_stop"]
    assert lines[-1].timestamp == (T0 + 10_000 + 400) / 1000      # seconds, whole ms kept
    power, errors = parse_file(str(bench / "power/result_0/node_0.txt"), ruleset="0.6.0")
    assert not errors
    # 10 W for 0.39 s = 3.9 J; v0.6 timestamps are seconds, so the summarizer's figure is kJ
    assert _compute_power_node(power, 0.39) == pytest.approx(3.9 / 1000)


def test_later_rulesets_get_the_lines_as_stored(store, tmp_path):
    from mlperf_logging.system_desc_checker.system_desc_checker import check_system_desc

    device(store, "edge-1")
    cid = run_campaign(store, runs=1)
    export_mlcommons(store, tmp_path / "out", [cid], ruleset="4.0.0")
    bench = tmp_path / "out/results/edge-1-smoke/resnet"
    t = T0 + 10_000
    assert read(bench / "result_0.txt") == reference_log(t)
    assert read(bench / "power/result_0/node_0.txt") == power_log(t)
    system = tmp_path / "out/systems/edge-1-smoke.json"
    assert json.loads(system.read_text())["status"] == "Research, Development, or Internal (RDI)"
    assert check_system_desc(str(system), "training", "4.0.0")[0]


def test_system_description_from_capabilities_and_runs(store, tmp_path):
    device(store, "edge-1", profile="x86-64-cpu-server")
    cid = run_campaign(store, runs=1, images={"edge-1": ("mlperf-edge/x", DIGEST)})
    export_mlcommons(store, tmp_path / "out", [cid])
    desc = json.loads((tmp_path / "out/systems/edge-1-smoke.json").read_text())
    assert {k: desc[k] for k in (
        "division", "status", "submitter", "system_name", "host_processor_model_name",
        "host_processor_core_count", "host_processors_per_node", "number_of_nodes",
        "accelerator_model_name", "accelerators_per_node", "framework")} == {
        "division": "open", "status": "research", "submitter": "mlperf-edge",
        "system_name": "edge-1-smoke", "host_processor_model_name": "Test CPU",
        "host_processor_core_count": "2", "host_processors_per_node": "1",
        "number_of_nodes": "1", "accelerator_model_name": "", "accelerators_per_node": "0",
        "framework": "PyTorch"}
    assert "profile x86-64-cpu-server" in desc["hw_notes"] and "x86_64" in desc["hw_notes"]
    assert "smoke runs" in desc["sw_notes"] and DIGEST in desc["sw_notes"]
    assert "source revision abc123" in desc["sw_notes"]
    assert desc["operating_system"] == "Linux" and "Python 3.11" in desc["other_software_stack"]


def test_modes_and_divisions_never_share_a_system(store, tmp_path):
    device(store, "edge-1")
    run_campaign(store, "full", runs=1, division="closed", power=False)
    run_campaign(store, "full", runs=1, division="open", power=False)
    run_campaign(store, "reduced", runs=1, power=False)
    run_campaign(store, "smoke", runs=1, power=False)
    done = export_mlcommons(store, tmp_path / "out")
    assert done.systems == ["edge-1", "edge-1-open", "edge-1-reduced", "edge-1-smoke"]
    descs = {s: json.loads((tmp_path / f"out/systems/{s}.json").read_text())
             for s in done.systems}
    assert {s: (d["division"], d["status"]) for s, d in descs.items()} == {
        "edge-1": ("closed", "onprem"), "edge-1-open": ("open", "research"),
        "edge-1-reduced": ("open", "research"), "edge-1-smoke": ("open", "research")}
    assert not any((tmp_path / "out/results").rglob("power"))     # none measured, none written


def test_retried_runs_are_left_out_and_runs_without_mllog_are_named(store, tmp_path):
    device(store, "edge-1")
    c = store.create_campaign(["resnet"], "smoke", 2, ["edge-1"], "all", {})
    first = store.claim_dispatches()[0].job
    finish(store, first, reference_log(T0)[:3], status="failed")   # no run_stop: it failed
    second = store.claim_dispatches()[0].job
    finish(store, second, [], status="failed")                     # nothing was logged
    retried = store.retry(first.id)[0]
    again = store.claim_dispatches()[0].job
    assert again.id == retried.id and again.run_index == 1
    finish(store, again, reference_log(T0 + 50_000))
    assert sorted((r.run_index, r.superseded) for r in load(store, [c.id])) == [
        (1, False), (1, True), (2, False)]
    done = export_mlcommons(store, tmp_path / "out", [c.id])
    bench = tmp_path / "out/results/edge-1-smoke/resnet"
    assert sorted(p.name for p in bench.iterdir()) == ["result_0.txt"]
    assert f"{(T0 + 50_010) / 1000:.3f} run_start" in (bench / "result_0.txt").read_text()
    assert [n for n in done.notes if second.id in n] == [
        f"skipped job {second.id} (edge-1 resnet smoke run 2): no MLLOG stored (failed)"]
    assert not any(first.id in n for n in done.notes)              # history, not a run


def test_power_goes_in_for_every_run_of_a_folder_or_none(store, tmp_path):
    device(store, "edge-1")
    c = store.create_campaign(["resnet"], "smoke", 2, ["edge-1"], "all", {})
    while dispatches := store.claim_dispatches():
        for d in dispatches:
            t = T0 + 10_000 * d.job.run_index
            finish(store, d.job, reference_log(t) + (power_log(t) if d.job.run_index == 1
                                                      else []))
    done = export_mlcommons(store, tmp_path / "out", [c.id])
    assert not (tmp_path / "out/results/edge-1-smoke/resnet/power").exists()
    assert "edge-1-smoke/resnet: power left out: 1 of 2 runs have measured power" in \
        done.notes[0]
    # the power lines still never end up in a result file
    assert "power_reading" not in (tmp_path / "out/results/edge-1-smoke/resnet/result_0.txt"
                                   ).read_text()


def test_benchmarks_the_ruleset_has_no_rules_for_are_skipped_by_name(store, tmp_path):
    device(store, "edge-1")
    run_campaign(store, runs=1)
    sentiment = run_campaign(store, runs=1, benchmark="sentiment", power=False)
    ncf = run_campaign(store, runs=1, benchmark="ncf", power=False)     # allowed, no rules
    done = export_mlcommons(store, tmp_path / "out")
    assert [f.benchmark for f in done.folders] == ["resnet"]
    for cid, name in ((sentiment, "sentiment"), (ncf, "ncf")):
        assert any(n.startswith(f"skipped job {cid}-0001") and
                   f"training 0.6.0 has no rules for '{name}'" in n for n in done.notes)


def test_an_emulated_run_is_never_exported(store, tmp_path):
    device(store, "edge-1")
    real = run_campaign(store, runs=1)
    c = store.create_campaign(["resnet"], "smoke", 1, ["edge-1"], "all", {})
    (d,) = store.claim_dispatches()
    finish(store, d.job, reference_log(T0 + 90_000), platform="linux/arm64", emulated=True)
    done = export_mlcommons(store, tmp_path / "out", [real, c.id])
    assert [len(f.runs) for f in done.folders] == [1]                  # the real run only
    assert any(n.startswith(f"skipped job {c.id}-0001") and "under qemu emulation" in n
               for n in done.notes)


def test_non_empty_folder_is_refused_unless_forced(store, tmp_path):
    device(store, "edge-1")
    cid = run_campaign(store, runs=1)
    out = tmp_path / "out"
    (out / "results/stale-system/resnet").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(ExportError, match="is not empty: .* or --force"):
        export_mlcommons(store, out, [cid])
    export_mlcommons(store, out, [cid], force=True)
    assert sorted(p.name for p in (out / "results").iterdir()) == ["edge-1-smoke"]
    assert (out / "notes.txt").read_text() == "mine\n"             # only results/, systems/
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is a file"):
        export_mlcommons(store, tmp_path / "file", [cid])


def test_unknown_ruleset_campaign_and_nothing_to_export(store, tmp_path):
    from controller.errors import StoreError

    with pytest.raises(ExportError, match="--ruleset 9.9.9: mlperf_logging has no such"):
        export_mlcommons(store, tmp_path / "out", ruleset="9.9.9")
    with pytest.raises(StoreError, match="no campaign 'nope'"):
        export_mlcommons(store, tmp_path / "out", ["nope"])
    with pytest.raises(ExportError, match="nothing to export"):
        export_mlcommons(store, tmp_path / "out")
    assert not (tmp_path / "out").exists()                         # nothing half-written


def test_split_and_sanitise():
    lines = reference_log(T0)[:2] + power_log(T0)[:1] + ["not mllog"]
    assert split_power(lines) == (reference_log(T0)[:2] + ["not mllog"], power_log(T0)[:1])
    assert sanitise("Pi 5 (lab/2)") == "Pi-5--lab-2" and sanitise("..") == "device"
    text, bad = render(["not mllog", reference_log(T0)[0]], "0.6.0")
    assert bad == 1 and text == v06_line(T0, "submission_benchmark", "resnet",
                                         {"file": "train.py", "lineno": 1})


# -- the command, as the operator runs it ------------------------------------------------------
@pytest.fixture
def lab_db(tmp_path):
    from controller.store import Store

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    s = Store(url)
    device(s, "edge-1")
    run_campaign(s, runs=2)
    s.close()
    return url


def test_command_prints_the_summary_and_the_next_commands(lab_db, tmp_path):
    out = tmp_path / "sub"
    proc = cli("mlperf-controller", "export", "--layout", "mlcommons", str(out), "--db", lab_db,
               check=True)
    text = proc.stdout
    assert "1 system(s) (edge-1-smoke), 1 benchmark(s) (resnet), 5 files" in text
    assert "edge-1-smoke/resnet: 2 run(s) written, MLCommons requires 5 (3 short" in text
    assert f"-m mlperf_logging.package_checker {out} training 0.6.0" in text
    assert f"-m mlperf_logging.result_summarizer {out} training 0.6.0" in text
    again = cli("mlperf-controller", "export", str(out), "--db", lab_db)
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert "is not empty: give a new or empty folder, or --force" in " ".join(
        again.stderr.split()) and "Traceback" not in again.stderr


def test_unknown_layout_is_one_line(lab_db, tmp_path):
    proc = cli("mlperf-controller", "export", "--layout", "csv", str(tmp_path / "x"),
               "--db", lab_db)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --layout csv: unknown layout (known: mlcommons)"
    assert not (tmp_path / "x").exists()
