"""The sentiment seq-CNN (references/sentiment/model.py) as a tf.Module that trains inside the
LiteRT interpreter with builtin ops only. Workstation side: imports TensorFlow.

The contract with the device (signature names, input and output names, shapes, dtypes):

* ``train(tokens int32[B, T], lengths int32[B], labels int32[B], weights float32[B])
  -> {"loss": float32[]}``: one Adam step, torch.optim.Adam's update (dense: every embedding
  row moves, as the reference's non-sparse nn.Embedding), on ``sum(weights * cross_entropy) /
  sum(weights)``. ``B`` (the config's batch_size) and ``T`` (sentiment_state.max_length: the
  longest batch the reference pads to) are static: a dynamic shape leaves shape ops in the
  gradient that only Flex has. A shorter review is 0-padded to T -- the reference's padding;
  windows past a review's end are masked out of the max, so a review scores the same at any T
  -- and a short batch is padded to B with weight-0 rows. With all weights 1 the loss is
  torch's ``CrossEntropyLoss()`` (mean).
* ``infer(tokens int32[N, T], lengths int32[N]) -> {"logits": float32[N, 2]}``, any N.
* ``save() -> {name: tensor}`` and ``restore(**same names) -> {"ok": float32[]}``: every state
  variable (sentiment_state.state_names): parameters (PyTorch's names, "." -> "__"), their
  Adam moments and ``adam_step``, as NCF's (litert_models/ncf.py; the device writes the
  checkpoint file, since the TF Save/Restore ops are Flex-only).

Builtin-only formulations (each checked by converting the train signature):

* the convolution as im2col: pad the time axis (k // 2 before, the rest after: paddle's
  context window, as the reference), k shifted tf.slice windows concatenated on the feature
  axis (tf.slice: its gradient is a PAD; python slicing's StridedSliceGrad is Flex-only), one
  matmul with the Conv1d weight transposed to [k * dim, filters];
* ELU as ``tf.where(x > 0, x, exp(min(x, 0)) - 1)`` (tf.nn.elu's gradient, EluGrad, is not a
  builtin; the min keeps the unused branch finite);
* the masked max over time as ``tf.where(valid, y, -inf)`` then ``tf.reduce_max``: its
  gradient (an equality mask divided by the number of maxima) is builtin, and splits ties
  evenly as torch's amax does;
* cross entropy as ``-sum(one_hot(label) * log_softmax(logits))``;
* padding_idx: the embedding's gradient (made dense: UNSORTED_SEGMENT_SUM) is multiplied by a
  mask that zeroes row 0, so the padding row keeps its zeros and zero Adam moments, as torch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from litert_models import sentiment_state
from litert_models.adam import AdamModule


class SeqCNN(AdamModule):
    """Embedding -> Conv1d per width (ELU) -> masked max over time -> concat -> linear, with
    its Adam state, as plain tf.Variables named as in PyTorch ("." -> "__")."""

    def __init__(self, cfg, vocab_rows: int, max_length: int,
                 init: dict[str, np.ndarray]) -> None:
        super().__init__(name="sentiment")
        self.filter_sizes, self.max_length = tuple(cfg.filter_sizes), int(max_length)
        self.vocab_rows = vocab_rows
        self.init_adam(cfg, sentiment_state.param_shapes(cfg, vocab_rows), init)
        mask = np.ones((vocab_rows, 1), np.float32)
        mask[0] = 0.0                                     # padding_idx: row 0 never learns
        self._padding_mask = tf.constant(mask)

    # -- the model ---------------------------------------------------------------------------
    def logits(self, tokens: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """tokens [n, T] (0-padded), lengths [n] -> logits [n, 2]."""
        p, t = self.params, self.max_length
        x = tf.gather(p["embedding__weight"], tokens)                  # [n, T, dim]
        dim = x.shape[-1]
        valid = tf.range(t)[None, :] < tf.maximum(lengths, 1)[:, None]   # [n, T]
        pooled = []
        for i, k in enumerate(self.filter_sizes):
            w, b = p[f"convs__{i}__weight"], p[f"convs__{i}__bias"]     # [F, dim, k], [F]
            filters = w.shape[0]
            padded = tf.pad(x, [[0, 0], [k // 2, k - 1 - k // 2], [0, 0]])   # [n, T+k-1, dim]
            cols = tf.concat([tf.slice(padded, [0, j, 0], [-1, t, -1]) for j in range(k)],
                             axis=2)                              # [n, T, k dim]
            kernel = tf.reshape(tf.transpose(w, [2, 1, 0]), [k * dim, filters])
            y = tf.matmul(tf.reshape(cols, [-1, k * dim]), kernel) + b
            y = tf.reshape(y, [-1, t, filters])
            y = tf.where(y > 0.0, y, tf.exp(tf.minimum(y, 0.0)) - 1.0)     # ELU (alpha 1)
            y = tf.where(valid[:, :, None], y, float("-inf"))
            pooled.append(tf.reduce_max(y, axis=1))                      # [n, F]
        out = tf.matmul(tf.concat(pooled, axis=1), p["fc__weight"], transpose_b=True)
        return out + p["fc__bias"]

    @staticmethod
    def weighted_cross_entropy(logits: tf.Tensor, labels: tf.Tensor,
                               weights: tf.Tensor) -> tf.Tensor:
        """sum(w * ce) / sum(w), ce = -log_softmax(logits)[label]. An all-padding batch gives
        0, not NaN."""
        onehot = tf.one_hot(labels, sentiment_state.CLASSES, dtype=tf.float32)
        ce = -tf.reduce_sum(onehot * tf.nn.log_softmax(logits, axis=1), axis=1)
        return tf.reduce_sum(weights * ce) / tf.maximum(tf.reduce_sum(weights), 1e-30)

    # -- one optimiser step ------------------------------------------------------------------
    def _train(self, tokens, lengths, labels, weights):
        names = list(self.params)
        with tf.GradientTape() as tape:
            loss = self.weighted_cross_entropy(self.logits(tokens, lengths), labels, weights)
        grads = dict(zip(names, tape.gradient(loss, [self.params[k] for k in names])))
        # padding_idx: row 0 never learns (IndexedSlices -> dense first: every row moves)
        grads["embedding__weight"] = (tf.convert_to_tensor(grads["embedding__weight"])
                                      * self._padding_mask)
        self.adam_update(grads)
        return {"loss": loss}

    # -- the signatures ----------------------------------------------------------------------
    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """train, infer, save, restore: the contract in the module docstring."""
        b, t = self.batch_size, self.max_length
        train = tf.function(self._train, input_signature=[
            tf.TensorSpec([b, t], tf.int32, name="tokens"),
            tf.TensorSpec([b], tf.int32, name="lengths"),
            tf.TensorSpec([b], tf.int32, name="labels"),
            tf.TensorSpec([b], tf.float32, name="weights")])

        def infer(tokens, lengths):
            return {"logits": self.logits(tokens, lengths)}

        infer = tf.function(infer, input_signature=[
            tf.TensorSpec([None, t], tf.int32, name="tokens"),
            tf.TensorSpec([None], tf.int32, name="lengths")])

        return self.signatures_with_state(train, infer)
