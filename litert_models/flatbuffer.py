"""What a .tflite holds, read from its flatbuffer without an interpreter: the operators of every
subgraph and the signatures with their input and output names.

TensorFlow-free and torch-free: the schema comes from ai-edge-litert (a device) or TensorFlow
(the workstation), whichever is installed; both ship the same generated module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from litert_models.errors import ArtifactError

_SCHEMAS = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")


@dataclass(frozen=True)
class ModelInfo:
    ops: tuple[str, ...]                          # builtin operator names, sorted
    custom_ops: tuple[str, ...]                   # custom codes (Flex ops are "Flex..."), sorted
    signatures: dict[str, dict[str, list[str]]]   # key -> {"inputs": [...], "outputs": [...]}


def describe(content: bytes) -> ModelInfo:
    """Operators and signatures of a .tflite model (ArtifactError if it is not one)."""
    schema = _schema()
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ArtifactError("not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = schema.Model.GetRootAs(content, 0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops, custom = set(), set()
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            # Codes past 127 live in BuiltinCode; older ones in DeprecatedBuiltinCode.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM or code.CustomCode():
                custom.add((code.CustomCode() or b"?").decode("utf-8", "replace"))
            else:
                ops.add(names.get(builtin, f"BUILTIN_{builtin}"))
        signatures = {}
        for i in range(model.SignatureDefsLength()):
            sig = model.SignatureDefs(i)
            signatures[sig.SignatureKey().decode()] = {
                "inputs": [sig.Inputs(j).Name().decode() for j in range(sig.InputsLength())],
                "outputs": [sig.Outputs(j).Name().decode() for j in range(sig.OutputsLength())]}
    except (AttributeError, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"malformed TFLite flatbuffer: {exc}") from None
    return ModelInfo(tuple(sorted(ops)), tuple(sorted(custom)), signatures)


def check_builtins_only(info: ModelInfo) -> None:
    """ArtifactError naming the ops when the model needs Flex or custom ops, which the device
    runtimes (ai-edge-litert, tflite-runtime) do not have."""
    if info.custom_ops:
        raise ArtifactError(f"the model needs {len(info.custom_ops)} op(s) outside the TFLite "
                            f"builtins, which devices refuse: {', '.join(info.custom_ops)}")


def _schema():
    for module in _SCHEMAS:
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ArtifactError("reading a .tflite needs ai-edge-litert (pip install "
                        "'mlperf-edge[phone]') or tensorflow-cpu ('mlperf-edge[litert-build]')")
