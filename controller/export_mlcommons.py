"""Stored runs in MLCommons' training results layout, which MLCommons' own tools read
(``mlperf_logging.package_checker`` and ``mlperf_logging.result_summarizer``)::

    DIR/systems/<system>.json                                  what the system is
    DIR/results/<system>/<benchmark>/result_N.txt              one run's MLLOG (N = 0, 1, ...)
    DIR/results/<system>/<benchmark>/power/result_N/node_0.txt its measured power events

One system per device, mode and division, so modes never share a benchmark folder. The
reference's lines and the agent's power lines arrive mixed in one stored log and are split
here. Ruleset 0.6.0 (the only one with ResNet rules a smoke run can pass) parses only the v0.6
line format, so both files are converted for it; later rulesets get ``:::MLLOG`` as stored."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import MlperfEdgeError, StoreError
from controller.runs import Run, load
from controller.scoring import required_runs

USAGE = "training"
DEFAULT_RULESET = V06_RULESET = "0.6.0"     # the v0.6 line format; later ones read :::MLLOG
SUBMITTER = "mlperf-edge"           # as the references log submission_org
MLLOG = ":::MLLOG"
#: The agent's events (agent/power/mllog_power.py); everything else is the reference's.
POWER_KEYS = frozenset({"power_measurement_start", "power_reading", "power_measurement_stop"})
#: Fields the system description checker requires that no agent reports (left empty).
NOT_REPORTED = (
    "host_processor_frequency", "host_processor_caches", "host_processor_interconnect",
    "host_memory_configuration", "host_storage_type", "host_storage_capacity",
    "host_networking", "host_networking_topology", "accelerator_host_interconnect",
    "accelerator_frequency", "accelerator_on-chip_memories",
    "accelerator_memory_configuration", "accelerator_memory_capacity",
    "accelerator_interconnect", "accelerator_interconnect_topology", "cooling")
MODE_NOTES = {
    "smoke": "smoke runs: synthetic data to a smoke target, never an MLPerf result",
    "reduced": "reduced runs: a bounded number of steps, never a time-to-train result"}


class ExportError(MlperfEdgeError):
    """The export cannot be written as asked (folder, layout, ruleset)."""


@dataclass
class Folder:
    """One results/<system>/<benchmark>/ folder: its runs in run order."""
    system: str
    benchmark: str
    runs: list[Run]
    required: int
    required_source: str
    power: bool = False


@dataclass
class Export:
    """What was written, for the summary the CLI prints."""
    root: Path
    ruleset: str
    systems: list[str] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    files: int = 0
    notes: list[str] = field(default_factory=list)    # runs skipped, power left out, ...


def sanitise(name: str) -> str:
    """A file-name-safe system name: [A-Za-z0-9._-] only."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name).strip(".-") or "device"


def division(run: Run) -> str:
    """closed only for a full-mode closed run; smoke and reduced runs are never closed."""
    return "closed" if run.mode == "full" and run.division == "closed" else "open"


def system_name(run: Run) -> str:
    base = sanitise(run.device)
    if run.mode == "full":
        return base if division(run) == "closed" else f"{base}-open"
    return f"{base}-{sanitise(run.mode)}"


def availability(run: Run, ruleset: str) -> str:
    """``status``: on-premises for a full closed run, research otherwise (as the references
    log it), spelled as the ruleset wants (4.0.0 on: only the long names pass its checker)."""
    onprem = run.mode == "full" and division(run) == "closed"
    if int(ruleset.split(".")[0]) >= 4:
        return "Available on-premise" if onprem else "Research, Development, or Internal (RDI)"
    return "onprem" if onprem else "research"


def parse(line: str) -> dict[str, Any] | None:
    """A stored ``:::MLLOG {json}`` line as its event, or None if it is not one."""
    try:
        event = json.loads(line[len(MLLOG):]) if line.startswith(MLLOG) else None
    except ValueError:
        return None
    return event if isinstance(event, dict) and "key" in event else None


def split_power(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the reference's lines, the agent's power lines), each in stored order."""
    reference, power = [], []
    for line in lines:
        event = parse(line)
        (power if event and event["key"] in POWER_KEYS else reference).append(line)
    return reference, power


def render(lines: list[str], ruleset: str) -> tuple[str, int]:
    """(file text in the format the ruleset's parser reads, lines that could not be
    converted). v0.6: ``:::MLL <s.ms> key: {"value":..., "metadata":{...}}``."""
    if ruleset != V06_RULESET:
        return "".join(f"{line}\n" for line in lines), 0
    from references.common.mllogging import v06_line

    events = [e for e in map(parse, lines) if e and isinstance(e.get("time_ms"), int)]
    return "".join(v06_line(e["time_ms"], e["key"], e.get("value"), e.get("metadata"))
                   for e in events), len(lines) - len(events)


def system_desc(name: str, runs: list[Run], caps: dict[str, Any], ruleset: str) -> dict:
    """systems/<name>.json: every field the summarizer reads and the system description
    checker (rulesets 1.0.0 on) requires, from the device's capabilities (else what its runs
    recorded of it) and from its runs (image digests, source revisions)."""
    first = runs[0]
    c = {"cpu_model": first.cpu_model, "arch": first.arch, "hostname": first.hostname,
         "profile": first.profile, "accelerators": list(first.accelerators),
         **{k: v for k, v in caps.items() if v}}
    accelerators, cores, memory = c["accelerators"], c.get("cpu_count", 0), c.get(
        "memory_total_bytes")
    engine = c.get("container_engine")
    memory_s = f"{memory / 2 ** 30:.1f} GB" if memory else ""
    digests = sorted({r.image_digest for r in runs if r.image_digest})
    revisions = sorted({r.source_revision for r in runs if r.source_revision})
    sw = [MODE_NOTES.get(first.mode, f"{first.mode} runs"),
          f"images {', '.join(digests)}" + (f" ({engine})" if engine else "") if digests
          else "run natively (no container image)",
          f"source revision {', '.join(revisions)}" if revisions else "",
          f"mlperf-edge agent {c['agent_version']}" if c.get("agent_version") else ""]
    hw = [f"mlperf-edge device {first.device} (agent {first.agent_id})" if first.nodes <= 1
          else f"mlperf-edge group of {first.nodes} nodes of one profile, torch.distributed; "
               f"rank 0: agent {first.agent_id}",
          f"profile {c['profile']}" if c.get("profile") else "",
          f"host {c['hostname']}" if c.get("hostname") else "", c.get("arch") or "",
          f"{memory_s} memory" if memory_s else ""]
    cpu, torch = c.get("cpu_model") or c.get("arch") or "unknown", c.get("torch")
    return {
        "submitter": SUBMITTER, "division": division(first),
        "status": availability(first, ruleset), "system_name": name,
        # counts as strings, as MLCommons' own system files write them (its description
        # checker joins them as text; the summarizer int()s them)
        "number_of_nodes": str(max(r.nodes for r in runs)), "host_processors_per_node": "1",
        "host_processor_model_name": cpu, "host_processor_core_count": str(cores),
        "host_processor_vcpu_count": str(cores), "host_memory_capacity": memory_s,
        "accelerators_per_node": str(len(accelerators)),
        "accelerator_model_name": ", ".join(accelerators),
        "framework": f"PyTorch {torch}" if torch else "PyTorch",
        "other_software_stack": "; ".join(x for x in (
            f"Python {caps['python']}" if caps.get("python") else "", engine or "") if x),
        "operating_system": caps.get("os", ""),
        "hw_notes": "; ".join(x for x in hw if x), "sw_notes": "; ".join(x for x in sw if x),
        **dict.fromkeys(NOT_REPORTED, ""),
    }


def check_ruleset(ruleset: str) -> list[str]:
    """The benchmarks MLCommons' training ruleset has compliance rules for (an allowed one
    without rules, e.g. ncf in 0.6.0, fails its checker); ExportError for no such ruleset."""
    from mlperf_logging.benchmark_meta import get_allowed_benchmarks
    from mlperf_logging.compliance_checker import mlp_compliance

    if ruleset not in mlp_compliance.rule_choices():
        raise ExportError(f"--ruleset {ruleset}: mlperf_logging has no such training ruleset "
                          f"(choose from {', '.join(sorted(mlp_compliance.rule_choices()))})")
    rules = Path(mlp_compliance.__file__).parent / f"{USAGE}_{ruleset}"
    return [b for b in get_allowed_benchmarks(USAGE, ruleset)
            if any((rules / f"{kind}{b}.yaml").exists() for kind in ("", "open_", "closed_"))]


def prepare_dir(root: Path, force: bool) -> None:
    """An empty (or new) folder, or with --force one whose results/ and systems/ are gone."""
    if root.exists() and not root.is_dir():
        raise ExportError(f"{root} is a file, not a folder: give a new or empty folder")
    try:
        if root.is_dir() and any(root.iterdir()):
            if not force:
                raise ExportError(f"{root} is not empty: give a new or empty folder, or "
                                  "--force to replace its results/ and systems/")
            for sub in ("results", "systems"):
                if (root / sub).exists():
                    shutil.rmtree(root / sub)
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{root}: {exc.strerror or exc}") from None


def choose(runs: list[Run], known: list[str], ruleset: str,
           notes: list[str]) -> dict[tuple[str, str], list[Run]]:
    """The runs to write, by (system, benchmark), in run order; why others are left out."""
    groups: dict[tuple[str, str], list[Run]] = {}
    owners: dict[str, str] = {}
    for r in runs:
        what = f"job {r.job_id} ({r.device} {r.benchmark} {r.mode} run {r.run_index})"
        if not r.final or r.state == "cancelled":
            if not r.superseded:
                notes.append(f"skipped {what}: {r.state}, not a finished run")
            continue
        if r.log_missing:
            notes.append(f"skipped {what}: {r.log_missing} of the MLLOG lines its agent sent "
                         "never reached the store (job events lost on the way, e.g. a worker "
                         "killed while holding them): its log is not the run's; run it again")
            continue
        if r.emulated:
            notes.append(f"skipped {what}: it ran as {r.ran_as or 'another platform'} under "
                         "qemu emulation; an emulator's log is never a system's result")
            continue
        if r.benchmark not in known:
            notes.append(f"skipped {what}: MLCommons training {ruleset} has no rules for "
                         f"{r.benchmark!r} (its tools would reject the folder)")
            continue
        name = system_name(r)
        if owners.setdefault(name, r.system) != r.system:     # two systems, one name
            name = f"{name}-{sanitise(r.agent_id)}"
        groups.setdefault((name, r.benchmark), []).append(r)
    order = {c: i for i, c in enumerate(dict.fromkeys(r.campaign_id for r in runs))}
    for group in groups.values():
        group.sort(key=lambda r: (order[r.campaign_id], r.run_index))
    return groups


def export_mlcommons(store, root: Path, campaign_ids: list[str] | None = None,
                     ruleset: str = DEFAULT_RULESET, force: bool = False) -> Export:
    """Write the layout for these campaigns (all: None) into ``root``."""
    known = check_ruleset(ruleset)
    for cid in campaign_ids or []:
        if store.campaign(cid) is None:
            raise StoreError(f"no campaign {cid!r} (see `mlperf-controller campaigns`)")
    root = Path(root).expanduser()
    done = Export(root=root, ruleset=ruleset)
    groups = choose(load(store, campaign_ids), known, ruleset, done.notes)
    logs: dict[tuple[str, str], list[tuple[Run, list[str], list[list[str]]]]] = {}
    for key, group in groups.items():
        for r in group:
            reference, power = split_power(store.log_lines(r.job_id))
            # A group's power: each node's own readings, node by node (its rank 0's first).
            nodes = [power] + [split_power(store.log_lines(d["job_id"]))[1]
                               for d in r.node_detail if d["rank"] > 0]
            if not any(parse(x) for x in reference):
                done.notes.append(f"skipped job {r.job_id} ({r.device} {r.benchmark} "
                                  f"{r.mode} run {r.run_index}): no MLLOG stored "
                                  f"({r.state}{': ' + r.error.splitlines()[0][:200] if r.error else ''})")
                continue
            logs.setdefault(key, []).append((r, reference, nodes))
    if not logs:
        raise ExportError("nothing to export: no finished run with a stored MLLOG" + (
            f" in campaign(s) {', '.join(campaign_ids)}" if campaign_ids else ""))
    prepare_dir(root, force)
    try:
        for (system, benchmark), entries in sorted(logs.items()):
            done.folders.append(_write_folder(root, system, benchmark, entries, ruleset,
                                              done))
        for system in sorted({f.system for f in done.folders}):
            runs = [r for f in done.folders if f.system == system for r in f.runs]
            device = store.device(runs[0].agent_id)
            caps = (device.capabilities or {}) if device is not None else {}
            path = root / "systems" / f"{system}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(system_desc(system, runs, caps, ruleset), indent=2)
                            + "\n")
            done.systems.append(system)
            done.files += 1
    except OSError as exc:
        raise ExportError(f"writing {root}: {exc.strerror or exc}") from None
    return done


def _write_folder(root: Path, system: str, benchmark: str,
                  entries: list[tuple[Run, list[str], list[list[str]]]], ruleset: str,
                  done: Export) -> Folder:
    required, source = required_runs(benchmark)
    folder = Folder(system, benchmark, [r for r, _, _ in entries], required, source)
    where = root / "results" / system / benchmark
    where.mkdir(parents=True, exist_ok=True)
    # The summarizer sums the power of every result once a power/ folder exists (and fails
    # on a result without one): power goes in for all runs of a folder or for none.
    with_power = [e for e in entries if all(any(parse(x) for x in node) for node in e[2])]
    folder.power = len(with_power) == len(entries)
    if with_power and not folder.power:
        done.notes.append(f"{system}/{benchmark}: power left out: {len(with_power)} of "
                          f"{len(entries)} runs have measured power (MLCommons' tools need "
                          "it for every run or none)")
    for n, (r, reference, power) in enumerate(entries):
        text, bad = render(reference, ruleset)
        (where / f"result_{n}.txt").write_text(text, encoding="utf-8")
        done.files += 1
        if bad:
            done.notes.append(f"{system}/{benchmark}/result_{n}.txt (job {r.job_id}): "
                              f"{bad} stored line(s) are not MLLOG events, left out")
        if folder.power:
            for i, lines in enumerate(power):          # one file per node, as MLCommons'
                node = where / "power" / f"result_{n}" / f"node_{i}.txt"
                node.parent.mkdir(parents=True, exist_ok=True)
                node.write_text(render(lines, ruleset)[0], encoding="utf-8")
                done.files += 1
    return folder
