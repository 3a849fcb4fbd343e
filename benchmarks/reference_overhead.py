"""What the reference harness costs: its training throughput against a bare loop of the same
model, in the same process, on the same in-memory batches.

"harness" is the shared epoch loop references.common.loop.train_epochs (MLPerf block/epoch
events to a real MLLog, bound checks per step, loss accumulated on the device) driving the
reference's own step (ResNet: lr_at per step, SGD with the reference's parameter groups; sentiment:
Adam, masked seq-CNN). "bare" is ``for batch in batches: loss = f(model(x)); backward; step`` on
the same model class with the same optimizer. The two alternate in rounds so drift hits both
alike; the figure is the median of the per-round ratios harness/bare (aim: >= 0.95), by wall
time and by process CPU time (steadier when other work shares the cores).

    python benchmarks/reference_overhead.py [--rounds 30] [--steps 4] [--threads 0]

Many short rounds and their median resist the bursts of other work on a shared machine;
``--threads 1`` steadies it further. Measured on the 2-core project VM (shared, 1 thread, 30
rounds of 4 steps): ResNet 1.001 by wall time (1.028 by CPU time), sentiment 0.968 (0.975).

Models: ResNet-14 v1.5 at base width 16 on 64x64 images, batch 32 (the small variant); the
sentiment seq-CNN at embedding 128 / 128 filters on synthetic reviews, batch 64.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from references import registry  # noqa: E402
from references.common.loop import Bounds, train_epochs  # noqa: E402
from references.common.mllogging import MLLog  # noqa: E402
from references.common.runtime import available_cpus  # noqa: E402
from references.common.targets import Target  # noqa: E402
from references.resnet.model import ResNet  # noqa: E402
from references.resnet.train import lr_at, make_optimizer  # noqa: E402
from references.sentiment import data as sdata  # noqa: E402
from references.sentiment.model import SeqCNN  # noqa: E402

NEVER = Target("quality", 2.0, "max", "unreachable: the benchmark trains a fixed number of steps")


def harness_rate(model, step, batches, n_samples: int, steps: int) -> tuple[float, float]:
    """(samples per wall second, per process CPU second) of train_epochs over one epoch of
    ``batches`` (eval is a no-op). CPU time is the steadier figure on a shared machine."""
    with tempfile.TemporaryDirectory() as tmp:
        import io
        log = MLLog(Path(tmp) / "mllog.txt", stdout=io.StringIO())
        started, cpu = time.perf_counter(), time.process_time()
        out = train_epochs(log, Bounds(max_epochs=1), NEVER, batches=lambda epoch: batches,
                           step=step, batch_size_of=lambda b: len(b[-1]),
                           evaluate=lambda: 0.0, steps_per_epoch=steps, metric="quality")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        log.close()
    assert out.steps == steps
    return n_samples / elapsed, n_samples / cpu


def bare_rate(model, optimizer, loss_of, batches, n_samples: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        loss = loss_of(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.zeros(1).item()
    return (n_samples / (time.perf_counter() - started),
            n_samples / (time.process_time() - cpu))


def resnet_pair(steps: int):
    cfg = registry.get("resnet").make_config(
        "reduced", {"arch": "resnet14", "base_width": "16", "image_size": "64",
                    "resize_size": "64", "batch_size": "32"})
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(32, 3, 64, 64, generator=gen),
                torch.randint(0, 10, (32,), generator=gen)) for _ in range(steps)]
    torch.manual_seed(0)
    base = ResNet(cfg.arch, 10, cfg.base_width).to(memory_format=torch.channels_last)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def harness():
        model = copy.deepcopy(base)
        optimizer = make_optimizer(model, cfg)
        count = [0]

        def step(batch):                       # as references/resnet/train.py's step
            images, labels = batch
            for group in optimizer.param_groups:
                group["lr"] = lr_at(count[0], cfg, 1000)
            images = images.contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            count[0] += 1
            return loss.detach()
        return harness_rate(model, step, batches, 32 * steps, steps)

    def bare():
        model = copy.deepcopy(base)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        return bare_rate(model, optimizer, lambda m, b: loss_fn(
            m(b[0].contiguous(memory_format=torch.channels_last)), b[1]), batches, 32 * steps)
    return harness, bare


def sentiment_pair(steps: int):
    cfg = registry.get("sentiment").make_config(
        "smoke", {"embedding_dim": "128", "filters": "128", "synthetic_reviews": str(64 * steps)})
    data = sdata.load(cfg, None, seed=0)
    batches = list(sdata.batches(data.train, 64, np.random.default_rng(0)))[:steps]
    n = sum(len(b[2]) for b in batches)
    torch.manual_seed(0)
    base = SeqCNN(len(data.vocab) + 1, cfg.embedding_dim, cfg.filters, cfg.filter_sizes)
    loss_fn = nn.CrossEntropyLoss()

    def harness():
        model = copy.deepcopy(base)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)

        def step(batch):                       # as references/sentiment/train.py's step
            tokens, lengths, labels = batch
            loss = loss_fn(model(tokens, lengths), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()
        return harness_rate(model, step, batches, n, len(batches))

    def bare():
        model = copy.deepcopy(base)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        return bare_rate(model, optimizer, lambda m, b: loss_fn(m(b[0], b[1]), b[2]), batches, n)
    return harness, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads or available_cpus())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.rounds} rounds of {args.steps} steps each")
    for name, make in (("resnet14-w16 (64x64, batch 32)", resnet_pair),
                       ("sentiment seq-CNN (emb 128, batch 64)", sentiment_pair)):
        harness, bare = make(args.steps)
        harness(), bare()                      # warm-up: allocator, kernels
        wall, cpu, h_rates, b_rates = [], [], [], []
        for r in range(args.rounds):
            first, second = (harness, bare) if r % 2 == 0 else (bare, harness)
            a, b = first(), second()
            h, br = (a, b) if r % 2 == 0 else (b, a)
            h_rates.append(h[0])
            b_rates.append(br[0])
            wall.append(h[0] / br[0])
            cpu.append(h[1] / br[1])
        print(f"{name}: harness {statistics.median(h_rates):,.1f} samples/s, bare "
              f"{statistics.median(b_rates):,.1f} samples/s (wall, medians); harness/bare "
              f"median of per-round ratios: wall {statistics.median(wall):.3f} "
              f"(min {min(wall):.3f}, max {max(wall):.3f}), process CPU time "
              f"{statistics.median(cpu):.3f} (min {min(cpu):.3f}, max {max(cpu):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
