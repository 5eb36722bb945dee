"""Errors of the gateway package.

GatewayError       the Envoy binary is missing, or Envoy rejects a generated config
 └── SnapshotError the registry's catalog snapshot cannot be fetched or is invalid
"""

from __future__ import annotations

__all__ = ["GatewayError", "SnapshotError"]


class GatewayError(Exception):
    """The gateway cannot be configured or started."""


class SnapshotError(GatewayError):
    """The registry's catalog snapshot cannot be fetched or is invalid; the gateway keeps its last good config."""
