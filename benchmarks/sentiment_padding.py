"""How much convolution work padding costs the sentiment seq-CNN, without and with bucketing.

Work is counted, not timed: positions convolved (batch size x longest review, summed over an
epoch's batches) against positions that are words. The review lengths are a model, stated
here, not the real files (no aclImdb on this machine): aclImdb's training reviews have a median
of about 174 and a mean of about 234 words, modelled as a log-normal with those two figures,
clipped to 10..2,500 words; and, for the short rated snippets the side-by-side check ran on,
10,662 snippets of mean ~21 words (normal, sd 9, at least 1).

Measured (seed 0): aclImdb-like 5.65x padded -> 1.14x bucketed (80% of the work saved);
snippet-like 2.11x -> 1.03x (51% saved). Run: python benchmarks/sentiment_padding.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from references.sentiment.data import batch_order, conv_work  # noqa: E402

BATCH = 128                                   # the reference's BATCH_SIZE


def aclimdb_like(rng: np.random.Generator, n: int = 25_000) -> np.ndarray:
    median, mean = 174.0, 234.0
    sigma = math.sqrt(2 * math.log(mean / median))
    return np.clip(rng.lognormal(math.log(median), sigma, n), 10, 2500).astype(np.int64)


def snippets_like(rng: np.random.Generator, n: int = 10_662) -> np.ndarray:
    return np.maximum(1, rng.normal(21, 9, n)).astype(np.int64)


def main() -> int:
    for name, make in (("aclImdb-like (25,000, log-normal)", aclimdb_like),
                       ("snippet-like (10,662, normal)", snippets_like)):
        lengths = make(np.random.default_rng(0))
        plain_rng = np.random.default_rng(1)
        order = plain_rng.permutation(len(lengths))
        plain = [order[lo:lo + BATCH] for lo in range(0, len(order), BATCH)]
        padded, words = conv_work(lengths, plain)
        bucketed, _ = conv_work(lengths, batch_order(lengths, BATCH, np.random.default_rng(1)))
        print(f"{name}: padded to the longest of random batches {padded / words:.2f}x the word "
              f"positions; bucketed {bucketed / words:.3f}x; work saved "
              f"{1 - bucketed / padded:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
