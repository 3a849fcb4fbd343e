"""SavedModel -> .tflite with builtin ops only, checked. Workstation side: imports TensorFlow.

The converter is told to use TFLITE_BUILTINS alone (no SELECT_TF_OPS: the device runtimes
refuse Flex ops) and to keep resource variables (training state lives in them). Its output is
then read back (litert_models.flatbuffer) and refused if any custom or Flex op slipped in.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from litert_models.errors import ArtifactError, BuildError
from litert_models.flatbuffer import ModelInfo, check_builtins_only, describe


def convert_saved_model(saved_model: Path, signature_keys: list[str]) -> bytes:
    """The .tflite bytes of ``saved_model``'s signatures, builtin ops only (BuildError in one
    line when the converter needs anything else)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model),
                                                         signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_enable_resource_variables = True
    with quiet_native_stderr() as captured:
        try:
            content = converter.convert()
        except Exception as exc:  # noqa: BLE001  (ConverterError and friends: one line)
            raise BuildError(f"TFLite conversion failed: {_summary(str(exc) + captured())}"
                             ) from None
    verify(content)
    return content


def convert_module(module, signatures: Mapping[str, object]) -> bytes:
    """Save ``module`` with ``signatures`` (name -> concrete function) to a temporary
    SavedModel and convert it."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="litert-build-") as tmp:
        path = Path(tmp) / "saved_model"
        with quiet_native_stderr():
            tf.saved_model.save(module, str(path), signatures=dict(signatures))
        return convert_saved_model(path, list(signatures))


def verify(content: bytes) -> ModelInfo:
    """The model's ops and signatures; BuildError if it needs Flex or custom ops."""
    try:
        info = describe(content)
        check_builtins_only(info)
    except ArtifactError as exc:
        raise BuildError(str(exc)) from None
    return info


def _summary(message: str) -> str:
    """One line from the converter's pages of MLIR diagnostics: the ops it could not lower."""
    ops = sorted(set(re.findall(r"\b(?:tf|TF)\.(\w+)", message)))
    if ops:
        return (f"ops outside the TFLite builtins (Flex only, refused on devices): "
                f"{', '.join(ops)}")
    lines = [ln.strip() for ln in message.splitlines() if "error" in ln.lower()]
    return (lines[0] if lines else message.strip().splitlines()[0] if message.strip()
            else "no message")[:300]


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator:
    """Hold back what TensorFlow's C++ side writes to fd 2 (MLIR passes, oneDNN notices) while
    converting; yields a function that returns it, for error messages."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)

        def captured() -> str:
            sink.flush()
            sink.seek(0)
            return sink.read()[-20000:].decode("utf-8", "replace")

        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
