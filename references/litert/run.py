"""A reference run in the LiteRT interpreter: `python -m references run NAME --runtime litert
--model FOLDER_OR_FILE --model-sha256 HASH ...`.

The artifact is loaded by hash (litert_models.artifacts.load re-hashes its bytes and refuses a
difference, naming both hashes), then the reference's own run drives it. Only the interpreter
executes the artifact. The log says which runtime, interpreter and model ran
(mlperf_edge_runtime), inside init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from litert_models import artifacts
from litert_models.errors import ArtifactError
from references.common.errors import ConfigError
from references.common.harness import TimedRun
from references.common.mllogging import MLLog
from references.common.runtime import available_cpus
from references.litert import BENCHMARKS
from references.litert.interpreter import TrainingModel, runtime_version

RUNTIME_KEY = "mlperf_edge_runtime"


def main(benchmark: str, cfg: Any, *, mode: str, data_dir: Path | None, out_dir: Path,
         seed: int, platform: str, model: Path, model_sha256: str,
         mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"{benchmark} cannot run in the LiteRT interpreter yet (it can: "
                          f"{', '.join(BENCHMARKS)}); use the torch runtime")
    try:
        artifact = artifacts.load(Path(model), model_sha256)
    except ArtifactError as exc:
        raise ConfigError(str(exc)) from None
    if artifact.label.benchmark != benchmark:
        raise ConfigError(f"model {artifact.sha256[:12]} is a {artifact.label.benchmark} model, "
                          f"not {benchmark}")
    label = artifact.label.as_dict()
    backend, loop = backend_module(benchmark), run_module(benchmark)
    backend.check_config(label, cfg)
    threads = getattr(cfg, "threads", 0) or available_cpus()
    interpreter = TrainingModel(artifact.content, str(artifact.path), threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = MLLog(out_dir / "mllog.txt", stdout=mllog_stream)
    timed = TimedRun(log)
    division = division or ("closed" if mode == "full" else "open")
    version = runtime_version()
    description = (f"LiteRT interpreter ({version}), {threads} thread(s), model "
                   f"{artifact.sha256[:12]}")
    try:
        def make_backend(data):
            log.event(RUNTIME_KEY, {"runtime": "litert", "interpreter": version,
                                    "model_sha256": artifact.sha256,
                                    "converter": artifact.label.converter})
            return backend.make_backend(interpreter, label, cfg, seed, data, description)

        return loop.run(cfg, mode, division, data_dir, out_dir, seed, platform, log, timed,
                        make_backend)
    finally:
        timed.abort_if_open()
        log.close()


def backend_module(benchmark: str):
    """The interpreter backend of ``benchmark``: check_config(label, cfg) and
    make_backend(model, label, cfg, seed, data, description)."""
    from importlib import import_module

    return import_module(f"references.litert.{benchmark}")


def run_module(benchmark: str):
    """The reference's runtime-agnostic run: run(cfg, mode, division, data_dir, out_dir, seed,
    platform, log, timed, make_backend)."""
    from importlib import import_module

    return import_module(f"references.{benchmark}.loop")
