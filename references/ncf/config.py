"""NCF configuration: one typed dataclass and its three presets.

full() and reduced() carry the hyperparameters of the MLPerf training v0.5 reference
(mlperf/training, recommendation/pytorch): run_and_time.sh runs
``ncf.py ml-20m -l 0.0005 -b 2048 --layers 256 256 128 64 -f 64 --threshold 0.635``;
ncf.py's defaults add ``--epochs 20``, ``--negative-samples 4``, ``--topk 10`` and Adam with
betas (0.9, 0.999), eps 1e-8; convert.py drops users with fewer than MIN_RATINGS = 20 ratings and
samples 999 evaluation negatives (``--negatives 999``, its ``--seed`` defaulting to 0).

Torch-free: the agent builds and validates configs without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from references.common.errors import ConfigError

DATASETS = ("synthetic", "ml-20m", "ml-1m")


@dataclass(frozen=True)
class NcfConfig:
    # What a closed NCF submission may choose (MLPerf training rules' hyperparameter table: the
    # batch size and the Adam settings); everything else is the reference's.
    CLOSED_TUNABLE: ClassVar[tuple[str, ...]] = (
        "batch_size", "learning_rate", "adam_beta1", "adam_beta2", "adam_epsilon")
    # Upper bounds on sizes and counts a job may ask for (each element, for tuples): far past
    # any sane run, short of what would only exhaust a device's memory or time.
    LIMITS: ClassVar[dict[str, float]] = {
        "min_ratings": 10**6, "negatives_per_positive": 1000, "eval_negatives": 10**5,
        "factors": 4096, "mlp_layers": 16384, "batch_size": 2**20, "topk": 1000,
        "max_epochs": 10**4, "epochs_to_converge": 10**4, "synthetic_users": 10**6,
        "synthetic_items": 10**6, "synthetic_factors": 1024, "synthetic_min_interactions": 10**5,
        "synthetic_max_interactions": 10**5, "threads": 1024}

    # -- data -------------------------------------------------------------------------------
    # Which data: "synthetic" (smoke), or the MovieLens folder name an agent looks for under its
    # data root. The files in --data decide the format (ratings.csv or ratings.dat).
    dataset: str = "ml-20m"
    min_ratings: int = 20                 # convert.py MIN_RATINGS: fewer ratings -> user dropped
    negatives_per_positive: int = 4       # ncf.py -n/--negative-samples
    eval_negatives: int = 999             # convert.py --negatives 999
    data_seed: int = 0                    # convert.py --seed 0: one evaluation set for all runs

    # -- model (NeuMF) ----------------------------------------------------------------------
    factors: int = 64                     # ncf.py -f: GMF embedding size
    mlp_layers: tuple[int, ...] = (256, 256, 128, 64)  # ncf.py --layers; [0] = 2 x MLP embedding

    # -- optimisation -------------------------------------------------------------------------
    batch_size: int = 2048                # ncf.py -b
    learning_rate: float = 0.0005         # ncf.py -l
    adam_beta1: float = 0.9               # ncf.py: beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8

    # -- evaluation and stopping -------------------------------------------------------------
    topk: int = 10                        # ncf.py -k/--topk: HR@10
    max_epochs: int = 20                  # ncf.py -e/--epochs
    max_steps: int | None = None          # a reduced run's bound (optimizer steps)
    max_seconds: float | None = None      # a reduced run's bound (wall time since run_start)

    # -- projection (reduced mode) -------------------------------------------------------------
    # "For context, we expect NCF to converge in about 8 to 14 epochs" -- MLPerf training
    # working group, v0.5 rules discussion (github.com/mlcommons/training_policies/issues/77,
    # 2018-09-14). The midpoint, 11, times the measured epoch time is the projection.
    epochs_to_converge: float = 11.0

    # -- synthetic data (smoke only) ------------------------------------------------------------
    synthetic_users: int = 1000
    synthetic_items: int = 1000
    synthetic_factors: int = 8            # rank of the planted user/item factors
    synthetic_min_interactions: int = 15  # per user, uniform in [min, max]: some fall under
    synthetic_max_interactions: int = 45  # min_ratings and exercise the filter

    # -- machine -------------------------------------------------------------------------------
    threads: int = 0                      # torch intra-op threads; 0 = the CPUs we may use
    device: str = "auto"                  # "auto" (cuda when available, else cpu), "cpu", "cuda"

    @classmethod
    def full(cls) -> NcfConfig:
        """Train to HR@10 0.635 on ml-20m with the v0.5 reference hyperparameters."""
        return cls()

    @classmethod
    def reduced(cls) -> NcfConfig:
        """The full model and data, bounded: one epoch or five minutes, whichever comes first;
        the agent usually narrows it further with --max-steps/--max-seconds."""
        return replace(cls(), max_epochs=1, max_seconds=300.0)

    @classmethod
    def smoke(cls) -> NcfConfig:
        """A tiny NeuMF on planted-factor synthetic data: reaches its own target in seconds."""
        return replace(
            cls(), dataset="synthetic", eval_negatives=99, factors=8, mlp_layers=(32, 16, 8),
            batch_size=1024, learning_rate=0.02, max_epochs=10)

    def data_folder(self) -> str | None:
        """The folder under an agent's data root that --data should name (None: no data)."""
        return None if self.dataset == "synthetic" else self.dataset

    def validate(self) -> NcfConfig:
        """Refuse values no run could use; returns self so presets chain."""
        checks = [
            (self.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}"),
            (self.min_ratings >= 2, "min_ratings must be >= 2 (one rating to train, one to test)"),
            (self.negatives_per_positive >= 1, "negatives_per_positive must be >= 1"),
            (self.eval_negatives >= 1, "eval_negatives must be >= 1"),
            (self.factors >= 1, "factors must be >= 1"),
            (len(self.mlp_layers) >= 1 and min(self.mlp_layers) >= 1,
             "mlp_layers must be positive sizes"),
            (self.mlp_layers[0] % 2 == 0,
             "mlp_layers[0] must be even (user and item MLP embeddings are half each)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "adam betas must be in [0, 1)"),
            (self.adam_epsilon > 0, "adam_epsilon must be > 0"),
            (self.topk >= 1, "topk must be >= 1"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0"),
            (self.epochs_to_converge > 0, "epochs_to_converge must be > 0"),
            (min(self.synthetic_users, self.synthetic_items, self.synthetic_factors) >= 1,
             "synthetic sizes must be >= 1"),
            (1 <= self.synthetic_min_interactions <= self.synthetic_max_interactions
             < self.synthetic_items,
             "need 1 <= synthetic_min_interactions <= synthetic_max_interactions "
             "< synthetic_items"),
            (self.threads >= 0, "threads must be >= 0 (0 = automatic)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self
