"""Power through the controller: the store keeps the result's power report; the results table
and `results --json` show energy and average power, marked measured, estimated or none."""

from __future__ import annotations

from rich.console import Console

from agent.protocol import JobResult, PowerReport, ScopePower, Sequence
from controller import results_view, runs
from controller.store import Store
from tests.controller.test_store import online

seq = Sequence()


def power(method: str | None) -> PowerReport:
    if method is None:
        return PowerReport(status="none", reason="none measured: no power source found")
    total = ScopePower(scope="board", method=method, sources=["ina3221/VDD_IN"],
                       energy_j=1234.5, avg_power_w=6.25, peak_power_w=9.0, samples=1975,
                       rate_hz=10.0)
    return PowerReport(status=method, total=total, scopes=[total],
                       meets_mlperf_power_rules=method == "measured")


def test_energy_columns_and_json_fields(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        for agent in ("orin", "pi", "vm", "old"):
            online(store, agent)
        store.create_campaign(["ncf"], "smoke", 1, ["orin", "pi", "vm", "old"], "all", {})
        reports = {"orin": power("measured"), "pi": power("estimated"), "vm": power(None),
                   "old": None}
        for d in store.claim_dispatches():
            job = d.job
            store.store_result(JobResult(
                job_id=job.id, result_id=f"r-{job.id}", agent_id=job.agent_id,
                campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
                run_index=job.run_index, status="done", started_at=1.0, finished_at=2.0,
                power=reports[job.agent_id], **seq()))
        rows = runs.load(store)
        assert len(rows) == 4
        by_device = {r["device"]: r for r in (results_view.row_dict(row) for row in rows)}
        assert by_device["orin"]["energy_j"] == 1234.5
        assert by_device["orin"]["power_method"] == "measured"
        assert by_device["orin"]["meets_mlperf_power_rules"] is True
        assert by_device["pi"]["power_method"] == "estimated"
        assert by_device["vm"]["power_method"] == "none" and by_device["vm"]["energy_j"] is None
        assert by_device["old"]["power_method"] is None
        assert by_device["orin"]["result"]["power"]["total"]["scope"] == "board"

        console = Console(width=250, record=True)
        console.print(results_view.results_table(rows, "Results"))
        text = console.export_text()
        lines = {line.split("│")[3].strip(): line for line in text.splitlines()
                 if line.startswith("│") and line.split("│")[3].strip()}
        assert "1,234" in lines["orin"] and "6.25" in lines["orin"]
        assert "~1,234" in lines["pi"] and "~6.25" in lines["pi"]
        assert "none" in lines["vm"] and "1,234" not in lines["vm"]
        assert "energy J" in text and "avg W" in text
    finally:
        store.close()
