"""The typer wiring of ``mlperf-agent sensors`` and ``mlperf-agent measure`` (registered on the
agent's app by ``register``); the work is in agent.power.cli_power."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Root = Annotated[Path, typer.Option(
    "--root", help="Read /sys under this folder instead of / (a host's root mounted in a "
                   "container, or a copy of another board's /sys).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Config = Annotated[Path | None, typer.Option(
    "--config", envvar="MLPERF_AGENT_CONFIG",
    help="Agent YAML whose `power:` section names sources (e.g. a smart plug) and options; "
         "default ~/.config/mlperf-edge/agent.yaml. Without sources, every one found is used.")]


def _settings(config: Path | None):
    from agent.power.config import PowerConfig
    from agent.settings import resolve

    settings = resolve({}, config)
    return settings.power or PowerConfig(), settings.broker_connection()


def sensors(root: Root = Path("/"), as_json: Json = False,
            watch: Annotated[bool, typer.Option(
                "--watch", help="Refresh the live readings every second until Ctrl-C.")] = False,
            config: Config = None) -> None:
    """List this device's power and energy sources with a live reading.

    For each: kind (energy counter, differenced; or power reading, integrated), scope
    (package, dram, gpu, rail, board, battery, wall), method (measured or ESTIMATED), native
    units and update period. A source that exists but cannot be read is listed with the reason
    and the fix, e.g. RAPL energy_uj, root-only since the 2020 PLATYPUS fix.

    Example: `mlperf-agent sensors`; in a container: `mlperf-agent sensors --root /host`.
    """
    from agent.power.cli_power import sensors as run

    power, broker = _settings(config)
    raise typer.Exit(run(power, root, broker, as_json, watch))


def measure(
    command: Annotated[list[str] | None, typer.Argument(
        help="A command to measure, after `--` (its exit code is returned).",
        show_default=False)] = None,
    duration: Annotated[float | None, typer.Option(
        "--duration", help="Measure for this many seconds instead of around a command.")] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Samples per second (default 10; MLPerf asks for at least 1).")] = None,
    root: Root = Path("/"), as_json: Json = False, config: Config = None,
) -> None:
    """Measure energy over a window or around a command, like `perf stat` for joules.

    Prints energy (J), average and peak power (W), samples and achieved rate per source, per
    scope and in total, and whether MLPerf's training power rules (>= 1 sample/s, >= 60
    samples) were met. The table goes to stderr when a command runs (its stdout stays clean).

    Examples: `mlperf-agent measure --duration 10`;
    `mlperf-agent measure --rate 20 -- python train.py --epochs 1`.
    """
    from agent.power.cli_power import measure as run

    if rate is not None and not 0 < rate <= 1000:
        raise typer.BadParameter("must be between 0 and 1000 samples/s", param_hint="--rate")
    power, broker = _settings(config)
    raise typer.Exit(run(power, root, broker, rate, duration, command, as_json))


def register(app: typer.Typer) -> None:
    app.command()(sensors)
    app.command()(measure)
