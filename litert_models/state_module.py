"""The state signatures every on-device training model shares: ``save`` (every state tensor
out) and ``restore`` (every state tensor in), beside the model's own ``train`` and ``infer``.
The TF Save/Restore ops are Flex-only, so the device writes the checkpoint from ``save``'s
outputs. A model keeps its whole state, in save()'s order, in ``self.state`` (name -> tf.Variable).
"""

from __future__ import annotations

import tensorflow as tf


class StateModule(tf.Module):
    """A tf.Module with ``self.state`` (name -> tf.Variable, in save()'s order)."""

    state: dict[str, tf.Variable]

    def signatures_with_state(self, train: tf.types.experimental.PolymorphicFunction,
                              infer: tf.types.experimental.PolymorphicFunction
                              ) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """``train`` and ``infer`` (tf.functions with their input signatures) with ``save``
        (every state tensor out) and ``restore`` (every state tensor in)."""
        def save():
            return {k: tf.identity(v) for k, v in self.state.items()}

        def restore(values):
            for k, v in self.state.items():
                v.assign(values[k])
            return {"ok": tf.constant(1.0)}

        restore = tf.function(restore, input_signature=[
            {k: tf.TensorSpec(v.shape, tf.float32, name=k) for k, v in self.state.items()}])
        # Kept on the module so tf.saved_model.save tracks them.
        self._train_fn, self._infer_fn = train, infer
        self._save_fn, self._restore_fn = tf.function(save, input_signature=[]), restore
        return {"train": train.get_concrete_function(),
                "infer": infer.get_concrete_function(),
                "save": self._save_fn.get_concrete_function(),
                "restore": restore.get_concrete_function()}
