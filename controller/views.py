"""Tables and JSON for the controller's commands. Every figure carries its kind: the mode of
the run, measured vs projected, and whether the target was reached."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text

from agent.identity import fingerprint
from controller.models import (
    AgentRefusal,
    Campaign,
    Device,
    Enrolment,
    Rejection,
)


def _ago(t: float | None) -> str:
    if t is None:
        return "-"
    s = max(0.0, time.time() - t)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else \
        f"{s / 3600:.0f} h ago"


# -- devices ---------------------------------------------------------------------------------
def device_dict(d: Device) -> dict[str, Any]:
    return {"agent_id": d.agent_id, "name": d.name, "state": d.state, "tags": d.tags,
            "last_seen": d.last_seen, "reason": d.reason, "capabilities": d.capabilities,
            "load": d.load, "approved": bool(d.key),
            "fingerprint": fingerprint(d.key) if d.key else None,
            "approved_by": d.approved_by if d.key else None}


def arch_cell(caps: dict) -> str:
    """The host's architecture; an agent running another platform's containers under qemu
    says so (``aarch64, emulated on x86_64``): its times are never a board's."""
    arch = caps.get("arch") or "-"
    if caps.get("emulated") and caps.get("container_platform"):
        return f"{caps['container_platform'].split('/')[-1]}, emulated on {arch}"
    return arch


def devices_table(devices: list[Device]) -> Table:
    """Every cell is plain text: names, reasons and capabilities come from devices, and a
    name like ``[/x]`` must print as itself, never as markup."""
    table = Table(title="Devices")
    for col in ("device", "state", "last seen", "profile", "arch", "cpus", "memory",
                "accelerators", "benchmarks", "tags", "load", "key"):
        table.add_column(col)
    for d in devices:
        caps = d.capabilities or {}
        load = d.load or {}
        mem = caps.get("memory_total_bytes")
        state = Text(d.state, style="green" if d.state == "online" else "red")
        if d.state != "online" and d.reason:
            state.append(f" ({d.reason})")
        table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in (
            d.name if d.name == d.agent_id else f"{d.name} ({d.agent_id})", state,
            _ago(d.last_seen), caps.get("profile") or "-", arch_cell(caps),
            str(caps.get("cpu_count", "-")),
            f"{mem / 2**30:.1f} GiB" if mem else "-",
            ", ".join(caps.get("accelerators", [])) or "-",
            ", ".join(caps.get("benchmarks", [])) or "-", ", ".join(d.tags or []) or "-",
            (f"cpu {load['cpu_percent']:.0f}% mem {load['memory_percent']:.0f}%"
             + (f" {load['temperature_c']:.0f}°C" if load.get("temperature_c") is not None
                else "")) if load else "-",
            _key_cell(d))))
    return table


def devices_lines(devices: list[Device]) -> list[str]:
    """The devices table as plain fixed-width lines, for a fleet too large for a rich table
    (10,000 rows took 18 s to lay out): a count by state, then one line per device."""
    header = ("device", "state", "last seen", "profile", "arch", "cpus", "benchmarks", "tags",
              "load", "key")
    rows = []
    for d in devices:
        caps, load = d.capabilities or {}, d.load or {}
        rows.append(tuple(_plain(c) for c in (
            d.name if d.name == d.agent_id else f"{d.name} ({d.agent_id})",
            d.state + (f" ({d.reason})" if d.state != "online" and d.reason else ""),
            _ago(d.last_seen), caps.get("profile") or "-", arch_cell(caps),
            caps.get("cpu_count", "-"), ", ".join(caps.get("benchmarks", [])) or "-",
            ", ".join(d.tags or []) or "-",
            f"cpu {load['cpu_percent']:.0f}% mem {load['memory_percent']:.0f}%" if load
            else "-", _key_cell(d))))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    states: dict[str, int] = {}
    for d in devices:
        states[d.state] = states.get(d.state, 0) + 1
    lines = [f"{len(devices):,} devices: " + ", ".join(
        f"{n:,} {state}" for state, n in sorted(states.items()))]
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


def _plain(value) -> str:
    """A cell as printable text (names and reasons come from devices)."""
    text = str(value)[:200]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _key_cell(d: Device) -> str:
    if not d.key:
        return "not approved"
    return f"{fingerprint(d.key)[:19]}… ({d.approved_by or 'operator'})"


def pending_table(rows: list[Enrolment]) -> Table:
    table = Table(title="Waiting for approval (`mlperf-controller devices approve NAME`)")
    for col in ("device", "agent id", "key fingerprint", "first seen", "last seen",
                "messages", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(Text(str(c)) for c in (r.name, r.agent_id, r.fingerprint,
                                                _ago(r.first_seen), _ago(r.last_seen),
                                                r.messages, r.note or "-")))
    return table


def pending_dict(r: Enrolment) -> dict[str, Any]:
    return {"agent_id": r.agent_id, "name": r.name, "fingerprint": r.fingerprint,
            "first_seen": r.first_seen, "last_seen": r.last_seen, "messages": r.messages,
            "note": r.note}


def rejection_summary(rows: list[Rejection]) -> str | None:
    """'Refused 10,004 messages from 37 senders: signature 5,000, ...' or None."""
    if not rows:
        return None
    by_code: dict[str, int] = {}
    for r in rows:
        by_code[r.code] = by_code.get(r.code, 0) + r.count
    total, senders = sum(by_code.values()), len({r.source for r in rows})
    codes = ", ".join(f"{code} {n:,}" for code, n in sorted(by_code.items(),
                                                          key=lambda kv: -kv[1]))
    return (f"Refused {total:,} message(s) from {senders} claimed sender(s), last "
            f"{_ago(max(r.last_at for r in rows))}: {codes}. "
            "Details: `mlperf-controller devices refused`.")


def rejections_table(rows: list[Rejection], refusals: list[AgentRefusal]) -> list[Table]:
    heard = Table(title="Messages this controller refused (by claimed sender and reason)")
    for col, kw in (("claimed sender", {}), ("reason", {}), ("count", {"justify": "right"}),
                    ("first", {}), ("last", {}), ("example", {})):
        heard.add_column(col, **kw)
    for r in rows:
        heard.add_row(*(Text(str(c)) for c in (r.source, r.code, f"{r.count:,}",
                                                _ago(r.first_at), _ago(r.last_at),
                                                (r.example or "")[:120])))
    told = Table(title="Messages devices refused (what they answered)")
    for col in ("device", "when", "reason", "topic", "job", "detail"):
        told.add_column(col)
    for r in refusals:
        told.add_row(*(Text(str(c)) for c in (
            r.agent_id, _ago(r.at), r.code + (f" (+{r.suppressed})" if r.suppressed else ""),
            r.topic, (r.job_id or "-") + (" (signed)" if r.verified else ""), r.reason[:160])))
    return [heard, told]


def rejection_dict(r: Rejection) -> dict[str, Any]:
    return {"source": r.source, "code": r.code, "count": r.count, "first_at": r.first_at,
            "last_at": r.last_at, "example": r.example}


def refusal_dict(r: AgentRefusal) -> dict[str, Any]:
    return {"agent_id": r.agent_id, "at": r.at, "topic": r.topic, "code": r.code,
            "reason": r.reason, "job_id": r.job_id, "verified": r.verified,
            "suppressed": r.suppressed}


# -- campaigns -------------------------------------------------------------------------------
def campaign_dict(c: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {"campaign_id": c.id, "state": c.state, "created_at": c.created_at,
            "finished_at": c.finished_at, "benchmarks": c.benchmarks, "mode": c.mode,
            "runs": c.runs, "devices": c.devices, "params": c.params, "jobs": dict(counts)}


def campaigns_table(items: list[tuple[Campaign, dict[str, int]]]) -> Table:
    table = Table(title="Campaigns")
    for col in ("campaign", "state", "created", "benchmarks", "mode", "runs", "devices", "jobs"):
        table.add_column(col)
    for c, counts in items:
        table.add_row(c.id, c.state, _ago(c.created_at), ",".join(c.benchmarks), c.mode,
                      str(c.runs), Text(c.devices),
                      " ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return table
