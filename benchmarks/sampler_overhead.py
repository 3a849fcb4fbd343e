"""What measuring costs: the power sampler's own CPU time, and its effect on a training run.

1. The sampler reads a realistic source set -- a RAPL laptop tree (5 zones) and a Jetson Orin
   INA3221 (3 rails, V x I: 6 files) laid out as fixture files -- at 10 Hz and at 100 Hz for
   ``--window-s`` (30 s) each; its thread's CPU time (psutil, per thread) as a share of one core.
   Aim: < 0.5 % at 10 Hz.
2. NCF training steps (references.ncf NeuMF, ml-1m sized, in this process) in blocks, alternating
   with and without the sampler running at 10 Hz in the same process; the medians of the
   per-round ratios with/without, of wall time and of process CPU time. Aim: <= 1.01.

    python benchmarks/sampler_overhead.py [--window-s 30] [--rounds 20] [--steps 10]

On a shared machine the wall-time ratio is noisy (neighbours steal the CPU in bursts); the
process CPU ratio shows the sampler's cost on the run without that noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from agent.power import registry
from agent.power.base import Context
from agent.power.config import PowerConfig
from agent.power.sampler import Sampler
from tests.power import sysfs


def thread_cpu_s(native_id: int) -> float:
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def sampler_cpu(sensors, rate_hz: float, window_s: float) -> tuple[float, int]:
    sampler = Sampler(sensors, rate_hz).start()
    native = sampler._thread.native_id
    before = thread_cpu_s(native)
    time.sleep(window_s)
    after = thread_cpu_s(native)
    sampler.stop()
    return (after - before) / window_s, len(sampler.ticks)


def training(rounds: int, steps: int, sensors) -> list[float]:
    import torch
    from torch import nn

    from references.ncf.config import NcfConfig
    from references.ncf.model import NeuMF
    from references.ncf.train import make_optimizer, train_step

    torch.manual_seed(0)
    cfg = NcfConfig.full()
    users, items, batch = 6040, 3706, 2048
    batches = [(torch.randint(0, users, (batch,)), torch.randint(0, items, (batch,)),
                (torch.rand(batch) < 0.2).float()) for _ in range(8)]
    model = NeuMF(users, items, cfg.factors, cfg.mlp_layers)
    opt, loss_fn = make_optimizer(model, cfg), nn.BCEWithLogitsLoss()

    def block() -> tuple[float, float]:
        """(wall s, CPU s of this whole process -- training and, when running, the sampler)."""
        t, c = time.perf_counter(), time.process_time()
        total = torch.zeros(())
        for k in range(steps):
            u, i, y = batches[k % len(batches)]
            total += train_step(model, opt, loss_fn, u, i, y)
        total.item()
        return time.perf_counter() - t, time.process_time() - c

    block()                                              # warm-up
    wall, cpu = [], []
    for r in range(rounds):
        times = {}
        for name in (("without", "with") if r % 2 == 0 else ("with", "without")):
            sampler = Sampler(sensors, 10).start() if name == "with" else None
            times[name] = block()
            if sampler:
                sampler.stop()
        wall.append(times["with"][0] / times["without"][0])
        cpu.append(times["with"][1] / times["without"][1])
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sysfs.rapl_laptop(root)
        sysfs.orin_nano(root)
        sensors, _ = registry.discover(PowerConfig(), Context(root))
        n_files = sum(len(s.channels) * (2 if s.name == "ina3221" else 1) for s in sensors)
        print(f"sources: {', '.join(n for s in sensors for n in s.source_names())} "
              f"({n_files} files per reading)")
        for rate in (10.0, 100.0):
            share, ticks = sampler_cpu(sensors, rate, args.window_s)
            print(f"sampler at {rate:g} Hz over {args.window_s:g} s: {ticks} readings, "
                  f"CPU {share * 100:.3f} % of one core")
        wall, cpu = (sorted(x) for x in training(args.rounds, args.steps, sensors))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"NCF training, {args.rounds} paired rounds of {args.steps} steps, with/without "
              f"the 10 Hz sampler in the same process:")
        print(f"  wall time ratio {statistics.median(wall):.4f} (median; per-round "
              f"{wall[0]:.3f} .. {wall[-1]:.3f})")
        print(f"  process CPU ratio {statistics.median(cpu):.4f} (median; per-round "
              f"{cpu[0]:.3f} .. {cpu[-1]:.3f}; includes the sampler's own CPU)")


if __name__ == "__main__":
    main()
