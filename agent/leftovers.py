"""What an agent that died mid-job leaves behind, and clearing it before the next job: a
device runs one benchmark at a time even across a crash.

While a job runs, ``running.json`` in the work folder names it (the assignment itself), and the
reference's process group or container once it starts. Containers carry the agent's label. On
start, the agent stops and removes its labelled containers, ends the process group named in
``running.json`` if it is still a reference run, and reports that job failed (worth retrying)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from agent.envelope import decode, encode
from agent.errors import ProtocolError
from agent.protocol import JobAssignment

log = logging.getLogger("mlperf.agent")

#: The label every benchmark container of an agent carries (value: the agent id).
AGENT_LABEL = "io.mlperf-edge.agent"
MARKER = "running.json"


class RunningMarker:
    """``WORK_DIR/running.json``: the job this agent is running, and where it runs."""

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / MARKER

    def begin(self, job: JobAssignment) -> None:
        self._write({"job": encode(job).decode()})

    def started(self, **where) -> None:
        """The run began: ``pid`` (its process group) or ``container`` (its id)."""
        data = self.read_raw()
        data.update(where)
        self._write(data)

    def end(self) -> None:
        self.path.unlink(missing_ok=True)

    def read_raw(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


def reap(work_dir: Path, agent_id: str, engine: str | None) -> JobAssignment | None:
    """Stop and remove what an earlier run of this agent left running; returns the job it was
    running when it died (None when it stopped cleanly)."""
    marker = RunningMarker(work_dir)
    data = marker.read_raw()
    if engine is not None:
        _remove_containers(agent_id)
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 1 and _is_reference(pid):
        log.warning("stopping the reference run (process group %d) an earlier agent left "
                    "running", pid)
        _end_group(pid)
    job = None
    if isinstance(data.get("job"), str):
        try:
            job = decode(JobAssignment, data["job"].encode(), str(marker.path))
        except ProtocolError:
            log.warning("%s is damaged; ignoring it", marker.path)
    marker.end()
    return job


def _remove_containers(agent_id: str) -> None:
    from agent.container import KILL_GRACE_S, _client

    client = _client(quiet=True)
    if client is None:
        return
    for container in client.containers.list(all=True,
                                            filters={"label": f"{AGENT_LABEL}={agent_id}"}):
        log.warning("removing container %s an earlier run of this agent left (%s)",
                    container.short_id, container.status)
        try:
            if container.status == "running":
                container.stop(timeout=int(KILL_GRACE_S))
            container.remove(force=True)
        except Exception as exc:                           # gone meanwhile, or the engine
            log.warning("could not remove container %s: %s", container.short_id, exc)


def _is_reference(pid: int) -> bool:
    """True when ``pid`` runs ``python -m references run`` (not a recycled pid of another)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"references" in argv and b"run" in argv


def _end_group(pgid: int, grace_s: float = 10.0) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
