"""Errors of the controller, below the shared MlperfEdgeError tree of the wire contract."""

from agent.errors import BrokerUnavailable, ConfigError, MlperfEdgeError, ProtocolError

__all__ = ["MlperfEdgeError", "ConfigError", "ProtocolError", "BrokerUnavailable",
           "StoreError", "CampaignError"]


class StoreError(MlperfEdgeError):
    """The results store cannot be opened, or holds no such thing."""


class CampaignError(MlperfEdgeError):
    """A campaign cannot be created as asked (no such device, benchmark, ...)."""
