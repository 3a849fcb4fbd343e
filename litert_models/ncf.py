"""NeuMF (references/ncf/model.py) as a tf.Module that trains inside the LiteRT interpreter with
builtin ops only. Workstation side: imports TensorFlow.

The contract with the device (signature names, input and output names, shapes, dtypes):

* ``train(users int32[B], items int32[B], labels float32[B], weights float32[B])
  -> {"loss": float32[]}``: one Adam step, torch.optim.Adam's update (dense: every row of every
  embedding moves, as in the reference), on ``sum(weights * bce_with_logits) / sum(weights)``.
  ``B`` is the config's batch_size and static (a dynamic batch leaves shape ops in the gradient
  that only Flex has): a short last batch is padded to B with weight-0 rows. With all weights
  1 the loss is torch's ``BCEWithLogitsLoss()`` (mean).
* ``infer(users int32[N], items int32[N]) -> {"logits": float32[N]}``, any N.
* ``save() -> {name: tensor}``: every state variable (ncf_state.state_names): the parameters
  (PyTorch's state_dict names, "." -> "__"), ``<param>__adam_m``, ``<param>__adam_v`` and
  ``adam_step`` (float32 scalar).
* ``restore(**same names) -> {"ok": float32[]}``: assigns all of them.

Checkpoints: issue 14 asks for save/restore "to and from a checkpoint file", but the ops that
write files (tf.raw_ops.Save/Restore) exist only as Flex ops, which the device runtimes refuse.
So ``save`` returns the state and the device writes the file with numpy (``np.savez``), and
``restore`` takes the arrays read back; a device also re-initialises a model per run seed this
way (ncf_state.initial_state).

Builtin-only recipes (measured, issue 14's notes): ReLU as ``tf.maximum(x, 0.)`` (the gradient
of tf.nn.relu needs a Flex op); the BCE written out; Adam by hand with assign ops; the embedding
gradients (IndexedSlices) made dense, which converts to UNSORTED_SEGMENT_SUM. Adam's bias
corrections 1 - beta**t come from adam.one_minus_pow: float32 tf.pow was measurably off.

Inputs a device must keep in range: user ids < sizes["users"], item ids < sizes["items"] of the
artifact's label. ``adam_step`` is float32 (POW and friends take floats): it counts exactly to
2**24 steps, past any reference's run (ml-20m full: ~1M).
"""

from __future__ import annotations


import numpy as np
import tensorflow as tf

from litert_models import ncf_state
from litert_models.adam import AdamModule


class NeuMF(AdamModule):
    """logit(user, item) = w . [gmf_user * gmf_item ; MLP([mlp_user ; mlp_item])] + b, with its
    Adam state, as plain tf.Variables named as in PyTorch ("." -> "__")."""

    def __init__(self, cfg, n_users: int, n_items: int, init: dict[str, np.ndarray]) -> None:
        super().__init__(name="ncf")
        self.n_layers = len(cfg.mlp_layers) - 1
        self.init_adam(cfg, ncf_state.param_shapes(cfg, n_users, n_items), init)

    # -- the model ---------------------------------------------------------------------------
    def logits(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        p = self.params
        gmf = tf.gather(p["gmf_user__weight"], users) * tf.gather(p["gmf_item__weight"], items)
        x = tf.concat([tf.gather(p["mlp_user__weight"], users),
                       tf.gather(p["mlp_item__weight"], items)], axis=1)
        for i in range(self.n_layers):
            w, b = p[f"mlp__layers__{i}__weight"], p[f"mlp__layers__{i}__bias"]
            # tf.maximum, not tf.nn.relu: ReluGrad is Flex-only. (At exactly 0 the gradient
            # passes where torch's relu blocks it: a measure-zero difference.)
            x = tf.maximum(tf.matmul(x, w, transpose_b=True) + b, 0.0)
        out = tf.matmul(tf.concat([gmf, x], axis=1), p["final__weight"], transpose_b=True)
        return tf.reshape(out + p["final__bias"], [-1])

    @staticmethod
    def weighted_bce(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """sum(w * bce) / sum(w), bce = max(z, 0) - z y + log(1 + exp(-|z|)) (torch's stable
        form). An all-padding batch gives 0, not NaN."""
        z = logits
        bce = tf.maximum(z, 0.0) - z * labels + tf.math.log(1.0 + tf.exp(-tf.abs(z)))
        return tf.reduce_sum(weights * bce) / tf.maximum(tf.reduce_sum(weights), 1e-30)

    # -- one optimiser step ------------------------------------------------------------------
    def _train(self, users, items, labels, weights):
        names = list(self.params)
        with tf.GradientTape() as tape:
            loss = self.weighted_bce(self.logits(users, items), labels, weights)
        grads = tape.gradient(loss, [self.params[k] for k in names])
        self.adam_update(dict(zip(names, grads)))
        return {"loss": loss}

    # -- the signatures ----------------------------------------------------------------------
    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """train, infer, save, restore: the contract in the module docstring."""
        batch = [self.batch_size]
        train = tf.function(self._train, input_signature=[
            tf.TensorSpec(batch, tf.int32, name="users"),
            tf.TensorSpec(batch, tf.int32, name="items"),
            tf.TensorSpec(batch, tf.float32, name="labels"),
            tf.TensorSpec(batch, tf.float32, name="weights")])

        def infer(users, items):
            return {"logits": self.logits(users, items)}

        infer = tf.function(infer, input_signature=[
            tf.TensorSpec([None], tf.int32, name="users"),
            tf.TensorSpec([None], tf.int32, name="items")])

        return self.signatures_with_state(train, infer)
