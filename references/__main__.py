"""The references CLI.

    python -m references list [--json]
    python -m references run NAME --mode smoke|reduced|full [--data DIR] [--out DIR] [--seed N]
                             [--set KEY=VALUE ...] [--max-steps N] [--max-seconds S]
                             [--division closed|open] [--platform NAME] [--debug]
                             [--runtime litert --model DIR --model-sha256 HASH]
                             [--rank R --world-size N --rendezvous HOST:PORT
                              --group-timeout S]

Exit codes: 0 the run completed (result.json says whether it reached its target); 2 a user error,
printed as one line ``error: ...``; 1 a crash (with its traceback); 128 + signal number when
stopped by SIGTERM (143) or SIGINT (130), with no result written; 75 when the run's group of
nodes broke or never met (a peer gone: the device's failure, not the run's).

argparse rather than Typer: this runs inside bare benchmark containers, where every line of
stdout must be an MLLOG line and every user error one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import traceback
from pathlib import Path

from references import registry
from references.common import distributed, runtime
from references.common.division import default_division
from references.common.errors import ConfigError, ReferenceError  # noqa: A004


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # argparse prints usage and the message; one line here
        print(f"error: {message} (try --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m references", description="MLPerf reference benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,run}")

    listing = commands.add_parser("list", help="the registered benchmarks")
    listing.add_argument("--json", action="store_true", help="as a JSON list")

    run = commands.add_parser("run", help="run one benchmark")
    run.add_argument("name", help="benchmark name (see `list`)")
    run.add_argument("--mode", required=True, help="smoke, reduced or full")
    run.add_argument("--data", type=Path, help="dataset folder (see `list` for each benchmark)")
    run.add_argument("--out", type=Path,
                     help="output folder (default: ./ref-out/NAME-MODE-TIMESTAMP)")
    run.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field; repeatable")
    run.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    run.add_argument("--max-seconds", type=float, help="stop after this many seconds of run")
    run.add_argument("--division", choices=("closed", "open"),
                     help="closed: only the hyperparameters MLPerf lets submitters change may be "
                          "--set; open: any (default: closed for full, open otherwise)")
    run.add_argument("--runtime", choices=("torch", "litert"), default="torch",
                     help="torch (default) or litert: the LiteRT interpreter runs a .tflite "
                          "model built by `mlperf-controller models build --runtime litert` "
                          "(no torch needed; ncf and sentiment so far)")
    run.add_argument("--model", type=Path,
                     help="litert: the models folder (or the .tflite file) holding the model")
    run.add_argument("--model-sha256", help="litert: the model's hash; its bytes are checked")
    run.add_argument("--platform", help="submission_platform (default: the hostname)")
    group = run.add_argument_group(
        "several nodes (torch.distributed)",
        "train one run across N processes or machines: start the same command on each with "
        "its own --rank; rank 0 hosts the rendezvous, evaluates and logs. The global batch is "
        "the config's batch_size; each node trains its slice of it.")
    group.add_argument("--world-size", type=int, default=1,
                       help="nodes training this run together (default 1)")
    group.add_argument("--rank", type=int, default=0, help="this node's rank, 0 to N-1")
    group.add_argument("--rendezvous", metavar="HOST:PORT",
                       help="rank 0's address and a free port it listens on")
    group.add_argument("--group-timeout", type=float, default=300.0, metavar="S",
                       help="how long the nodes wait for each other (default 300 s)")
    run.add_argument("--debug", action="store_true", help="tracebacks for user errors too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(args.json)
        return _run(args)
    except ReferenceError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except runtime.Interrupted as exc:
        print(f"interrupted by {exc}: stopped, no result written", file=sys.stderr)
        return exc.exit_code


def _list(as_json: bool) -> int:
    specs = registry.specs()
    if as_json:
        print(json.dumps([s.as_dict() for s in specs], indent=1))
        return 0
    for s in specs:
        print(f"{s.name:<8} {s.title}\n{'':<8} modes: {', '.join(s.modes)}"
              f"{'; trains across several nodes (--world-size)' if s.distributed else ''}\n"
              f"{'':<8} --data: {s.data_hint}")
    return 0


def _run(args: argparse.Namespace) -> int:
    spec = registry.get(args.name)
    overrides: dict[str, str | int | float] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.max_seconds is not None:
        overrides["max_seconds"] = args.max_seconds
    division = args.division or default_division(args.mode)
    if args.runtime == "litert" and (args.model is None or not args.model_sha256):
        raise ConfigError("--runtime litert needs --model FOLDER_OR_FILE and --model-sha256 HASH "
                          "(see `mlperf-controller models list`)")
    if args.runtime != "litert" and (args.model is not None or args.model_sha256):
        raise ConfigError("--model and --model-sha256 are for --runtime litert")
    cfg = spec.make_config(args.mode, overrides, division)
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    spec.check_data(cfg, args.data)
    group = distributed.Group(args.rank, args.world_size, args.rendezvous, args.group_timeout)
    if group.distributed:
        spec.check_group(cfg, group.world_size, args.runtime)
    out_dir = args.out or _new_out_dir(spec.name, args.mode)

    runtime.install_signal_handlers()
    # stdout is the MLLOG stream; anything else printed during the run (a library's print, a
    # stray debug line) goes to stderr instead of corrupting it.
    mllog_stream, sys.stdout = sys.stdout, sys.stderr
    common = dict(mode=args.mode, data_dir=args.data, out_dir=out_dir, seed=args.seed,
                  platform=args.platform or socket.gethostname(), mllog_stream=mllog_stream,
                  division=division)
    try:
        if args.runtime == "litert":
            from references.litert.run import main as run_litert
            return run_litert(spec.name, cfg, model=args.model, model_sha256=args.model_sha256,
                              **common)
        if group.distributed:
            common["group"] = group
        return spec.run(cfg, **common)
    finally:
        sys.stdout = mllog_stream


def _new_out_dir(name: str, mode: str) -> Path:
    stem = Path("ref-out") / f"{name}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = stem, 1
    while candidate.exists():
        n += 1
        candidate = stem.with_name(f"{stem.name}-{n}")
    return candidate


if __name__ == "__main__":
    sys.exit(main())
