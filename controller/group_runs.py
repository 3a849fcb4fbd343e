"""One row for a run several devices trained together: its members folded into rank 0's.

- **time**: rank 0's, from its own run_start/run_stop (the other ranks log no MLPerf window);
- **energy**: the sum over the nodes, each measured by its own agent on its own clock over its
  own node window (which opens at the same barrier as rank 0's); a node with no figure leaves
  the group with none, never a partial sum shown as the whole. Several nodes on one host read
  the same package: the sum then counts that host more than once, and says so;
- **scaling efficiency**: the group's throughput / (N x one node's), one node's being the mean
  of the single-node runs of the same benchmark, mode and profile in the store -- none, none.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.runs import Run


def fold(runs: list[Run]) -> list[Run]:
    """``runs`` with every group's rank > 0 removed and its rank 0 carrying the group."""
    members: dict[str, list[Run]] = {}
    for r in runs:
        if r.group_id:
            members.setdefault(r.group_id, []).append(r)
    if not members:
        return runs
    single = _single_node_throughput(runs)
    out = []
    for r in runs:
        if not r.group_id:
            out.append(r)
        elif r.rank == 0:
            out.append(_group_row(r, sorted(members[r.group_id], key=lambda m: m.rank), single))
    return out


def _group_row(lead: Run, members: list[Run], single: dict[tuple, list[float]]) -> Run:
    detail = tuple(_node(m) for m in members)
    names = [m.device for m in members]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    fields: dict[str, Any] = {"device": f"{lead.nodes} nodes: {shown}", "node_detail": detail}
    missing = [m for m in members if m.energy_j is None]
    if len(members) < lead.nodes:
        missing_note = f"{lead.nodes - len(members)} node(s) unknown to the store"
    elif missing:
        missing_note = "no energy figure from " + ", ".join(
            f"rank {m.rank} ({m.device}: {m.power_note or m.state})" for m in missing)
    else:
        missing_note = None
    if missing_note is not None:
        fields.update(energy_j=None, avg_power_w=None, peak_power_w=None,
                      power_method="none" if lead.power_method else None,
                      power_note=f"group energy: {missing_note}")
    else:
        energy = sum(m.energy_j for m in members)
        methods = {m.power_method for m in members}
        window = lead.timed_window_s or 0.0
        hosts = [m.host_id for m in members if m.host_id]
        doubts = tuple(dict.fromkeys(d for m in members for d in m.doubts))
        if len(set(hosts)) < len(hosts):   # as controller.runs.shared_host_doubts, per node
            doubts += (f"{len(hosts) - len(set(hosts)) + 1} nodes of this group share a host: "
                       "each measured the same host's power, so the sum counts it more than "
                       "once",)
        fields.update(
            energy_j=energy, avg_power_w=energy / window if window > 0 else None,
            peak_power_w=None, power_method="measured" if methods == {"measured"}
            else "estimated" if "estimated" in methods else lead.power_method,
            meets_power_rules=all(m.meets_power_rules for m in members),
            sensors=tuple(sorted({s for m in members for s in m.sensors})),
            doubts=doubts, notes=tuple(dict.fromkeys(n for m in members for n in m.notes)))
    broken = [m for m in members if m.state in ("failed", "lost", "cancelled") and m.rank]
    if lead.state == "done" and broken:
        fields["notes"] = fields.get("notes", lead.notes) + tuple(
            f"rank {m.rank} ({m.device}) {m.state}: {m.error or m.detail or ''}"[:300]
            for m in broken)
    basis = single.get((lead.benchmark, lead.mode, lead.profile))
    if lead.throughput_sps and basis:
        one = sum(basis) / len(basis)
        fields.update(
            scaling_efficiency=lead.throughput_sps / (lead.nodes * one),
            scaling_basis=f"{lead.throughput_sps:,.4g} samples/s on {lead.nodes} nodes / "
                          f"({lead.nodes} x {one:,.4g}, the mean of {len(basis)} single-node "
                          f"run(s) of {lead.benchmark} {lead.mode} on {lead.profile})")
    return replace(lead, **fields)


def _node(m: Run) -> dict[str, Any]:
    return {"rank": m.rank, "device": m.device, "agent_id": m.agent_id, "job_id": m.job_id,
            "state": m.state, "energy_j": m.energy_j, "avg_power_w": m.avg_power_w,
            "power_method": m.power_method, "window_ms": list(m.window_ms) if m.window_ms
            else None, "host_id": m.host_id, "error": m.error}


def _single_node_throughput(runs: list[Run]) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for r in runs:
        if (r.nodes == 1 and not r.group_id and r.final and r.state == "done"
                and r.throughput_sps and not r.emulated):
            out.setdefault((r.benchmark, r.mode, r.profile), []).append(r.throughput_sps)
    return out
