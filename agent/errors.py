"""Errors of the agent, below the shared MlperfEdgeError tree of the wire contract."""

from agent.protocol import ConfigError, MlperfEdgeError, ProtocolError

__all__ = ["MlperfEdgeError", "ConfigError", "ProtocolError", "JobError"]


class JobError(MlperfEdgeError):
    """A job cannot be accepted or run as asked (unknown benchmark, bad parameter, ...)."""
