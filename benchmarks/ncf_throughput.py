"""NCF training-step throughput: our reference code against a bare PyTorch loop.

"ours" is references.ncf (NeuMF, make_optimizer, train_step, and the loss accumulation of
train.py's loop); "bare" is the same architecture written inline in a dozen lines with the same
optimizer settings. Both run in this process on the same batches, alternating in blocks so that
thermal or frequency drift hits both alike. Prints samples/s for each and the ratio ours/bare
(the aim is >= 0.95: the reference must not be slower than the model it implements).

    python benchmarks/ncf_throughput.py [--users 6040 --items 3706] [--batch 2048]
                                        [--steps 25] [--rounds 12] [--threads 0]

Defaults are ml-1m-sized (a quick run); --users 138493 --items 26744 is ml-20m.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")    # as references.common.runtime sets it

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from references.common.runtime import available_cpus  # noqa: E402
from references.ncf.config import NcfConfig  # noqa: E402
from references.ncf.model import NeuMF  # noqa: E402
from references.ncf.train import make_optimizer, train_step  # noqa: E402


class BareNeuMF(nn.Module):
    """NeuMF with nothing but PyTorch defaults."""

    def __init__(self, n_users, n_items, factors, layers):
        super().__init__()
        self.mf_u, self.mf_i = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        self.mlp_u = nn.Embedding(n_users, layers[0] // 2)
        self.mlp_i = nn.Embedding(n_items, layers[0] // 2)
        self.mlp = nn.Sequential(*[m for a, b in zip(layers[:-1], layers[1:])
                                   for m in (nn.Linear(a, b), nn.ReLU())])
        self.out = nn.Linear(layers[-1] + factors, 1)

    def forward(self, u, i):
        x = self.mlp(torch.cat((self.mlp_u(u), self.mlp_i(i)), 1))
        return self.out(torch.cat((self.mf_u(u) * self.mf_i(i), x), 1)).squeeze(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=6040)
    p.add_argument("--items", type=int, default=3706)
    p.add_argument("--batch", type=int, default=NcfConfig.full().batch_size)
    p.add_argument("--steps", type=int, default=25, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=12, help="timed blocks per side")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads or available_cpus())
    cfg = NcfConfig.full()
    torch.manual_seed(0)
    batches = [(torch.randint(0, args.users, (args.batch,)),
                torch.randint(0, args.items, (args.batch,)),
                (torch.rand(args.batch) < 0.2).float()) for _ in range(16)]

    ours = NeuMF(args.users, args.items, cfg.factors, cfg.mlp_layers)
    ours_opt, ours_loss = make_optimizer(ours, cfg), nn.BCEWithLogitsLoss()
    bare = BareNeuMF(args.users, args.items, cfg.factors, cfg.mlp_layers)
    bare_opt = torch.optim.Adam(bare.parameters(), lr=cfg.learning_rate,
                                betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon,
                                fused=bool(ours_opt.defaults.get("fused")))
    bare_loss = nn.BCEWithLogitsLoss()

    def run_ours(n: int) -> None:                      # train.py's inner loop, per step
        loss_sum = torch.zeros(())
        for k in range(n):
            users, items, labels = batches[k % len(batches)]
            loss_sum += train_step(ours, ours_opt, ours_loss, users, items, labels)
        loss_sum.item()

    def run_bare(n: int) -> None:
        for k in range(n):
            users, items, labels = batches[k % len(batches)]
            loss = bare_loss(bare(users, items), labels)
            bare_opt.zero_grad()
            loss.backward()
            bare_opt.step()
        loss.item()

    run_ours(5)                                        # warm-up: allocations, kernels
    run_bare(5)
    times = {"ours": [], "bare": []}
    for r in range(args.rounds):
        order = (("ours", run_ours), ("bare", run_bare))
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            t = time.perf_counter()
            fn(args.steps)
            times[name].append(time.perf_counter() - t)

    rate = {k: args.steps * args.batch / statistics.median(v) for k, v in times.items()}
    # Each round's two blocks ran back to back: their ratio cancels slow drift (and a busy
    # neighbour), so the headline is the median of the per-round ratios.
    paired = sorted(b / o for o, b in zip(times["ours"], times["bare"]))
    print(f"NCF train step, {args.users:,} users x {args.items:,} items, batch {args.batch}, "
          f"{torch.get_num_threads()} thread(s), fused Adam: {ours_opt.defaults.get('fused')}")
    print(f"ours: {rate['ours']:,.0f} samples/s   bare: {rate['bare']:,.0f} samples/s   "
          f"(medians of {args.rounds} blocks of {args.steps} steps)")
    print(f"ratio ours/bare: {statistics.median(paired):.3f}  (per-round ratios "
          f"{paired[0]:.3f} .. {paired[-1]:.3f})")


if __name__ == "__main__":
    main()
