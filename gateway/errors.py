"""Errors of the gateway package.

GatewayError   the Envoy binary is missing, or Envoy rejects a generated config
"""

from __future__ import annotations

__all__ = ["GatewayError"]


class GatewayError(Exception):
    """The gateway cannot be configured or started."""
