"""ResNet v1.5 (references/resnet/model.py) as a tf.Module that trains inside the LiteRT
interpreter with builtin ops only. Workstation side: imports TensorFlow.

The contract with the device (signature names, input and output names, shapes, dtypes):

* ``train(images float32[B, 3, S, S], labels int32[B], weights float32[B], lr float32[])
  -> {"loss": float32[]}``: one step of torch.optim.SGD (momentum, dampening 0, weight decay
  added to the gradient of every parameter but batch norm's) at learning rate ``lr`` (the host
  keeps the reference's schedule) on ``sum(weights * cross_entropy) / sum(weights)``, with
  batch norm in training mode. Images are the reference's arrays (channels first, means
  subtracted). ``B`` is static (a dynamic batch leaves Flex-only shape ops in the gradient): a
  short batch is padded with weight-0 rows, which the batch statistics leave out too (they are
  weighted), so the step is torch's on the real rows.
* ``infer(images float32[N, 3, S, S]) -> {"logits": float32[N, classes]}``, any N, batch norm
  on the running statistics (torch's eval mode).
* ``save() -> {name: tensor}`` and ``restore(**same names) -> {"ok": float32[]}``: every state
  tensor (resnet_state.state_names): parameters and running statistics under PyTorch's names
  ("." -> "__"), and the momentum buffers.

Builtin-only formulations (the gradients of conv2d, max pooling and ReLU are Flex-only):

* convolution as im2col: tf.pad, then one tf.slice window per kernel offset (its gradient is a
  PAD; Python slicing's StridedSliceGrad is Flex-only), a stride taken by reshaping the window
  to [.., out, stride, ..] and slicing offset 0, the windows concatenated on the channel axis
  and one matmul with the kernel laid out [kh * kw * in, out]; a 1x1 convolution is a matmul;
* batch norm by hand: mean and biased variance over (batch, height, width), weighted by the
  rows' weights; the running statistics move as torch's (momentum 0.1, unbiased variance);
* ReLU as ``tf.maximum(x, 0.)``; the 3x3/2 max pool as the maximum of its nine windows (its
  input follows a ReLU, so padding with 0 is padding with -inf); global average pooling as
  ``reduce_mean``; cross entropy as ``-sum(target * log_softmax(logits))`` with the config's
  label smoothing in the target.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from litert_models import resnet_state
from litert_models.resnet_state import BN_EPS, BN_MOMENTUM, MOMENTUM, Conv
from litert_models.state_module import StateModule


def _strided(x: tf.Tensor, start: int, count: int, stride: int, axis: int) -> tf.Tensor:
    """x[..., start : start + stride * count : stride, ...] on ``axis`` (1 or 2 of NHWC) with
    tf.slice and reshape only. ``x`` must reach start + stride * count on that axis."""
    begin, size = [0, 0, 0, 0], [-1, -1, -1, -1]
    begin[axis], size[axis] = start, stride * count
    window = tf.slice(x, begin, size)
    if stride == 1:
        return window
    shape = window.shape.as_list()
    n = -1 if shape[0] is None else shape[0]
    split = [n] + shape[1:axis] + [count, stride] + shape[axis + 1:]
    begin5, size5 = [0] * 5, [-1] * 5
    size5[axis + 1] = 1
    picked = tf.slice(tf.reshape(window, split), begin5, size5)
    return tf.reshape(picked, [n] + shape[1:axis] + [count] + shape[axis + 1:])


def windows(x: tf.Tensor, kernel: int, stride: int, pad: int, fill: float = 0.0
            ) -> list[tf.Tensor]:
    """The kernel x kernel shifted windows of NHWC ``x`` padded by ``pad`` (each [n, Ho, Wo,
    C]), in row-major kernel order: what a convolution or pooling reads at each offset."""
    h, w = x.shape[1], x.shape[2]
    ho, wo = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    extra = stride - 1                    # so that every strided window fits inside
    padded = tf.pad(x, [[0, 0], [pad, pad + extra], [pad, pad + extra], [0, 0]],
                    constant_values=fill)
    rows = [_strided(padded, i, ho, stride, 1) for i in range(kernel)]
    return [_strided(r, j, wo, stride, 2) for r in rows for j in range(kernel)]


class ResNet(StateModule):
    """ResNet v1.5 with its SGD momentum state, as plain tf.Variables named as in PyTorch."""

    def __init__(self, cfg, classes: int, init: dict[str, np.ndarray]) -> None:
        super().__init__(name="resnet")
        self.cfg, self.classes = cfg, classes
        self.batch_size, self.size = cfg.batch_size, cfg.image_size
        self.stem, self.blocks, _ = resnet_state.layout(cfg.arch, cfg.base_width)
        params = resnet_state.param_shapes(cfg, classes)
        buffers = resnet_state.buffer_shapes(cfg, classes)
        self.params = {k: tf.Variable(np.asarray(init[k], np.float32).reshape(s), name=k)
                       for k, s in params.items()}
        self.buffers = {k: tf.Variable(np.asarray(init[k], np.float32).reshape(s), name=k)
                        for k, s in buffers.items()}
        self.momentum = {k: tf.Variable(tf.zeros(s), name=k + MOMENTUM) for k, s in params.items()}
        every = {**self.params, **self.buffers,
                 **{k + MOMENTUM: v for k, v in self.momentum.items()}}
        self.state = {k: every[k] for k in resnet_state.state_names(cfg, classes)}

    # -- layers ------------------------------------------------------------------------------
    def conv(self, x: tf.Tensor, conv: Conv) -> tf.Tensor:
        """Conv2d (no bias, padding kernel // 2) as im2col + matmul, NHWC."""
        w = self.params[resnet_state.state_name(conv.prefix + "0.weight")]   # [out, in, k, k]
        k = conv.kernel
        kernel = tf.reshape(tf.transpose(w, [2, 3, 1, 0]), [k * k * conv.c_in, conv.c_out])
        cols = windows(x, k, conv.stride, k // 2)
        cols = cols[0] if len(cols) == 1 else tf.concat(cols, axis=3)
        ho, wo = cols.shape[1], cols.shape[2]
        y = tf.matmul(tf.reshape(cols, [-1, k * k * conv.c_in]), kernel)
        return tf.reshape(y, [-1, ho, wo, conv.c_out])

    def batch_norm(self, x: tf.Tensor, conv: Conv, weights: tf.Tensor | None,
                   updates: list) -> tf.Tensor:
        """BatchNorm2d: in training (``weights`` given) on the batch's weighted statistics,
        moving the running ones (appended to ``updates``); otherwise on the running ones."""
        name = resnet_state.state_name(conv.prefix + "1.")
        gamma, beta = self.params[name + "weight"], self.params[name + "bias"]
        mean_v, var_v = self.buffers[name + "running_mean"], self.buffers[name + "running_var"]
        if weights is None:
            return (x - mean_v) * (gamma / tf.sqrt(var_v + BN_EPS)) + beta
        w = weights[:, None, None, None]
        count = tf.reduce_sum(weights) * float(x.shape[1] * x.shape[2])
        mean = tf.reduce_sum(w * x, axis=[0, 1, 2]) / count
        centred = x - mean
        var = tf.reduce_sum(w * centred * centred, axis=[0, 1, 2]) / count
        unbiased = var * count / tf.maximum(count - 1.0, 1.0)
        updates.append((mean_v, (1.0 - BN_MOMENTUM) * mean_v + BN_MOMENTUM * mean))
        updates.append((var_v, (1.0 - BN_MOMENTUM) * var_v + BN_MOMENTUM * unbiased))
        return centred * (gamma * tf.math.rsqrt(var + BN_EPS)) + beta

    def conv_bn(self, x, conv: Conv, weights, updates) -> tf.Tensor:
        return self.batch_norm(self.conv(x, conv), conv, weights, updates)

    @staticmethod
    def relu(x: tf.Tensor) -> tf.Tensor:
        return tf.maximum(x, 0.0)

    def logits(self, images: tf.Tensor, weights: tf.Tensor | None = None,
               updates: list | None = None) -> tf.Tensor:
        """images [n, 3, S, S] -> logits [n, classes]; training mode when ``weights`` is given."""
        updates = [] if updates is None else updates
        x = tf.transpose(images, [0, 2, 3, 1])                            # NCHW -> NHWC
        x = self.relu(self.conv_bn(x, self.stem, weights, updates))
        pooled = windows(x, 3, 2, 1)                                      # max pool 3x3/2
        x = pooled[0]
        for window in pooled[1:]:
            x = tf.maximum(x, window)
        for block in self.blocks:
            y = self.relu(self.conv_bn(x, block.reduce, weights, updates))
            y = self.relu(self.conv_bn(y, block.conv, weights, updates))
            y = self.conv_bn(y, block.expand, weights, updates)
            short = x if block.shortcut is None else self.conv_bn(x, block.shortcut, weights,
                                                                  updates)
            x = self.relu(y + short)
        features = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(features, self.params["fc__weight"], transpose_b=True) + \
            self.params["fc__bias"]

    def cross_entropy(self, logits: tf.Tensor, labels: tf.Tensor,
                      weights: tf.Tensor) -> tf.Tensor:
        """torch's CrossEntropyLoss(label_smoothing=s), weighted by rows: sum(w * ce) / sum(w)
        with ce = -sum(((1 - s) onehot + s / K) * log_softmax)."""
        s = float(self.cfg.label_smoothing)
        target = tf.one_hot(labels, self.classes, dtype=tf.float32) * (1.0 - s) + s / self.classes
        ce = -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=1), axis=1)
        return tf.reduce_sum(weights * ce) / tf.maximum(tf.reduce_sum(weights), 1e-30)

    # -- one optimiser step ------------------------------------------------------------------
    def _train(self, images, labels, weights, lr):
        names = list(self.params)
        updates: list = []
        with tf.GradientTape() as tape:
            loss = self.cross_entropy(self.logits(images, weights, updates), labels, weights)
        grads = tape.gradient(loss, [self.params[k] for k in names])
        momentum, decay = float(self.cfg.momentum), float(self.cfg.weight_decay)
        for k, g in zip(names, grads):
            p = self.params[k]
            if decay and resnet_state.decayed(k):
                g = g + decay * p
            buf = self.momentum[k].assign(momentum * self.momentum[k] + g)
            p.assign_sub(lr * buf)
        for variable, value in updates:
            variable.assign(value)
        return {"loss": loss}

    # -- the signatures ----------------------------------------------------------------------
    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """train, infer, save, restore: the contract in the module docstring."""
        b, s = self.batch_size, self.size
        train = tf.function(self._train, input_signature=[
            tf.TensorSpec([b, 3, s, s], tf.float32, name="images"),
            tf.TensorSpec([b], tf.int32, name="labels"),
            tf.TensorSpec([b], tf.float32, name="weights"),
            tf.TensorSpec([], tf.float32, name="lr")])

        def infer(images):
            return {"logits": self.logits(images)}

        infer = tf.function(infer, input_signature=[
            tf.TensorSpec([None, 3, s, s], tf.float32, name="images")])
        return self.signatures_with_state(train, infer)
