"""Only builtin ops reach a device: the built model has none other, and a model that needs
Flex ops is refused, by the converter or by the check after it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from litert_models.convert import verify
from litert_models.errors import ArtifactError
from litert_models.flatbuffer import ModelInfo, check_builtins_only, describe
from tests.conftest import ROOT


def test_the_ncf_model_has_builtin_ops_only(ncf_artifact):
    info = verify(ncf_artifact.content)
    assert info.custom_ops == ()
    # What training needs, as builtins: gathers and their dense gradient, variables.
    for op in ("GATHER", "UNSORTED_SEGMENT_SUM", "ASSIGN_VARIABLE", "READ_VARIABLE",
               "FULLY_CONNECTED"):
        assert op in info.ops


def test_custom_ops_are_refused_in_one_line():
    info = ModelInfo(("ADD",), ("FlexReluGrad", "MyOp"), {})
    with pytest.raises(ArtifactError, match="FlexReluGrad, MyOp") as exc:
        check_builtins_only(info)
    assert "\n" not in str(exc.value)
    with pytest.raises(ArtifactError, match="not a TFLite model"):
        describe(b"\x00" * 64)


FLEX_PROBE = """
import json, sys
import numpy as np
from litert_models.build import import_tensorflow
from litert_models.convert import convert_module, verify
from litert_models.errors import BuildError
tf = import_tensorflow()

class Relu(tf.Module):          # trained through tf.nn.relu, whose gradient is Flex-only
    def __init__(self):
        self.w = tf.Variable(np.ones((4, 1), np.float32))

    @tf.function(input_signature=[tf.TensorSpec([8, 4], tf.float32, name="x")])
    def train(self, x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.relu(tf.matmul(x, self.w)))
        self.w.assign_sub(0.1 * tape.gradient(loss, self.w))
        return {"loss": loss}

module, out = Relu(), {}
signatures = {"train": module.train.get_concrete_function()}
try:
    convert_module(module, signatures)
except BuildError as exc:
    out["builtins_only"] = str(exc)
tf.saved_model.save(module, sys.argv[1], signatures=signatures)
converter = tf.lite.TFLiteConverter.from_saved_model(sys.argv[1])
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                       tf.lite.OpsSet.SELECT_TF_OPS]
converter.experimental_enable_resource_variables = True
try:
    verify(converter.convert())
except BuildError as exc:
    out["flex_allowed"] = str(exc)
print(json.dumps(out))
"""


def test_a_model_that_needs_flex_ops_is_refused(tmp_path):
    """Builtins only, the converter fails: one line naming the op. Converted with Flex allowed,
    the bytes carry a Flex op: the check after conversion refuses them. (A subprocess: keeps
    TensorFlow out of the test process.)"""
    done = subprocess.run([sys.executable, "-c", FLEX_PROBE, str(tmp_path / "sm")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "ReluGrad" in out["builtins_only"] and "\n" not in out["builtins_only"]
    assert "FlexReluGrad" in out["flex_allowed"] and "refuse" in out["flex_allowed"]
