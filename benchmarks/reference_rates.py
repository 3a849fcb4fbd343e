"""How fast each size of the newest references trains here: Mask R-CNN images per second of
training per variant (at the size its preset trains: 800 px for r50-fpn, 512 for r26-fpn-lite,
128 for r14-fpn-tiny), and Minigo self-play positions per second with the reference network
and search.

    python benchmarks/reference_rates.py [--steps 3] [--threads 1] [--only maskrcnn|minigo]

A rate is the median over ``--steps`` timed steps after one warm-up step (Mask R-CNN: one
training step on a batch of 2 planted images; Minigo: one self-play game, positions = moves
played). Figures are for the machine they ran on; nothing here is compared with a target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from reference_overhead import planted_images  # noqa: E402
from references import registry  # noqa: E402
from references.maskrcnn.backbone import calibrate_frozen_batch_norm_  # noqa: E402
from references.maskrcnn.model import MaskRCNN, batch_images  # noqa: E402
from references.maskrcnn.train import make_optimizer  # noqa: E402

SIZES_PX = {"r50-fpn": 800, "r26-fpn-lite": 512, "r14-fpn-tiny": 128}


def maskrcnn_rates(steps: int) -> None:
    cfg = registry.get("maskrcnn").make_config("smoke", {})
    for variant, size in SIZES_PX.items():
        gen = torch.Generator().manual_seed(0)
        samples = planted_images(2 * (steps + 1), size, gen)
        torch.manual_seed(0)
        model = MaskRCNN(2, variant)
        calibrate_frozen_batch_norm_(model.backbone.body,
                                     batch_images([s[0] for s in samples[:2]],
                                                  model.pixel_mean)[0])
        model.train()
        optimizer = make_optimizer(model, cfg)
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * group["lr_factor"]
        times = []
        for k in range(steps + 1):
            images, targets = zip(*samples[2 * k:2 * k + 2])
            started = time.perf_counter()
            loss = sum(model(list(images), list(targets)).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        step_s = statistics.median(times[1:])
        print(f"maskrcnn {variant} at {size}x{size} px, batch 2: {2 / step_s:.2f} images/s "
              f"({step_s:.2f} s a step, median of {steps}); {model.describe()}")


def minigo_rates(games: int, max_moves: int = 24) -> None:
    """Self-play with the reference network (DualNet's 9x9 sizes) and the reference's search
    settings (SelfPlayConfig defaults: 200 readouts, 8 leaves a network call), ``max_moves``
    moves of each game (a whole game at 200 readouts takes minutes here)."""
    import numpy as np

    from references.minigo import selfplay
    from references.minigo.model import DualNet, make_evaluator

    torch.manual_seed(0)
    net = DualNet(9)
    config = selfplay.SelfPlayConfig()
    rng = np.random.default_rng(0)
    net_eval = make_evaluator(net, rng)
    rates = []
    for k in range(games + 1):
        started = time.perf_counter()
        record = selfplay.play_game(net_eval, config, rng, max_moves=max_moves)
        if k:                                   # the first game warms up
            rates.append(len(record.moves) / (time.perf_counter() - started))
    print(f"minigo reference network ({net.describe()}), {config.readouts} readouts a move: "
          f"{statistics.median(rates):.2f} self-play positions/s (median of {games} games of "
          f"{max_moves} moves)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("maskrcnn", "minigo"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.only in (None, "maskrcnn"):
        maskrcnn_rates(args.steps)
    if args.only in (None, "minigo"):
        minigo_rates(args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
