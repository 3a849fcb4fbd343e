"""One run across several nodes with ``torch.distributed``: who this process is in the group,
the rendezvous, and the few collectives the run loops need around the gradients' all-reduce.

The global batch is the config's ``batch_size`` whatever the group's size: every rank draws the
same global batch (same seed, same order) and trains on its own contiguous slice of it, and the
gradients are all-reduced (DistributedDataParallel), so N nodes take the step one node takes at
that batch -- the learning rate needs no change, and the MLPerf keys log the global batch. The
lead (rank 0) evaluates, logs the MLPerf events and writes the result; the others log only their
own node's timed window under ``mlperf_edge_node_run_start``/``_stop`` (what their agent measures
power over), so nothing MLPerf counts is logged twice. Where a bound depends on a node's own
clock (``max_seconds``) the group agrees on stopping, so no rank is left waiting in a collective.

A peer that goes away mid-run (killed, cut off) ends every other rank at its next collective, or
at ``timeout_s`` when the peer hangs: the run exits with :data:`PEER_LOST_EXIT` and one line,
which the agent reports as the device's failure (retryable), never the job's.

Torch-free at import: a single-node run never touches torch.distributed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from references.common.errors import ConfigError, ReferenceError  # noqa: A004

#: Exit code of a run whose group broke (a peer lost, a rendezvous not met): EX_TEMPFAIL.
PEER_LOST_EXIT = 75
#: Most nodes in one group.
MAX_WORLD = 1024
#: Default wait for the group to meet, and for a collective, s.
DEFAULT_TIMEOUT_S = 300.0
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


class GroupError(ReferenceError):
    """The group broke or never met: one line, exit code PEER_LOST_EXIT."""

    exit_code = PEER_LOST_EXIT


def parse_rendezvous(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv4 address, ``[IPv6]`` or a host name) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 1 <= number <= 65535:
        raise ConfigError(f"--rendezvous {text!r}: expected HOST:PORT (e.g. 10.0.0.5:29500)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ConfigError(f"--rendezvous {text!r}: {host!r} is not an address or host "
                              "name") from None
    return host, number


@dataclass(frozen=True)
class Group:
    """This process's place in the run's group; ``world_size`` 1: a single-node run."""

    rank: int = 0
    world_size: int = 1
    rendezvous: str | None = None         # HOST:PORT of rank 0's store
    timeout_s: float = DEFAULT_TIMEOUT_S
    backend: str = "gloo"

    def __post_init__(self) -> None:
        if not 1 <= self.world_size <= MAX_WORLD:
            raise ConfigError(f"--world-size {self.world_size}: use 1 to {MAX_WORLD}")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"--rank {self.rank}: use 0 to {self.world_size - 1} for a "
                              f"group of {self.world_size}")
        if self.world_size > 1 and not self.rendezvous:
            raise ConfigError("a group of several nodes needs --rendezvous HOST:PORT "
                              "(rank 0's address and a free port)")
        if self.rendezvous:
            parse_rendezvous(self.rendezvous)
        if not 1 <= self.timeout_s <= 86_400:
            raise ConfigError(f"--group-timeout {self.timeout_s:g}: use 1 to 86400 s")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def lead(self) -> bool:
        return self.rank == 0

    # -- the process group -------------------------------------------------------------------
    def start(self, device: str) -> None:
        """Meet the other ranks (rank 0 hosts the store); GroupError within ``timeout_s`` if
        they do not all come."""
        if not self.distributed:
            return
        import torch.distributed as dist

        host, port = parse_rendezvous(self.rendezvous)
        backend = "nccl" if device.startswith("cuda") else "gloo"
        object.__setattr__(self, "backend", backend)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            dist.init_process_group(backend, init_method=f"tcp://{where}", rank=self.rank,
                                    world_size=self.world_size,
                                    timeout=timedelta(seconds=self.timeout_s))
        except Exception as exc:   # noqa: BLE001 -- store, network and backend errors alike
            if "EADDRINUSE" in str(exc) or "address already in use" in str(exc):
                raise GroupError(f"rank {self.rank} of {self.world_size}: cannot host the "
                                 f"rendezvous at {where}: the port is taken on this machine"
                                 ) from None
            raise GroupError(f"rank {self.rank} of {self.world_size}: the group did not meet at "
                             f"{where} within {self.timeout_s:g} s ({first_line(exc)})"
                             ) from None

    def stop(self) -> None:
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 -- a broken group is already being reported
                pass

    # -- collectives the loops use -------------------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def from_lead(self, compute) -> Any:
        """``compute()`` on rank 0 (an evaluation), its value (a float or a tuple of floats)
        sent to every rank; the others compute nothing."""
        if not self.distributed:
            return compute()
        import torch
        import torch.distributed as dist

        value = compute() if self.lead else None
        many = isinstance(value, tuple)
        size = torch.zeros(1, dtype=torch.int64)
        if self.lead:
            size[0] = len(value) if many else 0
        dist.broadcast(size, 0)
        data = torch.zeros(max(1, int(size[0])), dtype=torch.float64)
        if self.lead:
            data[:] = torch.tensor(value if many else (value,), dtype=torch.float64)
        dist.broadcast(data, 0)
        if self.lead:
            return value
        return tuple(data.tolist()) if int(size[0]) else float(data[0])

    def any_true(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a bound one node's clock reached)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t[0])

    def mean_of(self, local_sum: float, global_count: int) -> float:
        """The global batch's mean from each rank's sum over its own slice."""
        if not self.distributed:
            return local_sum / max(1, global_count)
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(local_sum)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t[0]) / max(1, global_count)

    def slice_of(self, n: int) -> slice:
        """This rank's contiguous part of a global batch of ``n`` (as torch.tensor_split)."""
        if not self.distributed:
            return slice(0, n)
        base, extra = divmod(n, self.world_size)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (1 if self.rank < extra else 0))

    def wrap(self, model):
        """``model`` under DistributedDataParallel (gradients all-reduced in buckets while the
        backward pass runs); the model itself for a single node."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def describe(self) -> dict[str, Any]:
        return {"rank": self.rank, "world_size": self.world_size, "backend": self.backend
                if self.distributed else None, "rendezvous": self.rendezvous}


SINGLE = Group()
_current = SINGLE


def current() -> Group:
    """The group of this process's run (set by the harness before training)."""
    return _current


def set_current(group: Group) -> None:
    global _current
    _current = group


def broken(exc: BaseException) -> bool:
    """Whether ``exc`` is the group breaking (a peer gone, a collective timed out) rather than
    a bug: torch.distributed's own errors, or gloo's transport errors raised as RuntimeError."""
    try:
        import torch.distributed as dist

        if isinstance(exc, dist.DistError):
            return True
    except ImportError:
        return False
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(mark in text for mark in (
        "gloo", "Connection closed by peer", "Connection reset", "Broken pipe",
        "Timed out", "timed out", "NCCL"))


def first_line(exc: BaseException) -> str:
    """The error's first line, without gloo's source location and its advice to debug it."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". This is typically", 1)[0][:300]
