"""The process around a run: how many CPUs it may use, torch's threads, signals, page cache."""

from __future__ import annotations

import os
import signal
from pathlib import Path


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: the run stops where it is. A BaseException, like
    KeyboardInterrupt, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum          # 143 for SIGTERM, 130 for SIGINT, as a shell reports


def install_signal_handlers() -> None:
    """Raise Interrupted in the main thread on SIGTERM/SIGINT. Python runs the handler between
    bytecodes, so a run stops within the torch op or numpy call it is in (well under a second
    for a training step), not at the end of an epoch."""
    def handler(signum, frame):
        raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (a
    container started with ``--cpus 2`` still sees every core of the host in the mask)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:                # not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota else max(1, count)


def _cgroup_cpu_quota() -> int | None:
    try:                                  # cgroup v2: "max 100000" or "200000 100000"
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if limit != "max":
            return max(1, int(int(limit) // int(period)))
    except (OSError, ValueError):
        pass
    try:                                  # cgroup v1
        limit = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if limit > 0 and period > 0:
            return max(1, limit // period)
    except (OSError, ValueError):
        pass
    return None


def configure_torch(threads: int = 0, device: str = "auto") -> tuple[int, str]:
    """Set torch's intra-op threads and pick the device; returns (threads, device).

    Threads: one per CPU this process may use (``threads=0``). torch defaults to every core of
    the machine, which oversubscribes a CPU-limited container and, with other work on the
    device, makes the measurement depend on the neighbours.

    THP_MEM_ALLOC_ENABLE=1 lets torch back large CPU tensors with transparent huge pages. NCF's
    dense embedding gradients are fresh 130 MB tensors every step on ml-20m; on 4 KiB pages,
    zero-filling them was half of the step (measured here: step 108 ms -> 68 ms, 2 cores).
    It changes no result; the user's own setting wins.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    import torch

    n = threads or available_cpus()
    torch.set_num_threads(n)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return n, device


def clear_caches(dataset_files=None) -> tuple[bool, str]:
    """Clear what could hold the dataset in memory before the run (MLPerf ``cache_clear``);
    returns (done, how). The whole page cache when asked and permitted (drop_page_cache);
    otherwise each dataset file's pages are evicted with posix_fadvise(DONTNEED), which needs
    no privilege. Synthetic data has no files: nothing can be cached."""
    if drop_page_cache():
        return True, "drop_caches (whole page cache)"
    if dataset_files is None:
        return True, "synthetic data generated in memory: no dataset files to cache"
    count = 0
    try:
        for path in dataset_files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            count += 1
    except (OSError, AttributeError) as exc:
        return False, f"posix_fadvise DONTNEED failed after {count} file(s): {exc}"
    return True, f"posix_fadvise DONTNEED on {count} dataset file(s)"


def drop_page_cache() -> bool:
    """Drop the OS page cache before a run, as MLPerf run scripts do (``cache_clear``): only
    when asked (MLPERF_CLEAR_CACHES=1, e.g. by a harness that owns the device) and permitted
    (root). Returns whether it happened; the log says so rather than pretending."""
    if os.environ.get("MLPERF_CLEAR_CACHES") != "1":
        return False
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False
