"""The references in the LiteRT (TFLite) interpreter: phones and any device without torch.

The workstation builds each model once with TensorFlow (litert_models/, `mlperf-controller
models build --runtime litert`), as a content-addressed .tflite artifact with the signatures
``train``, ``infer``, ``save`` and ``restore``. A run here verifies the artifact's hash, loads
it into the interpreter and drives the same MLPerf run the PyTorch reference does (data, timed
window, evaluation, MLLOG, result.json), with the interpreter as the model. Nothing but the
interpreter executes the artifact. Needs numpy, mlperf-logging and ai-edge-litert (or
tflite-runtime): `pip install 'mlperf-edge[phone]'`; never torch or tensorflow.
"""

#: The references that can run in the interpreter so far.
BENCHMARKS = ("ncf", "sentiment", "resnet")
