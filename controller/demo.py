"""``mlperf-controller demo`` / ``make demo``: the whole loop on one machine.

An embedded broker (amqtt) on a free loopback port, one agent as a separate process talking to
it over MQTT, this process as the controller, a smoke campaign, and the results table. Every
message is signed, as in a lab: the demo makes a controller key and an enrolment token, and
starts the agent pinned to that key and holding that token.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from controller import fleet, results_view
from controller import runs as run_records
from controller.broker import EmbeddedBroker
from controller.campaign import CampaignRequest, run_campaign
from controller.errors import MlperfEdgeError
from controller.settings import ControllerSettings, make_token
from controller.store import Store


def run_demo(runs: int = 2, benchmark: str = "ncf", keep: Path | None = None,
             console: Console | None = None) -> int:
    """Run the demo; return 0 when every job finished done."""
    console = console or Console()
    progress = Console(stderr=True, width=console.width)
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mlperf-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with EmbeddedBroker() as broker:
            progress.print(f"embedded MQTT broker (amqtt) on {broker.url}")
            token_file, _ = make_token(workdir / "enrol-token")
            settings = ControllerSettings(broker=broker.url,
                                          db=f"sqlite:///{workdir / 'controller.db'}",
                                          identity=workdir / "controller_ed25519",
                                          enrol_token_file=token_file)
            key = settings.load_identity()
            progress.print(f"controller key {key.fingerprint}; the agent pins it and enrols "
                           "with a pre-shared token", markup=False)
            store = Store(settings.db)
            agent_log = workdir / "agent.log"
            with open(agent_log, "w") as log_file:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "agent.cli", "start", "--broker", broker.url,
                     "--work-dir", str(workdir / "agent"), "--heartbeat-s", "2",
                     "--controller-key", key.fingerprint,
                     "--enrol-token-file", str(token_file)],
                    stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=_agent_env())
                try:
                    name = _wait_for_agent(settings, store, agent, agent_log)
                    progress.print(f"agent process {agent.pid} online as [bold]{name}[/] "
                                   f"(log: {agent_log})")
                    campaign = run_campaign(
                        settings, store, CampaignRequest([benchmark], devices=name, runs=runs,
                                                         mode="smoke"), console=progress)
                finally:
                    _stop(agent)
            rows = run_records.load(store, [campaign.id])
            console.print(results_view.results_table(
                rows, f"mlperf-edge demo -- campaign {campaign.id}"))
            store.close()
        if keep:
            progress.print(f"store, agent log and job output kept in {workdir}")
        return 0 if rows and all(r.state == "done" for r in rows if not r.superseded) else 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _agent_env() -> dict[str, str]:
    """The demo agent's environment: the caller's, minus the lab settings that would point
    it elsewhere (its key, token and broker are the demo's own)."""
    import os

    return {k: v for k, v in os.environ.items()
            if k not in ("MLPERF_CONTROLLER_KEY", "MLPERF_ENROL_TOKEN", "MLPERF_AGENT_CONFIG",
                         "MLPERF_BROKER_PASSWORD", "MLPERF_BROKER_USERNAME", "MLPERF_PREFIX")}


def _wait_for_agent(settings: ControllerSettings, store: Store, agent: subprocess.Popen,
                    agent_log: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            tail = agent_log.read_text(errors="replace").strip().splitlines()[-5:]
            raise MlperfEdgeError(f"the demo agent exited with code {agent.returncode}: "
                                  + " | ".join(tail))
        online = [s for s in fleet.snapshot(settings, store).agents.values()
                  if s.state == "online"]
        if online:
            return online[0].name
        time.sleep(0.5)
    raise MlperfEdgeError(f"the demo agent did not come online within {timeout_s:.0f} s "
                          f"(see {agent_log})")


def _stop(agent: subprocess.Popen) -> None:
    """Ctrl-C the agent, as an operator would, and wait for it to go offline."""
    if agent.poll() is None:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
