"""``mlperf-controller``: the lab workstation's command. Thin wiring to controller modules.

Every command takes --broker/--db/--prefix (or MLPERF_BROKER/MLPERF_DB/MLPERF_PREFIX, or the
config file ~/.config/mlperf-edge/controller.yaml).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler
from rich.markup import escape

from agent.errors import BrokerUnavailable, ConfigError, MlperfEdgeError
from agent.settings import parse_params

app = typer.Typer(
    help="Benchmark a fleet of edge devices: dispatch MLPerf training jobs over MQTT and "
         "collect time-to-train results.\n\nOne machine, no set-up: `mlperf-controller demo`. "
         "A lab: run `mlperf-agent start --broker mqtt://LAB:1883` on each device, then "
         "`mlperf-controller run --benchmarks ncf --devices all --mode smoke`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# Piped output (CI logs, `| less`) gets a wide fixed width so labels are never cut off.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
_debug = False


@app.callback()
def _global(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and "
                                                 "debug logs.")] = False) -> None:
    global _debug
    _debug = debug
    # On a terminal, through the same console as the progress bars, so log lines print above
    # them; elsewhere (a service's journal, a pipe) plain lines: Rich's layout took 10-22 % of
    # a controller's threads at 10,000 agents, and wraps lines at 80 columns in a pipe.
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_level=False, show_path=False, markup=False,
                              highlighter=NullHighlighter())
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(message)s"
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=fmt,
                        datefmt="%H:%M:%S", handlers=[handler])
    logging.getLogger("paho").setLevel(logging.WARNING)


from controller.cli_options import (  # noqa: E402  (after the consoles they log through)
    AssignTimeout,
    DispatchWindow,
    Broker,
    BrokerUser,
    ConfigFile,
    Db,
    Identity,
    Json,
    PasswordFile,
    Prefix,
    TlsCa,
    TlsCert,
    TlsKey,
    TokenFile,
    Worker,
    open_settings,
)


@app.command()
def serve(broker: Broker = None, db: Db = None, prefix: Prefix = None,
          config: ConfigFile = None, identity: Identity = None,
          enrol_token_file: TokenFile = None, broker_user: BrokerUser = None,
          broker_password_file: PasswordFile = None, tls_ca: TlsCa = None,
          tls_cert: TlsCert = None, tls_key: TlsKey = None,
          assign_timeout: AssignTimeout = None, dispatch_window: DispatchWindow = None,
          worker: Worker = None) -> None:
    """Run the controller: track devices, dispatch queued campaigns, store results (Ctrl-C
    stops it; devices keep their results spooled until it returns).

    It signs everything it sends with its key (`mlperf-controller key`) and hears only
    devices the operator approved (`mlperf-controller devices`). For a fleet past what one
    process keeps up with, run several with --worker NAME on one PostgreSQL store (same key,
    same broker): README, "Fleet size"."""
    from controller.service import ControllerService
    from controller.store import redact

    settings, store = open_settings(
        config, broker=broker, db=db, prefix=prefix, identity=identity,
        enrol_token_file=enrol_token_file, broker_user=broker_user,
        broker_password_file=broker_password_file, tls_ca=tls_ca, tls_cert=tls_cert,
        tls_key=tls_key, assign_timeout_s=assign_timeout,
        dispatch_window=dispatch_window)
    if worker is not None:
        from agent.protocol import check_id

        check_id(worker, "worker name (--worker)")
        if not store.engine.dialect.name.startswith("postgresql"):
            raise ConfigError("--worker shares one store among processes: use PostgreSQL "
                              "(--db postgresql+psycopg://USER@HOST/DB)")
    service = ControllerService(settings, store, worker=worker)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.start(retry_for_s=None, abort=stop)
    except BrokerUnavailable:
        if stop.is_set():
            raise typer.Exit(0) from None
        raise
    token = "; devices with the enrolment token join at once" if service.trust.token else ""
    as_worker = f" as worker {worker} (shared subscriptions)" if worker else ""
    err.print(f"serving {service.link.broker}{as_worker} with store {redact(settings.db)}; "
              f"controller key {service.identity.fingerprint}{token}; Ctrl-C stops",
              markup=False)
    while not stop.wait(0.5):
        pass
    service.stop()


@app.command()
def run(
    benchmarks: Annotated[str, typer.Option(
        "--benchmarks", help="Comma-separated benchmark names, e.g. ncf.")],
    devices_: Annotated[str, typer.Option(
        "--devices", help="all (online devices), tag:TAG, profile:PROFILE, or NAME[,NAME...]."
    )] = "all",
    image: Annotated[Optional[list[str]], typer.Option(
        "--image", help="Run the jobs in this container image: REF for every device, or "
                        "PROFILE=REF per device profile (repeatable). Devices without an engine "
                        "or image run natively. See `mlperf-controller images --help`.")] = None,
    runtime: Annotated[Optional[str], typer.Option(
        "--runtime", help="torch (the PyTorch references) or litert: devices train a .tflite "
                          "model in the LiteRT interpreter (no torch there; copy the models "
                          "folder to each device's --models-dir, or serve it). Default: each "
                          "device's own -- litert on phones (profile android-phone), torch "
                          "elsewhere. A litert job's model is --model's, else the newest one "
                          "built for its benchmark, mode and --set.")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help="litert: a model artifact by its hash (`models list`), one per "
                        "benchmark; its label says which benchmark it is for (repeatable).")
    ] = None,
    models_dir: Annotated[Optional[Path], typer.Option(
        "--models-dir", envvar="MLPERF_MODELS",
        help="litert: where the artifacts are (default as `models build`).")] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs per benchmark and device.")] = 1,
    mode: Annotated[str, typer.Option(
        "--mode", help="smoke (seconds, synthetic), reduced (bounded steps on real data, "
                       "projected) or full (to the MLPerf target).")] = "smoke",
    seed: Annotated[int, typer.Option("--seed", help="Seed of run 1; run N uses seed+N-1.")] = 1,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Config override KEY=VALUE for every job (repeatable).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1)] = None,
    max_seconds: Annotated[Optional[float], typer.Option("--max-seconds", min=0.001)] = None,
    division: Annotated[Optional[str], typer.Option(
        "--division", help="MLPerf division: closed lets --set change only the hyperparameters "
                           "MLPerf lets submitters choose; open allows the rest. Default: "
                           "closed for full, open for smoke and reduced.")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", help="New attempts a run gets when its device is lost or fails it for a "
                          "reason of its own (image, engine, sensor, agent crash); a run that "
                          "fails by itself is not retried.")] = 1,
    retry_anywhere: Annotated[bool, typer.Option(
        "--retry-anywhere", help="Retry on any idle device of the same profile when the "
                                 "run's own device is away (default: wait for it).")] = False,
    nodes: Annotated[int, typer.Option(
        "--nodes", help="Train each run on this many devices together (torch.distributed: "
                        "gloo on CPU, NCCL on GPUs): N idle online devices of one profile "
                        "from --devices, or refused with the reason. The global batch is the "
                        "config's batch_size, each node trains its slice; rank 0 evaluates "
                        "and logs; energy is summed over the nodes. A node lost ends the run "
                        "on all and the group is retried as a whole. ncf, resnet and "
                        "sentiment so far.")
    ] = 1,
    group_timeout: Annotated[float, typer.Option(
        "--group-timeout", help="--nodes: how long the nodes wait for each other at the start "
                                "and in a collective whose peer went silent, s; never less "
                                "than their profiles' cool-down and idle baseline + 60 s "
                                "(a node still cooling has not started yet).")] = 300.0,
    detach: Annotated[bool, typer.Option(
        "--detach", help="Queue the campaign and return at once (a running `serve` "
                         "dispatches it).")] = False,
    timeout_s: Annotated[Optional[float], typer.Option(
        "--timeout", help="Give up waiting after this many seconds (the campaign goes on).")
    ] = None,
    connect_timeout_s: Annotated[float, typer.Option(
        "--connect-timeout", help="Seconds to keep retrying an unreachable broker.")] = 30.0,
    broker: Broker = None, db: Db = None, prefix: Prefix = None, config: ConfigFile = None,
    identity: Identity = None, enrol_token_file: TokenFile = None,
    broker_user: BrokerUser = None, broker_password_file: PasswordFile = None,
    tls_ca: TlsCa = None, tls_cert: TlsCert = None, tls_key: TlsKey = None,
    assign_timeout: AssignTimeout = None, dispatch_window: DispatchWindow = None,
    as_json: Json = False,
) -> None:
    """Create a campaign (benchmarks x devices x runs) and show progress until it is done.

    Images are pinned by digest when the campaign is made: the image id in this
    workstation's engine, or the registry's digest (REF@sha256:... pins one explicitly)."""
    from controller import results_view
    from controller import runs as run_records
    from controller.campaign import (
        CampaignRequest,
        models_by_benchmark,
        parse_images,
        run_campaign,
    )

    settings, store = open_settings(
        config, broker=broker, db=db, prefix=prefix, identity=identity,
        enrol_token_file=enrol_token_file, broker_user=broker_user,
        broker_password_file=broker_password_file, tls_ca=tls_ca, tls_cert=tls_cert,
        tls_key=tls_key, assign_timeout_s=assign_timeout,
        dispatch_window=dispatch_window)
    req = CampaignRequest(benchmarks=[b.strip() for b in benchmarks.split(",") if b.strip()],
                          devices=devices_, runs=runs, mode=mode, params=parse_params(set_),
                          seed=seed, max_steps=max_steps, max_seconds=max_seconds,
                          images=parse_images(image), division=division, retries=retries,
                          retry_anywhere=retry_anywhere, runtime=runtime,
                          models=models_by_benchmark(model or [], models_dir),
                          models_dir=models_dir, nodes=nodes, group_timeout_s=group_timeout)
    try:
        campaign = run_campaign(settings, store, req, detach=detach, timeout_s=timeout_s,
                                connect_timeout_s=connect_timeout_s,
                                console=err, show_progress=not as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    rows = run_records.load(store, [campaign.id])
    if as_json:
        print(json.dumps({"campaign_id": campaign.id, "state": campaign.state,
                          "results": [results_view.row_dict(r) for r in rows]}, indent=2))
    elif not detach:
        out.print(results_view.results_table(rows, f"Campaign {campaign.id}"))
    if not detach and any(r.state != "done" for r in rows if not r.superseded):
        raise typer.Exit(1)


@app.command()
def campaigns(db: Db = None, config: ConfigFile = None, as_json: Json = False) -> None:
    """List campaigns and how many of their jobs are in each state."""
    from controller import views

    _, store = open_settings(config, db=db, create=False)
    items = [(c, dict(store.progress(c.id))) for c in store.campaigns()]
    if as_json:
        print(json.dumps([views.campaign_dict(c, n) for c, n in items], indent=2))
    else:
        out.print(views.campaigns_table(items))


@app.command()
def cancel(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
           broker: Broker = None, db: Db = None, prefix: Prefix = None,
           config: ConfigFile = None, identity: Identity = None,
           broker_user: BrokerUser = None, broker_password_file: PasswordFile = None,
           tls_ca: TlsCa = None, tls_cert: TlsCert = None, tls_key: TlsKey = None) -> None:
    """Cancel a campaign: queued jobs at once, running jobs on their devices (signed)."""
    from controller.campaign import cancel_campaign

    settings, store = open_settings(
        config, broker=broker, db=db, prefix=prefix, identity=identity,
        broker_user=broker_user, broker_password_file=broker_password_file, tls_ca=tls_ca,
        tls_cert=tls_cert, tls_key=tls_key)
    n = cancel_campaign(settings, store, campaign)
    err.print(f"campaign {campaign} cancelled; {n} running job(s) asked to stop")


@app.command()
def logs(job: Annotated[str, typer.Argument(help="Job id (see `results --json`).")],
         output: Annotated[Optional[Path], typer.Option(
             "--output", "-o", help="Write to this file (e.g. for the MLPerf compliance "
                                    "checker) instead of stdout.")] = None,
         db: Db = None, config: ConfigFile = None) -> None:
    """Print a job's raw MLLOG lines, exactly as the reference logged them."""
    from controller.errors import StoreError

    _, store = open_settings(config, db=db, create=False)
    if store.job(job) is None:
        raise StoreError(f"no job {job!r}")
    text = "".join(line + "\n" for line in store.log_lines(job))
    missing = store.log_missing(job)
    if missing:
        err.print(f"incomplete: {missing} MLLOG line(s) its agent sent never reached the store "
                  "(job events lost on the way); this log is not the whole run",
                  style="yellow", markup=False)
    if output:
        output.write_text(text)
        err.print(f"{text.count(chr(10))} MLLOG lines written to {output}")
    else:
        sys.stdout.write(text)


@app.command()
def demo(runs: Annotated[int, typer.Option("--runs", min=1, help="Runs of the benchmark.")] = 2,
         benchmark: Annotated[str, typer.Option("--benchmark")] = "ncf",
         keep: Annotated[Optional[Path], typer.Option(
             "--keep", help="Keep the demo's store, logs and job output in this folder.")
         ] = None) -> None:
    """The whole loop on this machine: embedded broker, one agent process, this controller,
    a smoke campaign, and the results table."""
    from controller.demo import run_demo

    raise typer.Exit(run_demo(runs=runs, benchmark=benchmark, keep=keep, console=out))


@app.command()
def retry(target: Annotated[str, typer.Argument(
              help="A job id (see `results --json`) or a campaign id.")],
          db: Db = None, config: ConfigFile = None) -> None:
    """Run again a failed, lost or cancelled job -- or every such run of a campaign -- as a
    new attempt (whatever the campaign's --retries); the earlier attempt is kept as history.
    `mlperf-controller serve` dispatches it (start one if none runs)."""
    _, store = open_settings(config, db=db, create=False)
    for job in store.retry(target):
        err.print(f"queued {job.id} (attempt {job.attempt} of {job.retry_of}) on "
                  f"{job.agent_id}", markup=False)


@app.command()
def key(identity: Identity = None, config: ConfigFile = None,
        write: Annotated[Optional[Path], typer.Option(
            "--write", help="Also write the fingerprint to this file, for agents' "
                            "--controller-key.")] = None) -> None:
    """Print this controller's key: the fingerprint agents pin (`mlperf-agent start
    --controller-key SHA256:...`) and the public key itself. Made on first use."""
    from controller.settings import resolve

    settings = resolve({"identity": identity}, config)
    me = settings.load_identity()
    if write:
        write.write_text(me.fingerprint + "\n")
    print(me.fingerprint)
    err.print(f"public key: ed25519 {me.public_b64} (also in {settings.identity}.pub). "
              f"Agents pin it with --controller-key {me.fingerprint}", markup=False)


@app.command("enrol-token")
def enrol_token(file: Annotated[Optional[Path], typer.Option(
                    "--file", help="Where to keep it (default "
                                   "~/.config/mlperf-edge/enrol-token).")] = None,
                rotate: Annotated[bool, typer.Option(
                    "--rotate", help="Replace an existing token (devices that enrolled stay "
                                     "approved).")] = False) -> None:
    """Make the lab's pre-shared enrolment token. Agents started with it (`mlperf-agent start
    --enrol-token-file FILE`, or MLPERF_ENROL_TOKEN) are approved without `devices approve`:
    for unattended labs. Keep it as secret as a password."""
    from controller.settings import DEFAULT_TOKEN_FILE, make_token

    path, created = make_token(file or DEFAULT_TOKEN_FILE, rotate)
    how = "" if file is None else f" (give it to `serve` with --enrol-token-file {path})"
    err.print(f"{'made' if created else 'kept the existing'} enrolment token in {path} "
              f"(mode 0600){how}. Copy that file to each device and start its agent with "
              "--enrol-token-file FILE.", markup=False)


@app.command("broker-config")
def broker_config(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the broker set-up into.")],
    agent: Annotated[Optional[list[str]], typer.Option(
        "--agent", help="A device's agent name (repeatable): it gets its own credentials.")
    ] = None,
    auth: Annotated[str, typer.Option(
        "--auth", help="cert: every client proves itself with its own TLS certificate; "
                       "password: TLS for the server, a password per client.")] = "cert",
    host: Annotated[Optional[list[str]], typer.Option(
        "--host", help="Name or address devices reach the broker by (repeatable; default: "
                       "this host's name, localhost and 127.0.0.1).")] = None,
    port: Annotated[int, typer.Option("--port", help="TLS listener port.")] = 8883,
    prefix: Prefix = None, identity: Identity = None, config: ConfigFile = None,
) -> None:
    """Write a Mosquitto set-up for a lab: a TLS listener, a CA with server and per-client
    credentials, and an ACL by which each device writes only under its own topics and reads
    only its own jobs. Every device and the controller get a folder with their credentials
    and a config file: copy DIR/agents/NAME/ to the device and run `mlperf-agent start
    --config agent.yaml`; run the broker with `mosquitto -c DIR/mosquitto.conf`.

    Adding a device later: run it again with the new --agent (the CA is kept)."""
    from controller.broker_config import write_broker_config
    from controller.settings import resolve

    settings = resolve({"prefix": prefix, "identity": identity}, config)
    written = write_broker_config(out_dir, agent or [], auth=auth, hosts=host or [],
                                  port=port, prefix=settings.prefix,
                                  controller_key=settings.load_identity().fingerprint)
    for line in written:
        err.print(line, markup=False)


from controller import results_cli as _results_cli  # noqa: E402  (commands in their files)
from controller.devices_cli import app as _devices_app  # noqa: E402  (sub-command groups)
from controller.export_cli import export as _export  # noqa: E402
from controller.images_cli import app as _images_app  # noqa: E402
from controller.models_cli import app as _models_app  # noqa: E402
from controller.report_cli import report as _report  # noqa: E402

app.command("results")(_results_cli.results)
app.command("score")(_results_cli.score)
app.command("report")(_report)
app.command("export")(_export)
app.add_typer(_devices_app, name="devices")
app.add_typer(_images_app, name="images")
app.add_typer(_models_app, name="models")


def main() -> None:
    """Console entry point: known errors become one line and exit code 1."""
    try:
        app(standalone_mode=True)
    except MlperfEdgeError as exc:
        if _debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
