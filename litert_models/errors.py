"""Errors of the model builder and the artifact store: one line each, printed by the CLIs."""

from __future__ import annotations

from agent.errors import MlperfEdgeError


class LitertError(MlperfEdgeError):
    """Base of the errors below."""


class BuildError(LitertError):
    """A model cannot be built as asked: unknown benchmark, bad config, TensorFlow missing, or
    the converted model needs ops the device runtimes refuse (Flex, custom)."""


class ArtifactError(LitertError):
    """A model artifact is missing, tampered with (its hash differs) or badly labelled."""
