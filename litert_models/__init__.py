"""Models for on-device training in the LiteRT (TFLite) interpreter.

The workstation builds them with TensorFlow (``mlperf-controller models build --runtime
litert``, the ``litert-build`` extra); a device trains them with the interpreter alone (the
``phone`` extra: ai-edge-litert and numpy, no torch, no tensorflow).

What a device may import: :mod:`litert_models.artifacts` (the content-addressed store),
:mod:`litert_models.ncf_state` and :mod:`litert_models.sentiment_state` (state names, shapes,
the reference's initialisation in numpy) and :mod:`litert_models.flatbuffer` (ops and
signatures of a .tflite, read without an interpreter). The rest (:mod:`~litert_models.ncf`,
:mod:`~litert_models.sentiment`, :mod:`~litert_models.convert`, :mod:`~litert_models.build`)
imports TensorFlow and runs on the workstation only.
"""
