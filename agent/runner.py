"""Runs one reference as a subprocess (``python -m references run ...``), as natively as the
device allows: forwards its MLLOG lines live, keeps its stderr, cancels it cleanly, and reads
the ``result.json`` it leaves behind. The command line is built here from validated fields;
nothing that arrived over the wire is ever executed as a string."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.envelope import decode
from agent.errors import JobError, ProtocolError
from agent.mllog import PREFIX, WindowTracker
from agent.protocol import MAX_MLLOG_LINE_CHARS, GroupSpec, ParamValue, ReferenceOutcome
from agent.untrusted import read_bounded

#: How long MLLOG lines may wait before they are forwarded as one event, s.
FLUSH_INTERVAL_S = 0.25
#: Most lines in one forwarded batch.
FLUSH_LINES = 200
#: Grace between SIGTERM and SIGKILL when cancelling, s.
KILL_GRACE_S = 10.0
#: Most MLLOG lines forwarded from one run; beyond, lines are counted, not sent.
MAX_MLLOG_LINES = 100_000
#: Most bytes of a run's stdout/stderr kept in the job folder.
MAX_LOG_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start one reference run."""

    benchmark: str
    mode: str
    seed: int
    out_dir: Path
    platform: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    data_dir: Path | None = None
    max_steps: int | None = None
    max_seconds: float | None = None
    division: str | None = None          # None: the reference's default for the mode
    # litert: the interpreter runs model_sha256 from models_dir (the reference checks the hash)
    runtime: str = "torch"
    models_dir: Path | None = None
    model_sha256: str | None = None
    # One node of a run several agents train together (agent.protocol.GroupSpec); None: alone.
    group: GroupSpec | None = None

    def argv(self) -> list[str]:
        """The reference command line (a list: no shell, no string from the wire)."""
        cmd = [sys.executable, "-m", "references", "run", self.benchmark, "--mode", self.mode,
               "--seed", str(self.seed), "--out", str(self.out_dir),
               "--platform", self.platform]
        if self.data_dir is not None:
            cmd += ["--data", str(self.data_dir)]
        for key, value in sorted(self.params.items()):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cmd += ["--set", f"{key}={text}"]
        if self.max_steps is not None:
            cmd += ["--max-steps", str(self.max_steps)]
        if self.max_seconds is not None:
            cmd += ["--max-seconds", f"{self.max_seconds:g}"]
        if self.division is not None:
            cmd += ["--division", self.division]
        if self.runtime == "litert":
            cmd += ["--runtime", "litert", "--model", str(self.models_dir),
                    "--model-sha256", str(self.model_sha256)]
        if self.group is not None:
            cmd += ["--rank", str(self.group.rank), "--world-size", str(self.group.world_size),
                    "--rendezvous", self.group.rendezvous,
                    "--group-timeout", f"{self.group.timeout_s:g}"]
        return cmd


@dataclass
class RunOutcome:
    """How a reference process ended, and what it left."""

    exit_code: int
    cancelled: bool
    duration_s: float
    mllog_lines: int
    tracker: WindowTracker
    outcome: ReferenceOutcome | None
    error: str | None
    stderr_tail: list[str]


class ReferenceProcess:
    """One reference subprocess in its own process group (so cancelling kills all of it)."""

    def __init__(self, request: RunRequest,
                 on_mllog: Callable[[list[str]], None] = lambda lines: None,
                 on_progress: Callable[[str], None] = lambda line: None) -> None:
        self.request = request
        self.on_mllog = on_mllog
        self.on_progress = on_progress
        # Rank > 0 of a group logs its node's window under its own keys (rank 0 logs the run's).
        self.tracker = WindowTracker(node=request.group is not None and request.group.rank > 0)
        #: Called once the run exists: ``pid=`` (its process group) or ``container=``.
        self.on_started: Callable[..., None] = lambda **where: None

    def run(self, cancel: threading.Event) -> RunOutcome:
        """Run to the end (or until ``cancel`` is set) and return what happened."""
        req = self.request
        req.out_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        started = time.monotonic()
        with open(req.out_dir / "stdout.log", "w") as stdout_log, \
                open(req.out_dir / "stderr.log", "w") as stderr_log:
            proc = subprocess.Popen(req.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                                    start_new_session=True)
            self.on_started(pid=proc.pid)
            lines: queue.Queue[str | None] = queue.Queue()
            tail: deque[str] = deque(maxlen=30)
            readers = [
                threading.Thread(target=_pump, args=(proc.stdout, lines, stdout_log), daemon=True),
                threading.Thread(target=self._stderr, args=(proc.stderr, tail, stderr_log),
                                 daemon=True),
            ]
            for t in readers:
                t.start()
            killer = threading.Thread(target=self._cancel_when, args=(cancel, proc), daemon=True)
            killer.start()
            count = self._forward(lines)
            proc.wait()
            for t in readers:
                t.join(timeout=5)
        cancelled = cancel.is_set()
        cancel.set()                               # releases the killer thread
        outcome, error = None, None
        if proc.returncode == 0 and not cancelled:
            outcome, error = _read_result(req.out_dir / "result.json")
        elif not cancelled:
            error = _error_line(list(tail), proc.returncode)
        return RunOutcome(proc.returncode, cancelled, time.monotonic() - started, count,
                          self.tracker, outcome, error, list(tail))

    def _forward(self, lines: queue.Queue[str | None]) -> int:
        """Batch MLLOG lines to ``on_mllog`` every FLUSH_INTERVAL_S or FLUSH_LINES lines."""
        batch: list[str] = []
        count = 0
        deadline = time.monotonic() + FLUSH_INTERVAL_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line and self.tracker.feed(line) is not None:
                batch.append(line)
                count += 1
            if batch and (len(batch) >= FLUSH_LINES or time.monotonic() >= deadline):
                self.on_mllog(batch)
                batch = []
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + FLUSH_INTERVAL_S
        if batch:
            self.on_mllog(batch)
        return count

    def _stderr(self, stream, tail: deque[str], sink) -> None:
        kept = 0
        for raw in stream:
            line = raw.rstrip("\n")[:2000]
            if kept < MAX_LOG_BYTES:
                sink.write(raw[:MAX_LOG_BYTES - kept])
                sink.flush()
                kept += len(raw)
            tail.append(line)
            self.on_progress(line)

    @staticmethod
    def _cancel_when(cancel: threading.Event, proc: subprocess.Popen) -> None:
        cancel.wait()
        if proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)


def _pump(stream, lines: queue.Queue[str | None], sink) -> None:
    """Move stdout lines to the queue (MLLOG) and everything to stdout.log, within bounds:
    what a run prints is untrusted (an over-long line, a flood of lines, a full disk)."""
    kept = forwarded = dropped = 0
    for raw in stream:
        if kept < MAX_LOG_BYTES:
            sink.write(raw[:MAX_LOG_BYTES - kept])
            kept += len(raw)
        line = raw.rstrip("\n")
        if line.startswith(PREFIX):
            if len(line) > MAX_MLLOG_LINE_CHARS or forwarded >= MAX_MLLOG_LINES:
                dropped += 1
            else:
                forwarded += 1
                lines.put(line)
    if dropped:
        sink.write(f"[mlperf-agent: {dropped} MLLOG line(s) not forwarded: longer than "
                   f"{MAX_MLLOG_LINE_CHARS} characters or past {MAX_MLLOG_LINES} lines]\n")
    sink.flush()
    lines.put(None)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _read_result(path: Path) -> tuple[ReferenceOutcome | None, str | None]:
    """The run's result.json: untrusted (a container wrote it), so read without following
    links, size-bounded, and strictly validated."""
    try:
        return decode(ReferenceOutcome, read_bounded(path), path.name), None
    except FileNotFoundError:
        return None, f"the reference exited 0 but wrote no {path.name}"
    except (ProtocolError, JobError) as exc:
        return None, f"the reference wrote an unusable {path.name}: {exc}"


#: The reference's exit code when its group of nodes broke or never met (a peer gone).
PEER_LOST_EXIT = 75


def _error_line(tail: list[str], exit_code: int) -> str:
    """The reference's own one-line error if it printed one, else the last lines of stderr."""
    for line in reversed(tail):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    if exit_code < 0:
        return f"the reference was killed by signal {-exit_code}"
    last = " | ".join(line for line in tail[-3:] if line.strip())
    return f"the reference exited with code {exit_code}" + (f": {last}" if last else "")


def outcome_json(outcome: ReferenceOutcome) -> str:
    return json.dumps(outcome.model_dump(by_alias=True), indent=2)
