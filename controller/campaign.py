"""``mlperf-controller run``: create a campaign (benchmarks x devices x runs) and see it through.

If a controller is already serving (its retained presence says so) this only queues the
campaign in the shared store and watches; otherwise it dispatches in-process until done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from agent.protocol import MAX_WORLD, CancelJob, JobAssignment, JobState, Sequence, check_id
from controller import fleet
from controller.errors import CampaignError
from controller.models import Campaign
from controller.service import ControllerService
from controller.settings import ControllerSettings
from controller.store import FINISHED, Store, redact

log = logging.getLogger("mlperf.controller")


@dataclass
class CampaignRequest:
    """What the operator asked for."""

    benchmarks: list[str]
    devices: str = "all"
    runs: int = 1
    mode: str = "smoke"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 1
    max_steps: int | None = None
    max_seconds: float | None = None
    images: dict[str | None, str] = field(default_factory=dict)   # profile (None: all) -> ref
    division: str | None = None          # None: closed for full, open otherwise
    retries: int = 1                     # new attempts of a lost or infrastructure-failed run
    retry_anywhere: bool = False         # ... on any device of its profile, not only its own
    # torch, litert (the LiteRT interpreter runs models[benchmark]) or None: each device's own
    # (its profile's training_runtime: a phone's is litert)
    runtime: str | None = None
    models: dict[str, str] = field(default_factory=dict)   # benchmark -> artifact sha256
    models_dir: Path | None = None       # where litert models are found (default: models build's)
    nodes: int = 1                       # > 1: each run trained by this many devices together
    group_timeout_s: float = 300.0       # ... which wait this long for each other

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise CampaignError("--benchmarks is empty (example: --benchmarks ncf)")
        for b in self.benchmarks:
            check_id(b, "benchmark name")
        if self.mode not in ("smoke", "reduced", "full"):
            raise CampaignError(f"--mode {self.mode!r}: use smoke, reduced or full")
        if self.runs < 1:
            raise CampaignError("--runs must be at least 1")
        if not 0 <= self.retries <= 10:
            raise CampaignError(f"--retries {self.retries}: use 0 to 10")
        if self.division not in (None, "closed", "open"):
            raise CampaignError(f"--division {self.division!r}: use closed or open")
        twice = sorted({b for b in self.benchmarks if self.benchmarks.count(b) > 1})
        if twice:
            raise CampaignError(f"--benchmarks names {', '.join(twice)} more than once "
                                "(use --runs for repeated runs)")
        self._check_bounds()
        self._check_references()
        self._check_runtime()
        self._check_nodes()

    def _check_nodes(self) -> None:
        """--nodes N: references that train with torch.distributed, a global batch N can
        share, torch (not the interpreter), and a timeout the wire carries."""
        from references import registry
        from references.common.errors import ReferenceError

        if not 1 <= self.nodes <= MAX_WORLD:
            raise CampaignError(f"--nodes {self.nodes}: use 1 to {MAX_WORLD}")
        if self.nodes == 1:
            return
        if not 5 <= self.group_timeout_s <= 86_400:
            raise CampaignError(f"--group-timeout {self.group_timeout_s:g}: use 5 to 86400 s")
        if self.runtime == "litert":
            raise CampaignError("--nodes trains with torch.distributed: not with --runtime "
                                "litert")
        for bench in self.benchmarks:
            spec = registry.get(bench)
            try:
                spec.check_group(spec.make_config(self.mode, dict(self.params), self.division),
                                 self.nodes)
            except ReferenceError as exc:
                raise CampaignError(f"--nodes {self.nodes}: {exc}") from None

    def _check_runtime(self) -> None:
        """``--runtime litert`` runs every job in the interpreter: no image, and a model for
        each benchmark (named, or found in the models folder). Without --runtime, the devices
        decide (:meth:`runtimes_for`)."""
        if self.runtime not in (None, "torch", "litert"):
            raise CampaignError(f"--runtime {self.runtime!r}: use torch or litert")
        if self.runtime == "torch" and self.models:
            raise CampaignError("--model is for --runtime litert")
        if self.runtime == "litert":
            if self.images:
                raise CampaignError("--image and --runtime litert exclude each other: the "
                                    "interpreter runs on the device, not in a container")
            self.models = self.litert_models(self.benchmarks, "--runtime litert")

    def litert_models(self, benchmarks: list[str], why: str) -> dict[str, str]:
        """A model for each of ``benchmarks``: the one --model named, else the newest in the
        models folder built for this mode whose config fits this run; each checked against the
        run's config. CampaignError in one line naming what is missing."""
        from references.litert import BENCHMARKS

        cannot = [b for b in benchmarks if b not in BENCHMARKS]
        if cannot:
            raise CampaignError(f"{why}: {', '.join(cannot)} cannot run in the LiteRT "
                                f"interpreter yet (it can: {', '.join(BENCHMARKS)})")
        models = dict(self.models)
        for bench in benchmarks:
            models[bench] = self._fitting_model(bench, models.get(bench), why)
        return models

    def _fitting_model(self, bench: str, sha: str | None, why: str) -> str:
        from litert_models import artifacts
        from litert_models.errors import ArtifactError
        from references import registry
        from references.common.errors import ReferenceError
        from references.litert.run import backend_module

        folder = self.models_dir or artifacts.default_folder()
        cfg = registry.get(bench).make_config(self.mode, dict(self.params), self.division)
        check = backend_module(bench).check_config
        build = (f"mlperf-controller models build --runtime litert --benchmark {bench} --mode "
                 f"{self.mode}" + "".join(f" --set {k}={v}" for k, v in self.params.items()))
        if sha is not None:
            try:
                check(artifacts.load(folder, sha).label.as_dict(), cfg)
            except (ArtifactError, ReferenceError) as exc:
                raise CampaignError(f"--model {sha[:12]}: {exc}") from None
            return sha
        fitting = []
        for artifact in artifacts.list_artifacts(folder):
            if artifact.label.benchmark != bench or artifact.label.mode != self.mode:
                continue
            try:
                check(artifact.label.as_dict(), cfg)
            except ReferenceError:
                continue
            fitting.append(artifact)
        if not fitting:
            raise CampaignError(f"{why}: no {bench} model for {self.mode} runs with this config "
                                f"in {folder}: build one ({build}) or name one with --model "
                                "HASH")
        newest = max(fitting, key=lambda a: a.label.created_at)
        try:
            return artifacts.load(folder, newest.sha256).sha256       # its bytes re-hashed
        except ArtifactError as exc:
            raise CampaignError(f"{why}: the {bench} model found: {exc}") from None

    def runtimes_for(self, devices: list) -> dict[str, str]:
        """Agent id -> the runtime its jobs use: --runtime for every device, else each device's
        default (its profile's training_runtime, announced in its capabilities; torch when it
        says none). Models are found here for the benchmarks a litert device will run."""
        runtimes = {d.agent_id: self.runtime or (d.capabilities or {}).get("default_runtime")
                    or "torch" for d in devices}
        litert = sorted(d.name for d in devices if runtimes[d.agent_id] == "litert")
        if litert and self.runtime is None:
            why = (f"{', '.join(litert[:3])}{' ...' if len(litert) > 3 else ''} train"
                   f"{'s' if len(litert) == 1 else ''} in the LiteRT interpreter (the device's "
                   "profile; --runtime torch overrides it)")
            self.models = self.litert_models(self.benchmarks, why)
        elif not litert and self.models:
            raise CampaignError("--model names LiteRT models, but none of these devices trains "
                                "in the interpreter: add --runtime litert")
        return runtimes

    def _check_references(self) -> None:
        """Refuse here, once, what every device would refuse per job: an unknown benchmark, a
        mode it lacks, a --set key or value its config rejects, a closed-division change."""
        from references import registry
        from references.common.errors import ReferenceError

        for bench in self.benchmarks:
            try:
                registry.get(bench).make_config(self.mode, dict(self.params), self.division)
            except ReferenceError as exc:
                where = f"{bench}: " if len(self.benchmarks) > 1 else ""
                raise CampaignError(f"{where}{exc}") from None

    def _check_bounds(self) -> None:
        """Refuse now what the wire contract would refuse at dispatch (its upper bounds)."""
        from pydantic import ValidationError

        try:
            JobAssignment(job_id="c-0001", campaign_id="c", benchmark=self.benchmarks[0],
                          mode=self.mode, run_index=self.runs, seed=self.seed + self.runs - 1,
                          params=self.params, max_steps=self.max_steps,
                          max_seconds=self.max_seconds, division=self.division, seq=0,
                          sent_at=0.0)
        except ValidationError as exc:
            first = exc.errors()[0]
            flag = {"run_index": "--runs", "seed": "--seed (plus --runs)", "params": "--set",
                    "max_steps": "--max-steps", "max_seconds": "--max-seconds"}.get(
                        str(first["loc"][0]), str(first["loc"][0]))
            raise CampaignError(f"{flag}: {first['msg'].lower()}") from None


def run_campaign(settings: ControllerSettings, store: Store, req: CampaignRequest, *,
                 detach: bool = False, connect_timeout_s: float = 30.0,
                 timeout_s: float | None = None, console: Console | None = None,
                 show_progress: bool = True) -> Campaign:
    """Create the campaign and (unless detached) wait for every job to end."""
    console = console or Console(stderr=True)
    snap = fleet.snapshot(settings, store, connect_timeout_s,
                          agents=not store.serving_recently())
    if not snap.complete:
        console.print("[yellow]the broker did not answer within 5 s: devices whose presence "
                      "was still arriving may be left out[/]")
    service = None
    if snap.foreign_controller and not store.serving_recently():
        raise CampaignError(f"{snap.foreign_controller}: use that controller's key here "
                            "(--identity: the same on every `mlperf-controller` of a lab) or "
                            "another --prefix")
    # The broker's retained presence says whether a controller serves; where it is missing or
    # was refused (an outsider can overwrite it), the store's own liveness mark decides.
    serving = snap.controller_online if snap.controller is not None \
        else store.serving_recently()
    if serving:
        if snap.controller is not None and snap.controller.store != redact(store.url):
            raise CampaignError(
                f"a controller is already serving this broker with store {snap.controller.store};"
                f" pass --db for that store (this command uses {redact(store.url)})")
    elif detach:
        console.print("[yellow]no controller is serving: the campaign is queued and starts "
                      "when `mlperf-controller serve` runs[/]")
    else:
        service = ControllerService(settings, store)
    devices = fleet.select_devices(req.devices, store.devices(), req.benchmarks)
    if req.nodes > 1:
        from controller.groups import choose_nodes

        busy = {j.agent_id for d in devices for j in store.active_jobs(d.agent_id)}
        devices = choose_nodes(devices, req.nodes, busy, req.devices)
        console.print(f"{req.nodes} nodes, rank 0 first: "
                      f"{', '.join(d.name for d in devices)}")
    runtimes = req.runtimes_for(devices)
    if req.nodes > 1 and any(r == "litert" for r in runtimes.values()):
        raise CampaignError("--nodes trains with torch.distributed: these devices train in the "
                            "LiteRT interpreter (--runtime torch overrides their profile)")
    natively = [d for d in devices if runtimes[d.agent_id] != "litert"]
    if service is not None:
        service.start(connect_timeout_s)
    try:
        campaign = store.create_campaign(
            req.benchmarks, req.mode, req.runs, [d.agent_id for d in devices], req.devices,
            req.params, req.seed, req.max_steps, req.max_seconds,
            images=fleet.images_for(natively, req.images), division=req.division,
            retries=req.retries, retry_anywhere=req.retry_anywhere, runtimes=runtimes,
            models=req.models, nodes=req.nodes, group_timeout_s=req.group_timeout_s)
        shape = (f"{len(devices)} device(s)" if req.nodes == 1
                 else f"1 group of {req.nodes} nodes")
        console.print(f"campaign [bold]{campaign.id}[/]: {', '.join(req.benchmarks)} "
                      f"({req.mode}) x {shape} x {req.runs} run(s)")
        if service is not None:
            service.wake()
        if not detach:
            watch(store, campaign.id, console, timeout_s, show_progress)
    finally:
        if service is not None:
            service.stop()
    return store.campaign(campaign.id)


def watch(store: Store, campaign_id: str, console: Console, timeout_s: float | None = None,
          show_progress: bool = True, poll_s: float = 0.5) -> None:
    """Show a progress bar until the campaign has ended (or Ctrl-C/timeout). Ended is what the
    controller decides (store.close_finished_campaigns): every run's latest attempt has
    ended and none that is lost still awaits its retry. Counting ended attempts alone returned
    while a lost run's retry was still to come, and printed the campaign as "active"."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    counts = store.progress(campaign_id)
    total = sum(counts.values())
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[states]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=False) as bar:
        task = bar.add_task(campaign_id, total=total, states="")
        try:
            while True:
                counts = store.progress(campaign_id)
                finished = sum(n for s, n in counts.items() if s in FINISHED)
                states = " ".join(f"{s.value} {counts[s.value]}" for s in JobState
                                  if counts[s.value])
                bar.update(task, completed=finished, states=states)
                campaign = store.campaign(campaign_id)
                if campaign is None or campaign.state != "active":
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise CampaignError(f"campaign {campaign_id} not finished after {timeout_s:g} s"
                                        f" ({states}); it goes on: `mlperf-controller results "
                                        f"--campaign {campaign_id}`")
                time.sleep(poll_s)
        except KeyboardInterrupt:
            console.print(f"[yellow]stopped watching; campaign {campaign_id} goes on. Its "
                          "results are kept on the devices until `mlperf-controller serve` "
                          "collects them.[/]")
            raise


def cancel_campaign(settings: ControllerSettings, store: Store, campaign_id: str,
                    connect_timeout_s: float = 10.0) -> int:
    """Cancel queued jobs in the store and ask devices to cancel the ones they hold."""
    out = store.cancel_campaign(campaign_id)
    if out:
        link = fleet.short_link(settings, store)
        link.connect(connect_timeout_s)
        seq = Sequence()
        try:
            for job in out:
                link.publish(link.topics.agent_control(job.agent_id),
                             CancelJob(job_id=job.id, reason="campaign cancelled", **seq())
                             ).wait_for_publish(5)
        finally:
            link.close()
    return len(out)


def parse_images(items: list[str] | None) -> dict[str | None, str]:
    """``["REF"]`` -> every device runs REF; ``["raspberry-pi-5=REF", ...]`` -> per profile."""
    images: dict[str | None, str] = {}
    for item in items or []:
        profile, sep, ref = item.rpartition("=")
        key = profile.strip() if sep else None
        if sep and not key or not ref.strip() or any(c.isspace() for c in ref.strip()):
            raise CampaignError(f"--image {item!r}: expected REF or PROFILE=REF "
                                "(e.g. 127.0.0.1:5000/mlperf-edge/raspberry-pi-5:0.1.0)")
        if key in images:
            raise CampaignError(f"--image given twice for "
                                f"{'profile ' + key if key else 'all devices'}")
        images[key] = ref.strip()
    return images


def models_by_benchmark(hashes: list[str], folder: Path | None) -> dict[str, str]:
    """``--model HASH`` (repeatable) -> {benchmark: hash}: each artifact is loaded from the
    controller's models folder (its bytes re-hashed), and its label says whose model it is."""
    from litert_models import artifacts
    from litert_models.errors import ArtifactError

    where = folder or artifacts.default_folder()
    models: dict[str, str] = {}
    for sha in hashes:
        try:
            artifact = artifacts.load(where, sha)
        except ArtifactError as exc:
            raise CampaignError(f"--model: {exc}") from None
        bench = artifact.label.benchmark
        if bench in models and models[bench] != artifact.sha256:
            raise CampaignError(f"--model names two {bench} models ({models[bench][:12]}, "
                                f"{artifact.sha256[:12]}): one per benchmark")
        models[bench] = artifact.sha256
    return models
