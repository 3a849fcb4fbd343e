"""NCF in the LiteRT interpreter: the run of references/ncf/loop.py -- the same data, timed
window, evaluation, MLLOG events and result.json as the PyTorch reference -- with a .tflite
NeuMF (built by litert_models/ncf.py) as the model.

Each run starts from its own seed: the weights are drawn by the reference's initialisers
(litert_models/ncf_state.py) and put in with ``restore``, with Adam's moments and step at 0,
so the artifact's stored weights never decide a run. The artifact must have been built for this
run's config and data (its label says the users, items, batch size and hyperparameters); a
mismatch is one line before anything is timed.
"""

from __future__ import annotations

import numpy as np

from litert_models.ncf_state import initial_state
from references.common.errors import ConfigError
from references.litert.interpreter import TrainingModel
from references.ncf import data as ncf_data
from references.ncf.config import NcfConfig

# What must match between the artifact's label and the run (label key -> config field).
MUST_MATCH = ("factors", "mlp_layers", "batch_size", "learning_rate", "adam_beta1",
              "adam_beta2", "adam_epsilon")


class LiteRTBackend:
    """NeuMF in the interpreter (loop.Backend)."""

    def __init__(self, model: TrainingModel, cfg: NcfConfig, description: str) -> None:
        self.model, self.cfg, self.description = model, cfg, description

    def batches(self, split: ncf_data.Split, rng: np.random.Generator):
        return ncf_data.epoch_arrays(split, self.cfg.negatives_per_positive,
                                     self.cfg.batch_size, rng)

    def train_step(self, users, items, labels) -> float:
        return self.model.train(users, items, labels)

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.model.infer(users, items)


def check_config(label: dict, cfg: NcfConfig) -> None:
    """ConfigError naming the first difference between the artifact's config and the run's
    (checked before anything is logged)."""
    check_built_config(label, cfg, "ncf", MUST_MATCH)


def check_built_config(label: dict, cfg, benchmark: str, keys: tuple[str, ...]) -> None:
    """ConfigError unless the artifact is ``benchmark``'s, built with the run's value of each
    of ``keys``."""
    if label.get("benchmark") != benchmark:
        raise ConfigError(f"the model artifact is for {label.get('benchmark')!r}, not "
                          f"{benchmark}")
    built = label.get("config") or {}
    for key in keys:
        want = getattr(cfg, key)
        have = built.get(key)
        same = (list(have) == list(want)) if isinstance(want, tuple) and isinstance(
            have, (list, tuple)) else have == want
        if not same:
            raise ConfigError(f"the model artifact was built with {key}={have!r}, this run has "
                              f"{want!r}: build one for this config (mlperf-controller models "
                              f"build --runtime litert --benchmark {benchmark} --set ...)")


def check_sizes(label: dict, n_users: int, n_items: int) -> None:
    """ConfigError unless the artifact's embeddings are for this run's data (known once the
    data is prepared, in init)."""
    sizes = label.get("sizes") or {}
    if (sizes.get("users"), sizes.get("items")) != (n_users, n_items):
        raise ConfigError(f"the model artifact is for {sizes.get('users')} users x "
                          f"{sizes.get('items')} items; this run's data has {n_users:,} x "
                          f"{n_items:,}: build one for this data")


def make_backend(model: TrainingModel, label: dict, cfg: NcfConfig, seed: int,
                 split: ncf_data.Split, description: str) -> LiteRTBackend:
    """The backend with the run's seeded initial weights loaded."""
    check_sizes(label, split.n_users, split.n_items)
    if model.batch_size != cfg.batch_size:
        raise ConfigError(f"the model trains batches of {model.batch_size}, the run asks for "
                          f"{cfg.batch_size}")
    state = initial_state(cfg, split.n_users, split.n_items, seed)
    model.load_state(state)
    return LiteRTBackend(model, cfg, description)
