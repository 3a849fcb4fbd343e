"""What every on-device training model shares, in builtin TFLite ops: torch.optim.Adam's state
and update, and the state signatures (``save`` all of it out, ``restore`` all of it in).

A model subclasses :class:`AdamModule`, calls :meth:`init_adam` with its parameters, computes
its gradients in ``_train`` and hands them to :meth:`adam_update`; :meth:`signatures_with_state`
adds ``save``/``restore`` to its ``train``/``infer``. State names follow
litert_models/ncf_state.py (``<param>__adam_m``, ``<param>__adam_v``, ``adam_step``).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from litert_models.ncf_state import ADAM_STEP, state_names
from litert_models.state_module import StateModule


def one_minus_pow(beta: float, t: tf.Tensor) -> tf.Tensor:
    """1 - beta**t in float32 as accurately as torch's double: -expm1(t ln beta), by its series
    where 1 - exp would cancel. (tf.pow on float32(0.999) is 1.3e-5 off in 1 - 0.999**1: a
    relative error that every early Adam update carried, 1.3e-7 per step at lr 0.02.)"""
    if beta == 0.0:
        return tf.ones_like(t)                     # 1 - 0**t, t >= 1
    x = t * math.log(beta)                         # ln(beta) in double, then float32
    xs = tf.maximum(x, -0.5)                       # the series' range (|term 11| < 1e-10)
    s = tf.ones_like(xs)
    for k in range(10, 1, -1):                     # expm1(x) = x (1 + x/2 (1 + x/3 (...)))
        s = 1.0 + xs * s / float(k)
    return tf.where(x > -0.5, -xs * s, 1.0 - tf.exp(x))


class AdamModule(StateModule):
    """A tf.Module whose plain tf.Variables train by torch.optim.Adam (amsgrad off, no weight
    decay), with its whole state in ``self.state`` in save()'s order."""

    def init_adam(self, cfg, shapes: dict[str, tuple[int, ...]],
                  init: dict[str, np.ndarray]) -> None:
        """Parameters from ``init`` (float32, reshaped to ``shapes``), zero moments, step 0;
        the optimiser's settings from the reference's config."""
        self.lr, self.beta1, self.beta2 = cfg.learning_rate, cfg.adam_beta1, cfg.adam_beta2
        self.eps, self.batch_size = cfg.adam_epsilon, cfg.batch_size
        self.params = {k: tf.Variable(np.asarray(init[k], np.float32).reshape(s), name=k)
                       for k, s in shapes.items()}
        self.adam_m = {k: tf.Variable(tf.zeros(s), name=f"{k}__adam_m") for k, s in shapes.items()}
        self.adam_v = {k: tf.Variable(tf.zeros(s), name=f"{k}__adam_v") for k, s in shapes.items()}
        self.adam_step = tf.Variable(0.0, name=ADAM_STEP)     # float32, as the math wants
        every = {**self.params, **{f"{k}__adam_m": v for k, v in self.adam_m.items()},
                 **{f"{k}__adam_v": v for k, v in self.adam_v.items()}, ADAM_STEP: self.adam_step}
        self.state = {k: every[k] for k in state_names(list(shapes))}

    def adam_update(self, grads: dict[str, tf.Tensor]) -> None:
        """One step: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
        p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), every row (dense, as torch)."""
        t = self.adam_step.assign_add(1.0)
        step_size = self.lr / one_minus_pow(self.beta1, t)
        bc2_sqrt = tf.sqrt(one_minus_pow(self.beta2, t))
        for k, g in grads.items():
            g = tf.convert_to_tensor(g)          # IndexedSlices -> dense: every row moves
            m = self.adam_m[k].assign(self.beta1 * self.adam_m[k] + (1.0 - self.beta1) * g)
            v = self.adam_v[k].assign(self.beta2 * self.adam_v[k] + (1.0 - self.beta2) * g * g)
            self.params[k].assign_sub(step_size * m / (tf.sqrt(v) / bc2_sqrt + self.eps))
