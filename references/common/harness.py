"""What every reference's train.py shares: the timed window, progress to stderr, the cache
clear, the projection of a bounded run, and the result.json it writes.

The training loop itself stays in each reference (NCF's builds batches of negatives; ResNet and
sentiment share :mod:`references.common.loop`); this module is what surrounds it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from mlperf_logging.mllog import constants as C

from references.common import distributed, runtime
from references.common.config import config_dict
from references.common.mllogging import MLLog
from references.common.provenance import source_revision
from references.common.result import write_result
from references.common.targets import Target


def run_reference(train: Callable[..., int], check_data_dir: Callable[[Any, Path | None], None],
                  cfg: Any, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
                  platform: str, mllog_stream: TextIO | None = None,
                  division: str | None = None,
                  group: distributed.Group = distributed.SINGLE) -> int:
    """Every reference's ``main``: check the data folder first (a wrong folder is a user
    error), set up torch and the log, meet the rest of the group (a run across several nodes),
    call ``train(cfg, mode, division, data_dir, out_dir, seed, platform, threads, device, log,
    run)``, and close the timed window as aborted if training crashed or was signalled.
    Division defaults to closed for full, open otherwise. A group that breaks mid-run (a peer
    gone) is a GroupError: one line, exit code distributed.PEER_LOST_EXIT."""
    check_data_dir(cfg, data_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads, device = runtime.configure_torch(cfg.threads, cfg.device)
    log = MLLog(out_dir / "mllog.txt", stdout=mllog_stream, rank=group.rank)
    run = TimedRun(log)
    try:
        group.start(device)
        distributed.set_current(group)
        if group.distributed:
            say(f"rank {group.rank} of {group.world_size} ({group.backend} at "
                f"{group.rendezvous}): " + ("evaluating and logging for the group" if group.lead
                                            else "training its slice of each global batch; "
                                            "rank 0 evaluates and logs"))
        return train(cfg, mode, division or ("closed" if mode == "full" else "open"), data_dir,
                     out_dir, seed, platform, threads, device, log, run)
    except Exception as exc:
        if group.distributed and distributed.broken(exc):
            raise distributed.GroupError(
                f"rank {group.rank} of {group.world_size}: the group broke mid-run (a node "
                f"left or stopped answering): {distributed.first_line(exc)}") from None
        raise
    finally:
        run.abort_if_open()
        log.close()
        distributed.set_current(distributed.SINGLE)
        group.stop()


def say(message: str) -> None:
    """Progress for people: stderr (stdout carries only MLLOG lines)."""
    print(message, file=sys.stderr, flush=True)


class TimedRun:
    """Whether the timed window is open, so that a crash or signal can still close it."""

    def __init__(self, log: MLLog) -> None:
        self.log, self.start_ms, self.stop_ms = log, None, None

    def start(self) -> int:
        """Open the window; in a group, every node opens its own at the same moment (after a
        barrier), so each node's power is measured over the same run."""
        distributed.current().barrier()
        self.start_ms = self.log.start(C.RUN_START)
        return self.start_ms

    def stop(self, status: str) -> int:
        self.stop_ms = self.log.end(C.RUN_STOP, metadata={C.STATUS: status})
        return self.stop_ms

    def abort_if_open(self) -> None:
        if self.start_ms is not None and self.stop_ms is None:
            self.stop(C.ABORTED)

    @property
    def window_s(self) -> float:
        return (self.stop_ms - self.start_ms) / 1000.0


class Stopwatch:
    """Adds up the time an iterator takes to produce its items."""

    def __init__(self) -> None:
        self.total_s = 0.0

    def timed(self, iterable: Iterable) -> Iterator:
        iterator = iter(iterable)
        while True:
            started = time.monotonic()
            try:
                item = next(iterator)
            except StopIteration:
                self.total_s += time.monotonic() - started
                return
            self.total_s += time.monotonic() - started
            yield item


def log_cache_clear(log: MLLog, dataset_files: Iterable[Path] | None) -> None:
    """The MLPerf ``cache_clear`` event, stating how (and whether) it was done."""
    cleared, method = runtime.clear_caches(dataset_files)
    log.event(C.CACHE_CLEAR, value=cleared, metadata={"method": method})


def projection(epochs_to_converge: float, epoch_time_s: float | None, basis: str) -> dict | None:
    """Time-to-train projected from a bounded run: epochs the reference needs (cited in
    ``basis``) x the measured epoch time. Labelled as a projection: never a result."""
    if epoch_time_s is None:
        return None
    return {"kind": "projection", "time_to_train_s": epochs_to_converge * epoch_time_s,
            "epochs_to_converge": epochs_to_converge, "epoch_time_s": epoch_time_s,
            "basis": basis}


def projection_for(mode: str, verdict: Any, epochs_to_converge: float, reference_epochs: float,
                   epoch_time_s: float | None, basis: str) -> dict | None:
    """A reduced run's projection when the data is the MLPerf dataset. On other data the
    reference's epoch count (``reference_epochs``, measured or assumed on the MLPerf dataset)
    says nothing, so there is none -- unless the run set its own ``epochs_to_converge``, which
    is then used and named as such in the basis. Other modes have none."""
    if mode != "reduced":
        return None
    if verdict.is_mlperf:
        return projection(epochs_to_converge, epoch_time_s, basis)
    if epochs_to_converge == reference_epochs:
        say(f"no projection: {reference_epochs:g} epochs to converge is a figure for the MLPerf "
            f"dataset, and this run's data is {verdict.label} (--set epochs_to_converge=N "
            "projects with your own count)")
        return None
    return projection(epochs_to_converge, epoch_time_s,
                      f"{epochs_to_converge:g} epochs: set for this run, NOT the reference's "
                      f"figure ({reference_epochs:g} epochs is for the MLPerf dataset; this "
                      f"run's data: {verdict.label}) x measured training epoch time")


def build_result(*, benchmark: str, mode: str, division: str, target: Target,
                 quality: float | None, success: bool, epochs: int, samples: int,
                 timed_window_s: float, throughput: float | None, epoch_time_s: float | None,
                 projection: dict | None, stop_reason: str, dataset: str, cfg: Any, seed: int,
                 platform: str, quality_parts: dict[str, float] | None = None,
                 first_losses: list[float] | None = None) -> dict[str, Any]:
    """result.json's content. Only a full run that reached its target has a time-to-train; a
    smoke run's time to its own target is ``time_to_target_s``; a reduced run has neither,
    only its projection. ``quality_parts``: for a target of several parts (Mask R-CNN's box and
    mask AP), each part's value at the last evaluation; ``quality`` is then their joint figure."""
    return {
        "schema": 1,
        "benchmark": benchmark,
        "mode": mode,
        "division": division,
        "status": C.SUCCESS if success else C.ABORTED,
        "reached_target": success,
        "target": target.as_dict(),
        "quality": quality,
        "quality_parts": quality_parts,
        "epochs": epochs,
        "samples_trained": samples,
        "timed_window_s": timed_window_s,
        "time_to_target_s": timed_window_s if success and mode in ("smoke", "full") else None,
        "time_to_train_s": timed_window_s if success and mode == "full" else None,
        "throughput_samples_per_s": throughput,
        "epoch_time_s": epoch_time_s,
        "projection": projection if mode == "reduced" else None,
        "stop_reason": stop_reason,
        "dataset": dataset,
        "config": config_dict(cfg),
        "source_revision": source_revision(),
        "seed": seed,
        "platform": platform,
        "mllog_file": "mllog.txt",
        "world_size": distributed.current().world_size,
        "rank": distributed.current().rank,
        "first_losses": list(first_losses or []),
    }


def finish_run(out_dir: Path, **fields: Any) -> int:
    """Every reference's last step: build result.json from ``fields`` (see build_result),
    write it, say how the run ended, and return exit code 0."""
    result = build_result(**fields)
    write_result(out_dir, result)
    got = "n/a" if result["quality"] is None else f"{result['quality']:.4f}"
    target = result["target"]
    say(f"run_stop {result['status']}: {target['metric']} {got} (target {target['value']}), "
        f"{result['stop_reason']}, {result['timed_window_s']:.2f} s timed; "
        f"result in {out_dir / 'result.json'}")
    if result["throughput_samples_per_s"] is not None:
        say(f"training throughput {result['throughput_samples_per_s']:,.4g} samples/s (per "
            "second of training, data loading included; evaluation and the first step "
            "excluded): the figure result.json and the controller show")
    return 0
