"""``mlperf-controller models``: build models for on-device training and list the artifacts.
Thin wiring to litert_models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Models that train on a device without PyTorch, in the LiteRT (TFLite) interpreter."
         "\n\nBuilt here with TensorFlow (pip install 'mlperf-edge\\[litert-build]'), never on "
         "devices. Each model is an artifact named by its SHA-256: <hash>.tflite plus a "
         "<hash>.json label (benchmark, mode, config, data sizes, signatures, source "
         "revision, converter). A job names the hash; the device checks it before loading.",
    no_args_is_help=True, add_completion=False)

Out = Annotated[Optional[Path], typer.Option(
    "--out", envvar="MLPERF_MODELS",
    help="Artifact folder (default: models/ beside the controller's default store, "
         "~/.local/share/mlperf-edge/models, or $XDG_DATA_HOME/mlperf-edge/models).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@app.command()
def build(
    benchmark: Annotated[str, typer.Option(
        "--benchmark", help="The reference whose model to build: ncf or sentiment (resnet "
                            "to come).")],
    runtime: Annotated[str, typer.Option(
        "--runtime", help="Interpreter the model is for: litert (the only one).")] = "litert",
    mode: Annotated[str, typer.Option(
        "--mode", help="Config preset, as for `run`: smoke, reduced or full. Sizes come from "
                       "its data (smoke: the synthetic set; reduced/full: --data).")] = "smoke",
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Config override KEY=VALUE (repeatable), checked as for a run.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="The dataset folder a run would read (e.g. ml-20m/, aclImdb/), for "
                       "the model's sizes; not needed for smoke.")] = None,
    division: Annotated[Optional[str], typer.Option(
        "--division", help="closed or open, as for `run` (default: closed for full, open "
                           "otherwise): which --set keys are allowed.")] = None,
    out: Out = None,
    as_json: Json = False,
) -> None:
    """Build a benchmark's model for the interpreter; print its hash, size and path.

    A builtins-only .tflite with the signatures train (one Adam step on a fixed-size batch;
    a short batch is padded with rows of weight 0), infer, save and restore (the whole
    training state out and in: the device writes the checkpoint file), with the same
    architecture, initialisation, loss and hyperparameters as the PyTorch reference.

    Example: `mlperf-controller models build --runtime litert --benchmark ncf --mode smoke`."""
    from agent.settings import parse_params
    from litert_models.artifacts import default_folder
    from litert_models.build import build as build_model
    from litert_models.errors import BuildError

    if runtime != "litert":
        raise BuildError(f"unknown runtime {runtime!r}; models build for: litert")
    artifact = build_model(benchmark, mode, parse_params(set_), data, out or default_folder(),
                           division=division, say=_say)
    if as_json:
        print(json.dumps({"sha256": artifact.sha256, "bytes": artifact.size,
                          "path": str(artifact.path), "label": artifact.label.as_dict()},
                         indent=2))
    else:
        print(f"{artifact.sha256}  {artifact.size:,} bytes  {artifact.path}")


@app.command("list")
def list_(out: Out = None, as_json: Json = False) -> None:
    """List the models in the artifact folder, oldest first.

    Hash, benchmark, mode, training batch, size, build time and source revision. Artifacts
    whose label does not read are skipped with a warning."""
    from litert_models import artifacts

    found = artifacts.list(out or artifacts.default_folder())
    if as_json:
        print(json.dumps([{"sha256": a.sha256, "path": str(a.path), **a.label.as_dict()}
                          for a in found], indent=2))
        return
    if not found:
        _say(f"no models in {out or artifacts.default_folder()}")
        return
    for a in found:
        lab = a.label
        print(f"{a.sha256}  {lab.benchmark:<9} {lab.mode:<7} batch {lab.batch_size:<6} "
              f"{a.size:>12,} bytes  {lab.created_at}  {_short(lab.source_revision)}")


def _short(revision: str) -> str:
    """A git commit to 12 digits, keeping ``-dirty``; anything else as it is."""
    commit, dash, rest = revision.partition("-")
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        return commit[:12] + dash + rest
    return revision[:60]


@app.command()
def serve(
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT to serve on, e.g. 0.0.0.0:8765 for the lab network "
                         "(default 127.0.0.1:8765).")] = "127.0.0.1:8765",
    out: Out = None,
) -> None:
    """Serve the artifact folder to devices, read-only: GET /<sha256>.tflite and .json.

    Agents started with `--models-url http://HOST:PORT` fetch a litert job's model from here
    when it is not in their --models-dir, and check its bytes against the hash in the signed
    job before anything loads it. Ctrl-C stops."""
    from litert_models import artifacts
    from controller.model_server import make_server

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        _say(f"error: --listen {listen!r}: expected HOST:PORT, e.g. 0.0.0.0:8765")
        raise typer.Exit(2)
    folder = out or artifacts.default_folder()
    if not folder.is_dir():
        _say(f"error: {folder}: no such folder of models (build one with `models build`)")
        raise typer.Exit(2)
    try:
        server = make_server(folder, host or "0.0.0.0", int(port))
    except OSError as exc:
        _say(f"error: cannot listen on {listen}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    bound = server.server_address
    _say(f"serving {len(artifacts.list_artifacts(folder))} model(s) from {folder} on "
         f"http://{bound[0]}:{bound[1]} (read-only); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
