"""The LiteRT interpreter against PyTorch on this CPU, and what a phone agent costs in memory.

1. Train-step throughput of the same model: the .tflite `mlperf-controller models build
   --runtime litert` makes, stepped in ai-edge-litert's interpreter, against the PyTorch
   reference's step, on the same batches, one thread each, alternating in rounds; the figure is
   the median of per-round ratios interpreter/torch. NeuMF (the NCF smoke preset: 839 users x
   992 items, factors 8, MLP 32-16-8, batch 1024, Adam as references/ncf/train.py) and ResNet
   (the smoke preset: ResNet-14 v1.5 at base width 8, 32x32 images, 4 classes, batch 32, SGD
   with momentum as references/resnet/train.py).
2. Resident memory of an idle `mlperf-agent start` with torch and tensorflow unimportable (as on
   a phone with only the `phone` extra), waiting for a broker that is not there; and of a process
   holding the interpreter with the model loaded. Aim: under 150 MB.

    python benchmarks/litert_throughput.py [--rounds 15] [--steps 50]

Needs TensorFlow to build the model (the `litert-build` extra; the test extra has it).
Measured on the 2-core project VM (another process on the other core): NeuMF interpreter
1.02 M samples/s, PyTorch 0.44 M, ratio 2.32 (9 rounds of 40 steps, min 2.11, max 2.49); idle
agent 57.5 MB resident, interpreter holding the model 59.0 MB. ResNet: see issue 14's note.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BIN = Path(sys.executable).parent
NO_TORCH = ("import sys\nclass _R:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'tensorflow'):\n"
            "            raise ImportError(name + ' blocked')\nsys.meta_path.insert(0, _R())\n")


def build(folder: Path, benchmark: str) -> str:
    done = subprocess.run([str(BIN / "mlperf-controller"), "models", "build", "--runtime",
                           "litert", "--benchmark", benchmark, "--mode", "smoke", "--out",
                           str(folder)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def compare(what: str, litert, pytorch, samples: int, rounds: int) -> float:
    """Median of per-round ratios of samples/s, interpreter / torch; printed."""
    def rate(fn) -> float:
        started = time.perf_counter()
        fn()
        return samples / (time.perf_counter() - started)

    rate(litert), rate(pytorch)                          # warm-up
    ratios, lr, pt = [], [], []
    for r in range(rounds):                              # alternate who goes first
        if r % 2 == 0:
            a, b = rate(litert), rate(pytorch)
        else:
            b, a = rate(pytorch), rate(litert)
        lr.append(a)
        pt.append(b)
        ratios.append(a / b)
    ratio = statistics.median(ratios)
    print(f"{what}: interpreter {statistics.median(lr):,.0f} samples/s, PyTorch "
          f"{statistics.median(pt):,.0f} samples/s; interpreter/torch median of per-round "
          f"ratios {ratio:.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return ratio


def ncf_rates(folder: Path, sha: str, steps: int, rounds: int) -> float:
    import torch
    import torch.nn as nn

    from litert_models import artifacts
    from references.litert.interpreter import TrainingModel
    from references.ncf import data as ncf_data
    from references.ncf.config import NcfConfig
    from references.ncf.model import NeuMF
    from references.ncf.train import make_optimizer, train_step

    torch.set_num_threads(1)
    cfg = NcfConfig.smoke()
    split = ncf_data.prepare(cfg, None).split
    rng = np.random.default_rng(0)
    batches = []
    while len(batches) < steps:
        batches += [b for b in ncf_data.epoch_arrays(split, cfg.negatives_per_positive,
                                                     cfg.batch_size, rng)
                    if len(b[2]) == cfg.batch_size]
    batches = batches[:steps]
    artifact = artifacts.load(folder, sha)
    interpreter = TrainingModel(artifact.content, "ncf", threads=1)
    model = NeuMF(split.n_users, split.n_items, cfg.factors, cfg.mlp_layers)
    optimizer, loss_fn = make_optimizer(model, cfg), nn.BCEWithLogitsLoss()
    tensors = [tuple(torch.from_numpy(a) for a in b) for b in batches]

    def litert() -> None:
        for users, items, labels in batches:
            interpreter.train(users, items, labels)

    def pytorch() -> None:
        for users, items, labels in tensors:
            train_step(model, optimizer, loss_fn, users, items, labels)

    return compare(f"NeuMF smoke (batch {cfg.batch_size}, 1 thread)", litert, pytorch,
                   steps * cfg.batch_size, rounds)


def resnet_rates(folder: Path, sha: str, steps: int, rounds: int) -> float:
    import torch

    from litert_models import artifacts
    from references.litert.interpreter import TrainingModel
    from references.resnet import loop
    from references.resnet.config import ResnetConfig
    from references.resnet.train import TorchBackend

    torch.set_num_threads(1)
    cfg = ResnetConfig.smoke()
    data = loop.load(cfg, None, seed=1)
    batches = list(data.synthetic_batches(cfg.batch_size, None))[:steps]
    steps = len(batches)
    artifact = artifacts.load(folder, sha)
    interpreter = TrainingModel(artifact.content, "resnet", threads=1)
    torch_side = TorchBackend(cfg, data, "cpu", 1, seed=1)
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    lr = cfg.base_learning_rate * cfg.batch_size / 256 * 0.01     # a small step: no blow-up

    def litert() -> None:
        for images, labels in batches:
            interpreter.train_batch(images=images, labels=labels, lr=np.float32(lr))

    def pytorch() -> None:
        for batch in tensors:
            torch_side.train_step(batch, lr)

    return compare(f"ResNet smoke (ResNet-14 width 8, 32x32, batch {cfg.batch_size}, 1 thread)",
                   litert, pytorch, steps * cfg.batch_size, rounds)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_memory(folder: Path, sha: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(NO_TORCH)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)])}
        holder = ("import sys, time; from litert_models import artifacts; "
                  "from references.litert.interpreter import TrainingModel; "
                  f"a = artifacts.load({str(folder)!r}, {sha!r}); "
                  "m = TrainingModel(a.content, 'ncf', 1); m.state(); "
                  "print('ready', flush=True); time.sleep(60)")
        agent = [str(BIN / "mlperf-agent"), "start", "--broker", "mqtt://127.0.0.1:9",
                 "--name", "rss-probe", "--work-dir", str(Path(tmp) / "work")]
        for what, argv in (("idle mlperf-agent start (no broker reachable)", agent),
                           ("interpreter with the NCF smoke model loaded",
                            [sys.executable, "-c", holder])):
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            try:
                time.sleep(8)
                alive = proc.poll() is None
                print(f"{what}: {rss_mb(proc.pid):.1f} MB resident" if alive else
                      f"{what}: exited {proc.returncode} before it could be measured")
            finally:
                proc.kill()
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sha = build(Path(tmp), "ncf")
        ncf = ncf_rates(Path(tmp), sha, args.steps, args.rounds)
        resnet = resnet_rates(Path(tmp), build(Path(tmp), "resnet"), min(args.steps, 16),
                              args.rounds)
        idle_memory(Path(tmp), sha)
    print(f"interpreter/torch train-step throughput: NeuMF ratio {ncf:.2f}, ResNet ratio "
          f"{resnet:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
