"""The error tree both sides share. The CLIs print any MlperfEdgeError as one line (exit 1);
a traceback only with --debug."""

from __future__ import annotations

__all__ = ["MlperfEdgeError", "ConfigError", "ProtocolError", "Refused", "BrokerUnavailable",
           "IllegalTransition", "JobError", "InfrastructureError"]


class MlperfEdgeError(Exception):
    """Base of every error this product raises on purpose; the CLIs print it as one line."""


class ConfigError(MlperfEdgeError):
    """A setting, flag or file given by the user is wrong."""


class ProtocolError(MlperfEdgeError):
    """A message or topic does not follow the wire contract."""

    code = "malformed"


class Refused(ProtocolError):
    """A well-formed message this side will not act on: unsigned, signed by a key it does not
    trust, expired, replayed, or over a bound. ``code`` is one word for counting and replies
    (``signature``, ``unknown-key``, ``expired``, ``clock``, ``replay``, ``stale``, ``bounds``,
    ``busy``, ``invalid``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class BrokerUnavailable(MlperfEdgeError):
    """The MQTT broker cannot be reached or refused the connection."""


class IllegalTransition(MlperfEdgeError):
    """A job lifecycle move that the state machine forbids."""


class JobError(MlperfEdgeError):
    """A job cannot be accepted or run as asked (unknown benchmark, bad parameter, ...)."""


class InfrastructureError(JobError):
    """The device could not run a sound job this time (the image cannot be had, the engine or
    a sensor failed): the campaign's retry policy may run it again."""
