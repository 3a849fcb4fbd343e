"""``mlperf-agent``: the command a lab operator runs on every device.

Thin wiring only: each command turns flags into plain calls into agent modules.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.errors import BrokerUnavailable, ConfigError, MlperfEdgeError
from agent.settings import parse_params

app = typer.Typer(
    help="Run MLPerf training benchmarks on this device for an mlperf-edge controller, "
         "or locally.\n\nFirst try: `mlperf-agent run ncf --mode smoke`. On a lab shelf: "
         "`mlperf-agent start --broker mqtt://lab:1883`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

_debug = False


@app.callback()
def _global(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and "
                                                 "debug logs.")] = False) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    logging.getLogger("paho").setLevel(logging.WARNING)


Broker = Annotated[Optional[str], typer.Option(
    "--broker", envvar="MLPERF_BROKER",
    help="MQTT broker URL, mqtt://HOST[:1883] or mqtts://HOST[:8883].")]
Name = Annotated[Optional[str], typer.Option(
    "--name", envvar="MLPERF_AGENT_NAME",
    help="This device's name in the fleet (unique; default: the host name).")]
DataRoot = Annotated[Optional[Path], typer.Option(
    "--data-root", envvar="MLPERF_DATA_ROOT",
    help="Folder holding the datasets (e.g. DIR/ml-20m/ratings.csv); default ~/mlperf-data.")]
WorkDir = Annotated[Optional[Path], typer.Option(
    "--work-dir", envvar="MLPERF_WORK_DIR",
    help="Folder for job output and the result spool; default "
         "~/.local/share/mlperf-edge/agent.")]
ProfilesDir = Annotated[Optional[Path], typer.Option(
    "--profiles-dir", envvar="MLPERF_PROFILES_DIR",
    help="Folder of device profile YAML files (default: the checkout's device_profiles/).")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", envvar="MLPERF_AGENT_CONFIG",
    help="YAML file with any of these settings (default ~/.config/mlperf-edge/agent.yaml).")]


LOGIN = "Trust, broker login and containers"


@app.command()
def start(
    broker: Broker = None, name: Name = None, data_root: DataRoot = None,
    work_dir: WorkDir = None, config: ConfigFile = None,
    tag: Annotated[Optional[list[str]], typer.Option(
        "--tag", help="A tag the controller can select devices by (repeatable).")] = None,
    allow: Annotated[Optional[list[str]], typer.Option(
        "--allow", help="Only accept these benchmarks (repeatable; default: all).")] = None,
    heartbeat_s: Annotated[Optional[float], typer.Option(
        "--heartbeat-s", help="Seconds between heartbeats (default 5).")] = None,
    resend_s: Annotated[Optional[float], typer.Option(
        "--resend-s", help="Seconds before an unacknowledged result is sent again "
                           "(default 30; doubling with each send, up to 8 times).")] = None,
    prefix: Annotated[Optional[str], typer.Option(
        "--prefix", envvar="MLPERF_PREFIX", help="Topic prefix (default mlperf/v1).")] = None,
    profile: Annotated[Optional[str], typer.Option(
        "--profile", envvar="MLPERF_PROFILE",
        help="Device profile name or YAML file (default: detected; see `mlperf-agent probe`)."
    )] = None,
    profiles_dir: ProfilesDir = None,
    images_dir: Annotated[Optional[Path], typer.Option(
        "--images-dir", help="Folder of sideloaded image tarballs (`mlperf-controller images "
                             "export`); default WORK_DIR/images.")] = None,
    models_dir: Annotated[Optional[Path], typer.Option(
        "--models-dir", envvar="MLPERF_MODELS",
        help="Folder of LiteRT model artifacts (<sha256>.tflite + .json, copied from the "
             "controller's `models build --out`) for --runtime litert jobs; each is checked "
             "against its hash before it runs. Default WORK_DIR/models.")] = None,
    models_url: Annotated[Optional[str], typer.Option(
        "--models-url", envvar="MLPERF_MODELS_URL",
        help="The controller's model server (`mlperf-controller models serve`), e.g. "
             "http://lab:8765: a litert job's model missing from --models-dir is fetched "
             "from it and kept only if its bytes hash to what the signed job names.")] = None,
    containers: Annotated[Optional[bool], typer.Option(
        "--containers/--no-containers",
        help="Run jobs that name an image inside it when a Docker engine answers (default), "
             "or always natively.")] = None,
    platform: Annotated[Optional[str], typer.Option(
        "--platform", envvar="MLPERF_PLATFORM",
        help="Platform of the containers jobs run in: linux/amd64 or linux/arm64 (default: "
             "this host's). Another architecture runs under qemu emulation (binfmt_misc), e.g. "
             "a Raspberry Pi image on an x86 box to try it out: every job must name an image "
             "of that platform, and every result is labelled emulated, its times never "
             "compared with a real board's.")] = None,
    address: Annotated[Optional[str], typer.Option(
        "--address", envvar="MLPERF_ADDRESS",
        help="The address other agents reach this device at when it is rank 0 of a run "
             "trained across several nodes (`mlperf-controller run --nodes N`): an IP or a "
             "host name. Default: this machine's address on the route to the broker.")] = None,
    controller_key: Annotated[Optional[str], typer.Option(
        "--controller-key", envvar="MLPERF_CONTROLLER_KEY", rich_help_panel=LOGIN,
        help="Only take jobs signed by this controller key: SHA256:... as `mlperf-controller "
             "key` prints it, the public key, or a file holding either. Kept once given. "
             "Default: the key kept earlier, else trust on first use.")] = None,
    trust_on_first_use: Annotated[Optional[bool], typer.Option(
        "--trust-on-first-use/--no-trust-on-first-use", rich_help_panel=LOGIN,
        help="With no controller key pinned, pin the first one that signs a valid message "
             "(said loudly; default), or refuse to start.")] = None,
    identity: Annotated[Optional[Path], typer.Option(
        "--identity", envvar="MLPERF_AGENT_IDENTITY", rich_help_panel=LOGIN,
        help="This agent's signing key, made on first start (default "
             "WORK_DIR/identity/agent_ed25519).")] = None,
    enrol_token_file: Annotated[Optional[Path], typer.Option(
        "--enrol-token-file", envvar="MLPERF_ENROL_TOKEN_FILE", rich_help_panel=LOGIN,
        help="The lab's pre-shared enrolment token (or set MLPERF_ENROL_TOKEN): the controller "
             "approves this device without `devices approve`.")] = None,
    broker_user: Annotated[Optional[str], typer.Option(
        "--broker-user", envvar="MLPERF_BROKER_USERNAME", rich_help_panel=LOGIN,
        help="User name at the broker.")] = None,
    broker_password_file: Annotated[Optional[Path], typer.Option(
        "--broker-password-file", envvar="MLPERF_BROKER_PASSWORD_FILE", rich_help_panel=LOGIN,
        help="File holding the broker password (or set MLPERF_BROKER_PASSWORD; never put it "
             "in the URL, which shows in `ps`).")] = None,
    tls_ca: Annotated[Optional[Path], typer.Option(
        "--tls-ca", envvar="MLPERF_TLS_CA", rich_help_panel=LOGIN,
        help="CA certificate that signed the broker's (mqtts://).")] = None,
    tls_cert: Annotated[Optional[Path], typer.Option(
        "--tls-cert", envvar="MLPERF_TLS_CERT", rich_help_panel=LOGIN,
        help="This device's client certificate, for brokers that require one.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(
        "--tls-key", envvar="MLPERF_TLS_KEY", rich_help_panel=LOGIN,
        help="The client certificate's private key.")] = None,
    allow_image: Annotated[Optional[list[str]], typer.Option(
        "--allow-image", rich_help_panel=LOGIN,
        help="Image references this agent runs (shell pattern, repeatable), or sha256:... "
             "image ids. Default: mlperf-edge/* from any registry.")] = None,
) -> None:
    """Connect to the broker, announce this device and run jobs one at a time until Ctrl-C.

    It takes jobs only from the controller whose key it pinned, and signs what it sends with
    its own key (made on first start; its fingerprint is printed): approve it once on the
    controller with `mlperf-controller devices approve NAME`, or start with the lab's
    enrolment token. Ctrl-C (or SIGTERM) cancels the running job, reports it as cancelled and
    goes offline. Results are kept in a local spool until the controller acknowledges them.
    """
    from agent.service import AgentService
    from agent.settings import resolve

    settings = resolve(dict(broker=broker, name=name, data_root=data_root, work_dir=work_dir,
                            tags=tag, allow=allow, heartbeat_s=heartbeat_s, resend_s=resend_s,
                            prefix=prefix, profile=profile, profiles_dir=profiles_dir,
                            images_dir=images_dir, models_dir=models_dir,
                            models_url=models_url,
                            containers=containers, platform=platform, address=address,
                            controller_key=controller_key,
                            trust_on_first_use=trust_on_first_use, identity=identity,
                            enrol_token_file=enrol_token_file, broker_user=broker_user,
                            broker_password_file=broker_password_file, tls_ca=tls_ca,
                            tls_cert=tls_cert, tls_key=tls_key, allow_images=allow_image),
                       config)
    service = AgentService(settings)
    stop = threading.Event()
    _on_signals(stop)
    try:
        service.start(abort=stop)
    except BrokerUnavailable:
        if stop.is_set():                       # Ctrl-C while still connecting
            raise typer.Exit(0) from None
        raise
    while not stop.wait(0.5):
        if service.failed.is_set():
            service.stop(service.failure, announce=False)
            raise ConfigError(service.failure)
    service.stop("agent stopped by signal")


def _on_signals(stop: threading.Event) -> None:
    def handler(signum, _frame):
        if stop.is_set():                      # a second Ctrl-C: leave now
            raise SystemExit(130)
        logging.getLogger("mlperf.agent").info("%s received; stopping",
                                               signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@app.command()
def run(
    benchmark: Annotated[str, typer.Argument(help="Benchmark name, e.g. ncf.")],
    mode: Annotated[str, typer.Option(
        "--mode", help="smoke (seconds, synthetic data), reduced (bounded steps on the real "
                       "data, with a projection) or full (to the MLPerf quality target).")
    ] = "smoke",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config value, KEY=VALUE (repeatable).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", help="Stop after this many training steps.")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(
        "--max-seconds", help="Stop after this many seconds of training.")] = None,
    data_root: DataRoot = None, work_dir: WorkDir = None, name: Name = None,
    config: ConfigFile = None,
    profile: Annotated[Optional[str], typer.Option(
        "--profile", envvar="MLPERF_PROFILE",
        help="Device profile name or YAML file (default: detected; see `mlperf-agent probe`)."
    )] = None,
    profiles_dir: ProfilesDir = None,
    division: Annotated[Optional[str], typer.Option(
        "--division", help="MLPerf division: closed (only the hyperparameters MLPerf lets "
                           "submitters change may be --set) or open. Default: closed for full, "
                           "open otherwise.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    runtime: Annotated[str, typer.Option(
        "--runtime", help="torch (the PyTorch reference) or litert (the LiteRT interpreter "
                          "runs a .tflite model from --models-dir, named by --model-sha256; no "
                          "torch needed: `pip install 'mlperf-edge[phone]'`).")] = "torch",
    model_sha256: Annotated[Optional[str], typer.Option(
        "--model-sha256", help="litert: the model artifact's hash (`mlperf-controller models "
                               "list`); its bytes are checked before it runs.")] = None,
    models_dir: Annotated[Optional[Path], typer.Option(
        "--models-dir", envvar="MLPERF_MODELS",
        help="litert: the folder of model artifacts (<sha256>.tflite + .json), e.g. copied "
             "from the controller's `models build --out` (default WORK_DIR/models).")] = None,
) -> None:
    """Run one benchmark here, without a controller, and print the result a job would give.

    Power is measured (or estimated) as the device profile says, exactly as for a job."""
    from agent.local import run_local
    from agent.settings import resolve

    settings = resolve(dict(name=name, data_root=data_root, work_dir=work_dir,
                            profile=profile, profiles_dir=profiles_dir), config)
    result = run_local(settings, benchmark, mode, seed, parse_params(set_), max_steps,
                       max_seconds, as_json, division, runtime=runtime,
                       model_sha256=model_sha256, models_dir=models_dir)
    raise typer.Exit(0 if result.status == "done" else 1)


@app.command()
def key(work_dir: WorkDir = None, config: ConfigFile = None,
        identity: Annotated[Optional[Path], typer.Option(
            "--identity", envvar="MLPERF_AGENT_IDENTITY",
            help="The agent's signing key (default WORK_DIR/identity/agent_ed25519).")] = None
        ) -> None:
    """Print this agent's key fingerprint (made now if there is none yet): what the operator
    compares before `mlperf-controller devices approve NAME`."""
    from agent.identity import Identity
    from agent.settings import resolve

    settings = resolve(dict(work_dir=work_dir, identity=identity), config)
    me, created = Identity.load_or_create(settings.identity)
    print(me.fingerprint)
    print(f"{'made' if created else 'kept'} in {settings.identity}; device {settings.name}",
          file=sys.stderr)


@app.command()
def probe(
    root: Annotated[Path, typer.Option(
        "--root", help="Read the device's files under this folder instead of / (a copy of "
                       "another board's /proc, /sys, /etc, e.g. to test a new profile).")
    ] = Path("/"),
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show what this device is (device-tree model, L4T release, Android properties, CPU
    flags, NVIDIA GPUs), which device profile matches, and why.

    Example: `mlperf-agent probe` on a Raspberry Pi 5 prints profile raspberry-pi-5 because
    /proc/device-tree/model says "Raspberry Pi 5 Model B".
    """
    import json

    from agent.profiles.probe import as_json as probe_json
    from agent.profiles.probe import probe as run_probe
    from agent.profiles.probe import report

    found = run_probe(root, profiles_dir)
    print(json.dumps(probe_json(found), indent=2) if as_json else report(found))


from agent.power.cli_commands import register as _register_power

_register_power(app)                  # `mlperf-agent sensors` and `mlperf-agent measure`


def main() -> None:
    """Console entry point: known errors become one line and exit code 1."""
    try:
        app(standalone_mode=True)
    except MlperfEdgeError as exc:
        if _debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
