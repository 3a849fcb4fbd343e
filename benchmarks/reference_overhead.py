"""What the reference harness costs: its training throughput against a bare loop of the same
model, in the same process, on the same in-memory batches.

"harness" is the shared epoch loop references.common.loop.train_epochs (MLPerf block/epoch
events to a real MLLog, bound checks per step, loss accumulated on the device) driving the
reference's own step (ResNet: lr_at per step, SGD with the reference's parameter groups; sentiment:
Adam, masked seq-CNN; Transformer: the rsqrt schedule per step, Adam, label-smoothed loss;
DeepSpeech2: SGD with Nesterov momentum, CTC, the gradient norm clipped in both loops). "bare"
is ``for batch in batches: loss = f(model(x)); backward; step`` on the same model class with
the same optimizer. The two alternate in rounds so drift hits both
alike; the figure is the median of the per-round ratios harness/bare (aim: >= 0.95), by wall
time and by process CPU time (steadier when other work shares the cores).

    python benchmarks/reference_overhead.py [--rounds 30] [--steps 4] [--threads 0] [--only NAME]

Many short rounds and their median resist the bursts of other work on a shared machine;
``--threads 1`` steadies it further. Measured on the 2-core project VM (shared, 1 thread, 30
rounds of 4 steps): ResNet 1.001 by wall time (1.028 by CPU time), sentiment 0.968 (0.975).
Transformer and DeepSpeech2, the same way but with another process holding the other core
(load 2.1-2.3; 20 rounds of 4 steps): Transformer-mini 0.994 by wall time (0.994 by CPU
time), DeepSpeech2 c8-2x96 1.021 (1.017); per-round ratios spread 0.75-1.38 under that load.
Mask R-CNN r14-fpn-tiny (batch 4, 128 px), same load: 0.988 over 30 rounds of 2 steps (CPU time
0.988), 0.958 over 15 rounds of 3 (0.955); per-round ratios 0.80-1.16, so the difference is
within this machine's noise. Minigo (the smoke net, one generation of 2 self-play games and 8
SGD steps, gating off), same load: 1.035 over 20 rounds (CPU time 0.995; per-round 0.56-2.14,
self-play's game lengths and the other core's load make single rounds noisy).

Models: ResNet-14 v1.5 at base width 16 on 64x64 images, batch 32 (the small variant); the
sentiment seq-CNN at embedding 128 / 128 filters on synthetic reviews, batch 64; the smoke
Transformer-mini and DeepSpeech2 on random batches of the smoke presets' shapes; Minigo's loop
(references/minigo/loop.py) against the same self-play and steps written plainly.
"""

from __future__ import annotations

import argparse
import contextlib
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
from references.deepspeech2.audio import collate  # noqa: E402
from references.deepspeech2.config import MODELS  # noqa: E402
from references.deepspeech2.model import DeepSpeech2  # noqa: E402
from references.maskrcnn.backbone import calibrate_frozen_batch_norm_  # noqa: E402
from references.maskrcnn.model import MaskRCNN, batch_images  # noqa: E402
from references.maskrcnn.train import lr_at as maskrcnn_lr_at  # noqa: E402
from references.maskrcnn.train import make_optimizer as maskrcnn_optimizer  # noqa: E402
from references.transformer.model import Transformer, smoothed_loss  # noqa: E402
from references.transformer.train import lr_at as transformer_lr_at  # noqa: E402

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


class Clipped:
    """The optimizer bare_rate steps, with the gradient norm clipped first and, when ``lr_at``
    is given, the learning rate set per step (times each group's ``lr_factor``): the parts of
    a reference's algorithm that belong in both loops."""

    def __init__(self, model, optimizer, max_norm: float, lr_at=None) -> None:
        self.model, self.opt, self.max_norm, self.lr_at = model, optimizer, max_norm, lr_at
        self.count = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        if self.lr_at is not None:
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.count) * group.get("lr_factor", 1.0)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
        self.opt.step()
        self.count += 1


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


def transformer_pair(steps: int):
    """Transformer-mini (vocabulary 256) on batches of 16 pairs of 12-32 tokens, the smoke
    preset's <= 512 tokens; Adam with the reference's betas, label-smoothed loss."""
    cfg = registry.get("transformer").make_config("smoke", {})
    gen = torch.Generator().manual_seed(0)

    def batch():
        source = torch.randint(3, 256, (16, int(torch.randint(12, 33, (1,), generator=gen))),
                               generator=gen)
        labels = torch.randint(3, 256, (16, int(torch.randint(12, 33, (1,), generator=gen))),
                               generator=gen)
        decoder_input = torch.zeros_like(labels)
        decoder_input[:, 1:] = labels[:, :-1]
        return source, decoder_input, labels
    batches = [batch() for _ in range(steps)]
    torch.manual_seed(0)
    base = Transformer(256, cfg.arch, cfg.dropout)

    def adam(model):
        return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(cfg.adam_beta1,
                                cfg.adam_beta2), eps=cfg.adam_epsilon)

    def loss_of(model, b):
        return smoothed_loss(model(b[0], b[1]), b[2], cfg.label_smoothing)

    def harness():
        model = copy.deepcopy(base)
        optimizer = adam(model)
        count = [0]

        def step(b):                           # as references/transformer/train.py's step
            for group in optimizer.param_groups:
                group["lr"] = transformer_lr_at(count[0], cfg)
            loss = loss_of(model, b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            count[0] += 1
            return loss.detach()
        return harness_rate(model, step, batches, 16 * steps, steps)

    def bare():
        model = copy.deepcopy(base)
        return bare_rate(model, adam(model), loss_of, batches, 16 * steps)
    return harness, bare


def deepspeech2_pair(steps: int):
    """The smoke DeepSpeech2 (8-channel convolutions, 2 x 96 GRU) on batches of 16 random
    0.5-1.4 s spectrograms with 20-character transcripts; SGD with Nesterov momentum, CTC
    summed over the batch, gradient norm clipped (the algorithm, so in both loops)."""
    cfg = registry.get("deepspeech2").make_config("smoke", {})
    gen = torch.Generator().manual_seed(0)
    freq_bins = int(cfg.sample_rate * cfg.window_s) // 2 + 1
    batches = []
    for _ in range(steps):
        specs = [torch.randn(freq_bins, int(torch.randint(50, 141, (1,), generator=gen)),
                             generator=gen) for _ in range(16)]
        batches.append(collate(specs, ["THE CAT SAT ON A MAT"] * 16))
    torch.manual_seed(0)
    base = DeepSpeech2(*MODELS[cfg.model], freq_bins=freq_bins)
    ctc = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)

    def loss_of(model, b):
        features, frames, targets, target_lengths, _ = b
        logits, lengths = model(features, frames)
        return ctc(logits.log_softmax(-1), targets, lengths, target_lengths) / features.shape[0]

    def sgd(model):
        return torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum,
                               nesterov=True, weight_decay=cfg.weight_decay)

    def harness():
        model = copy.deepcopy(base)
        optimizer = sgd(model)

        def step(b):                           # as references/deepspeech2/train.py's step
            loss = loss_of(model, b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_norm)
            optimizer.step()
            return loss.detach()
        return harness_rate(model, step, batches, 16 * steps, steps)

    def bare():
        model = copy.deepcopy(base)
        return bare_rate(model, Clipped(model, sgd(model), cfg.max_norm), loss_of, batches,
                         16 * steps)
    return harness, bare


def planted_images(n: int, size: int, gen: torch.Generator):
    """``n`` noisy size x size images, each with one or two filled rectangles of class 1 or 2
    (its colour), and their targets: boxes, labels and masks as coco.CocoInstances gives."""
    out = []
    for _ in range(n):
        image = 0.1 * torch.rand(3, size, size, generator=gen)
        boxes, labels, masks = [], [], []
        for _ in range(int(torch.randint(1, 3, (1,), generator=gen))):
            x1, y1 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=gen))
            w, h = (int(v) for v in torch.randint(size // 6, size // 2, (2,), generator=gen))
            label = int(torch.randint(1, 3, (1,), generator=gen))
            image[label - 1, y1:y1 + h, x1:x1 + w] = 0.9
            mask = torch.zeros(size, size, dtype=torch.uint8)
            mask[y1:y1 + h, x1:x1 + w] = 1
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(label)
            masks.append(mask)
        out.append((image, {"boxes": torch.tensor(boxes, dtype=torch.float32),
                            "labels": torch.tensor(labels), "masks": torch.stack(masks)}))
    return out


def maskrcnn_pair(steps: int):
    """The smoke Mask R-CNN (r14-fpn-tiny, from scratch) on batches of 4 planted 128 px images;
    SGD with the reference's bias groups, the schedule per step, gradients clipped (the smoke
    preset's), in both loops."""
    cfg = registry.get("maskrcnn").make_config("smoke", {})
    gen = torch.Generator().manual_seed(0)
    samples = planted_images(4 * steps, 128, gen)
    batches = [tuple(zip(*samples[k:k + 4])) for k in range(0, len(samples), 4)]
    torch.manual_seed(0)
    base = MaskRCNN(2, cfg.variant)
    calibrate_frozen_batch_norm_(base.backbone.body,
                                 batch_images([s[0] for s in samples[:4]], base.pixel_mean)[0])
    base.train()

    def loss_of(model, b):
        return sum(model(list(b[0]), list(b[1])).values())

    def harness():
        model = copy.deepcopy(base)
        optimizer = maskrcnn_optimizer(model, cfg)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        count = [0]

        def step(b):                           # as references/maskrcnn/train.py's step
            lr = maskrcnn_lr_at(count[0], cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_factor"]
            loss = loss_of(model, b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
            optimizer.step()
            count[0] += 1
            return loss.detach()
        return harness_rate(model, step, batches, 4 * steps, steps)

    def bare():
        model = copy.deepcopy(base)
        # A Mask R-CNN step's work depends on the weights (how many proposals survive), so
        # both loops take the same schedule for the comparison to be of the loops alone.
        return bare_rate(model, Clipped(model, maskrcnn_optimizer(model, cfg),
                                        cfg.grad_clip_norm,
                                        lambda k: maskrcnn_lr_at(k, cfg)),
                         loss_of, batches, 4 * steps)
    return harness, bare


def minigo_pair(steps: int):
    """The smoke preset's Minigo (its board, net, readouts and batch) for one generation of 2
    self-play games and ``steps`` SGD steps, gating off. "harness" is references.minigo.loop.run
    (MLLOG events, bound checks between games and steps, the games written as SGF, the model
    saved, and its evaluation by the raw policy on one 5x5 game: the reference's loop does
    these too); "bare" plays the same games and takes the same steps with the same functions,
    from the same weights and seed, so both make identical games and the figure compares the
    loops alone. Samples: positions trained on (batch x steps), the loop's throughput unit."""
    from dataclasses import replace

    from references.minigo import loop, model, selfplay
    from references.minigo.train import make_net

    smoke = registry.get("minigo").make_config("smoke", {})
    cfg = replace(smoke, games_per_generation=2, examples_per_generation=smoke.batch_size * steps,
                  gating_games_per_side=0, eval_readouts=0, max_epochs=1)
    never = Target("move_prediction_pct", 101.0, "max", "unreachable: one generation is timed")
    play = selfplay.SelfPlayConfig(
        board_size=cfg.board_size, komi=cfg.komi, readouts=cfg.readouts,
        resign_threshold=cfg.resign_threshold,
        resign_disabled_fraction=cfg.resign_disabled_fraction, history=cfg.history)
    torch.manual_seed(0)
    base = make_net(cfg, "cpu")
    with tempfile.TemporaryDirectory() as tmp:      # one game to evaluate on, as SGF
        record = selfplay.play_game(model.make_evaluator(base, np.random.default_rng(1)), play,
                                    np.random.default_rng(1))
        (Path(tmp) / "g.sgf").write_text(selfplay.to_sgf(record))
        from references.minigo import sgf
        holdout = type("Holdout", (), {"games": sgf.read_games(tmp, cfg.board_size)})()
    samples = cfg.batch_size * steps

    def nets():
        trainee, best = copy.deepcopy(base), copy.deepcopy(base)
        return trainee, best, model.make_optimizer(trainee, cfg.learning_rate)

    def harness():
        trainee, best, optimizer = nets()
        with tempfile.TemporaryDirectory() as tmp:
            import io
            log = MLLog(Path(tmp) / "mllog.txt", stdout=io.StringIO())
            started, cpu = time.perf_counter(), time.process_time()
            with contextlib.redirect_stderr(io.StringIO()):      # the loop's progress lines
                out = loop.run(cfg, log, never, loop.Nets(trainee, best, optimizer), holdout,
                               run_start_ms=0, out_dir=Path(tmp), rng=np.random.default_rng(0),
                               device="cpu")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            log.close()
        assert out.steps == steps and out.games == 2, out
        return samples / elapsed, samples / cpu

    def bare():
        trainee, best, optimizer = nets()
        rng = np.random.default_rng(0)
        started, cpu = time.perf_counter(), time.process_time()
        window = selfplay.ReplayWindow(cfg.window_games, cfg.window_positions)
        best_eval = model.make_evaluator(best, rng)
        for _ in range(cfg.games_per_generation):
            window.add(selfplay.play_game(best_eval, play, rng))
        for step in range(steps):
            lr = model.learning_rate(step, cfg.lr_boundaries_steps, cfg.learning_rates())
            for group in optimizer.param_groups:
                group["lr"] = lr
            planes, pi, z = (torch.from_numpy(a) for a in window.sample(cfg.batch_size, rng))
            model.train_step(trainee, optimizer, planes, pi, z)
        return (samples / (time.perf_counter() - started),
                samples / (time.process_time() - cpu))
    return harness, bare


PAIRS = {"resnet": ("resnet14-w16 (64x64, batch 32)", resnet_pair),
         "sentiment": ("sentiment seq-CNN (emb 128, batch 64)", sentiment_pair),
         "transformer": ("transformer-mini (vocab 256, 16 pairs of <= 32 tokens)",
                         transformer_pair),
         "deepspeech2": ("deepspeech2 c8-2x96 (batch 16, 0.5-1.4 s)", deepspeech2_pair),
         "maskrcnn": ("maskrcnn r14-fpn-tiny (batch 4, 128 px)", maskrcnn_pair),
         "minigo": ("minigo smoke net (2 self-play games + SGD steps)", minigo_pair)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only", action="append", choices=sorted(PAIRS),
                        help="measure this reference only (repeatable; default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or available_cpus())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.rounds} rounds of {args.steps} steps each")
    for key in args.only or PAIRS:
        name, make = PAIRS[key]
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
