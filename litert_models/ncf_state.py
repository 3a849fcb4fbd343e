"""NeuMF's state for the interpreter, in numpy only: names, shapes, the reference's
initialisation. Torch-free and TensorFlow-free: a device imports it to re-initialise a model
per run seed (through the ``restore`` signature) and to write checkpoints.

Names are the PyTorch state_dict's (references/ncf/model.py) with "." replaced by "__"
(``mlp.layers.0.weight`` -> ``mlp__layers__0__weight``), in state_dict order; layouts are
PyTorch's too (Linear weight [out, in], embedding [n, dim]). The optimiser's state adds, per
parameter, ``<name>__adam_m`` and ``<name>__adam_v`` (torch's exp_avg and exp_avg_sq), and one
``adam_step`` (float32 scalar: torch's step count).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ADAM_STEP = "adam_step"
#: The seed of the weights baked into a built model (a device restores its own per run).
DEFAULT_INIT_SEED = 0


def state_name(torch_name: str) -> str:
    """``mlp.layers.0.weight`` -> ``mlp__layers__0__weight``."""
    return torch_name.replace(".", "__")


def param_shapes(cfg, n_users: int, n_items: int) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in the order of NeuMF(n_users, n_items, ...).state_dict()."""
    factors, layers = cfg.factors, tuple(cfg.mlp_layers)
    shapes = {"gmf_user.weight": (n_users, factors), "gmf_item.weight": (n_items, factors),
              "mlp_user.weight": (n_users, layers[0] // 2),
              "mlp_item.weight": (n_items, layers[0] // 2)}
    for i, (a, b) in enumerate(itertools.pairwise(layers)):
        shapes[f"mlp.layers.{i}.weight"] = (b, a)
        shapes[f"mlp.layers.{i}.bias"] = (b,)
    shapes["final.weight"] = (1, layers[-1] + factors)
    shapes["final.bias"] = (1,)
    return {state_name(k): v for k, v in shapes.items()}


def state_names(param_names: list[str]) -> list[str]:
    """Every state variable: the parameters, their Adam moments, the step (save()'s order)."""
    return ([*param_names, *(f"{p}__adam_m" for p in param_names),
             *(f"{p}__adam_v" for p in param_names), ADAM_STEP])


def initial_params(cfg, n_users: int, n_items: int,
                   seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """The reference's initialisation (references/ncf/model.py), drawn with numpy: embeddings
    N(0, 0.01); MLP weights glorot-uniform; biases PyTorch's default U(-1/sqrt(fan_in),
    1/sqrt(fan_in)); the output weight lecun-uniform U(-sqrt(3/fan_in), sqrt(3/fan_in)).
    Same distributions as torch's, not the same numbers (different generators)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(cfg, n_users, n_items).items():
        if name.endswith(("_user__weight", "_item__weight")):
            value = rng.normal(0.0, 0.01, size=shape)
        elif name == "final__weight":
            value = _uniform(rng, math.sqrt(3.0 / shape[1]), shape)
        elif name.endswith("__weight"):                      # MLP layer [out, in]
            value = _uniform(rng, math.sqrt(6.0 / (shape[0] + shape[1])), shape)
        else:                                                # a bias: fan_in of its weight
            fan_in = out[name[:-len("bias")] + "weight"].shape[1]
            value = _uniform(rng, 1.0 / math.sqrt(fan_in), shape)
        out[name] = value.astype(np.float32)
    return out


def initial_state(cfg, n_users: int, n_items: int,
                  seed: int = DEFAULT_INIT_SEED) -> dict[str, np.ndarray]:
    """Everything ``restore`` takes for a fresh run: initial parameters, zero moments, step 0."""
    params = initial_params(cfg, n_users, n_items, seed)
    return fresh_state(params)


def fresh_state(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``params`` with Adam's moments at zero and its step at 0, in save()'s order: a run's
    start for any model (sentiment_state uses it too)."""
    state = dict(params)
    for suffix in ("__adam_m", "__adam_v"):
        state.update({k + suffix: np.zeros_like(v) for k, v in params.items()})
    state[ADAM_STEP] = np.zeros((), np.float32)
    return {k: state[k] for k in state_names(list(params))}


def _uniform(rng: np.random.Generator, limit: float, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-limit, limit, size=shape)
