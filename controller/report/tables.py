"""HTML of the report's tables: devices side by side, the doubts and notes under them, and
the runs that have no figure. Every string from the store goes through ``e`` (escaped)."""

from __future__ import annotations

from html import escape as e

from agent.display import parts_text
from controller.report.sections import Group, Row
from controller.report.winners import Callout
from controller.runs import Run, significant

HEAD = ("device and status", "{time}", "energy", "avg power", "peak power", "throughput",
        "samples/J", "quality reached", "runs counted")


def chip(text: str, kind: str = "") -> str:
    """A small label (its class picks the colour: smoke, estimated, doubted, ...)."""
    return f'<span class="chip {e(kind or text)}">{e(text)}</span>'


def short_digest(digest: str) -> str:
    """sha256:0123456789ab (12 hex digits, as Docker shows image ids)."""
    algo, _, hexa = digest.partition(":")
    return f"{algo}:{hexa[:12]}" if hexa else digest[:19]


def short_revision(rev: str) -> str:
    """A git revision to 10 hex digits, keeping its -dirty mark."""
    head, dirty = (rev[:-6], "-dirty") if rev.endswith("-dirty") else (rev, "")
    return (head[:10] if len(head) == 40 else head) + dirty


def provenance(row: Row) -> str:
    """Where a row's figures come from: profile, image, source revision, sensors, CPU."""
    digests = [short_digest(d) for d in row.values("image_digest")] or ["native (no image)"]
    parts = [f"profile {', '.join(row.values('profile')) or 'unknown'}",
             f"image {', '.join(digests)}",
             f"rev {', '.join(short_revision(r) for r in row.values('source_revision')) or '-'}",
             f"sensors {', '.join(row.values('sensors')) or 'none'}"]
    cpu = row.values("cpu_model")
    if cpu:
        parts.append(f"cpu {', '.join(cpu)}")
    nodes = _node_energy(row)
    if nodes:
        parts.append(nodes)
    return f'<span class="prov">{e(" · ".join(parts))}</span>'


def _node_energy(row: Row) -> str:
    """A group's energy node by node, the mean per run over the runs where the node has a
    figure: what the group's sum is made of."""
    by_rank: dict[int, tuple[str, list[float]]] = {}
    for r in row.runs:
        if r.superseded:
            continue
        for d in r.node_detail:
            device, values = by_rank.setdefault(d["rank"], (d["device"], []))
            if d.get("energy_j") is not None:
                values.append(d["energy_j"])
    if not by_rank:
        return ""
    return "energy by node, mean per run: " + ", ".join(
        f"rank {rank} {device} {significant(sum(v) / len(v)) + ' J' if v else '-'}"
        for rank, (device, v) in sorted(by_rank.items()))


def _num(value: float | None, unit: str, sub: str = "", win: str = "",
         chips: str = "") -> str:
    """A figure cell: the value and unit, chips (already HTML), the label under it."""
    if value is None:
        return f'<td class="num">-{chips}{_sub(sub)}</td>'
    return (f'<td class="num"><span class="v"><b>{e(significant(value))}</b> {e(unit)}</span>'
            f'{chips}'
            f'{" " + chip(win, "win") if win else ""}{_sub(sub)}</td>')


def _sub(text: str) -> str:
    return f'<span class="sub">{e(text)}</span>' if text else ""


def _method(row: Row) -> str:
    if row.energy_method is None:
        return ""
    return row.energy_method + (", doubted" if row.energy_doubted else "")


def _scaling(row: Row) -> str:
    """A group's node count and scaling efficiency (its throughput / N x one node's)."""
    if row.nodes <= 1:
        return ""
    if row.scaling_efficiency is None:
        return f"{row.nodes} nodes · no single-node run to compare"
    return f"{row.nodes} nodes · {row.scaling_efficiency:.0%} scaling efficiency"


def device_table(group: Group, verdicts: list[Callout]) -> str:
    """The devices of one benchmark and mode side by side, winners marked."""
    fastest = verdicts[0].agent_id if verdicts else None
    thrifty = {c.agent_id for c in verdicts[1:] if c.agent_id}
    energy_word = "most samples/J" if group.mode == "reduced" else "least energy"
    body = []
    for row in group.rows:
        sc = row.score
        name = f'<span class="device">{e(row.device)}</span>'
        if sc.agent_id != row.device:
            name += f'<span class="sub">agent {e(sc.agent_id)}</span>'
        spread = (f"spread {significant(row.spread_s[0])}–{significant(row.spread_s[1])} s"
                  if row.spread_s and row.spread_s[0] != row.spread_s[1] else "")
        energy_chip = (" " + chip(row.energy_method) if row.energy_method else "") + \
            (" " + chip("doubted") if row.energy_doubted else "")
        energy = _num(row.energy_j, "J", row.energy_label,
                      "least energy" if sc.agent_id in thrifty and group.mode != "reduced"
                      else "", energy_chip)
        body.append(
            f'<tr class="main"><td>{name}<div class="status">{chip(sc.label, sc.status)}</div>'
            "</td>"
            + _num(row.time_s, "s", " · ".join(x for x in (row.time_label, spread) if x),
                   "fastest" if fastest and sc.agent_id == fastest else "")
            + energy
            + _num(row.avg_power_w, "W", _method(row))
            + _num(row.peak_power_w, "W", _method(row))
            + _num(row.throughput_sps, "samples/s", _scaling(row))
            + _num(row.samples_per_j, "samples/J", _method(row),
                   energy_word if group.mode == "reduced" and sc.agent_id in thrifty else "")
            + f"<td>{e(row.target or '-')}</td>"
            + f"<td>{e(row.runs_text)}</td></tr>"
            + f'<tr class="prov-row"><td colspan="{len(HEAD)}">{provenance(row)}</td></tr>')
    head = "".join(f"<th>{e(h.format(time=group.time_name))}</th>" for h in HEAD)
    return (f'<div class="tablewrap"><table class="devices"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def notes(group: Group) -> str:
    """Doubts (the energy is not to be trusted) and notes (worth knowing), spelled out, with
    the runs each applies to."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for r in group.runs:
        if r.superseded:
            continue
        for kind, texts in (("doubt", r.doubts), ("note", r.notes)):
            for text in texts:
                found.setdefault((kind, r.device, text), []).append(str(r.run_index))
        if r.power_method == "none" and r.power_note:
            found.setdefault(("note", r.device, f"no power figure: {r.power_note}"),
                             []).append(str(r.run_index))
        if r.power_method == "estimated" and not r.doubts:
            estimate = ("energy ESTIMATED from the power model of the device profile, not "
                        "measured")
            found.setdefault(("note", r.device, estimate), []).append(str(r.run_index))
    if not found:
        return ""
    items = []
    for (kind, device, text), runs in sorted(found.items(), key=lambda i: i[0][0]):
        label = "doubted" if kind == "doubt" else "note"
        items.append(f'<li class="{kind}">{chip(label, "doubted" if kind == "doubt" else "none")}'
                     f' <b>{e(device)}</b> (run{"s" if len(runs) > 1 else ""} '
                     f'{e(", ".join(runs))}): {e(text)}</li>')
    return f'<div class="notes"><h4>Doubts and notes</h4><ul>{"".join(items)}</ul></div>'


def _what_happened(r: Run) -> str:
    if r.state == "done" and not r.converged:
        if r.quality is not None and r.target is not None:
            parts = f"; {parts_text(r.quality_parts)}" if r.quality_parts else ""
            return (f"did not reach the target: {r.metric} {r.quality:.4g} "
                    f"(target {r.target:g}{parts})")
        return "finished without reaching the target"
    if not r.final and not r.superseded:
        return f"not finished yet ({r.state})"
    text = r.error or r.detail or "no reason recorded"
    return text + (" — retried as a new attempt" if r.superseded else "")


def failed_runs(runs: list[Run]) -> str:
    """The runs without a figure, each with what happened (its error, never dropped)."""
    if not runs:
        return ""
    rows = "".join(
        f"<tr><td><b>{e(r.device)}</b></td><td>{e(r.benchmark)}</td><td>{e(r.mode)}</td>"
        f"<td>{r.run_index}</td><td>{r.attempt}</td>"
        f"<td>{chip(r.state if r.state != 'done' else 'not converged', r.state)}</td>"
        f"<td>{e(_what_happened(r))}<span class=\"sub\">job {e(r.job_id)}</span></td></tr>"
        for r in runs)
    head = "".join(f"<th>{h}</th>" for h in ("device", "benchmark", "mode", "run", "attempt",
                                             "state", "what happened"))
    return (f'<h3>Runs without a figure ({len(runs)})</h3><div class="tablewrap">'
            f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            f"</table></div>")
