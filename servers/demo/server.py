"""The demo MCP server that `portcullis up` puts behind the gateway, built on the server kit.

The kit verifies every request's token itself (issuer, audience = the demo's canonical URI, expiry, the `mcp`
scope), even behind the gateway, and asks the policy before each tool runs; `tools/list` shows only the tools
the caller may call. The identity headers the gateway sets are not trusted: the caller comes from the verified
token, and only the edge decision id is read from a header, for correlation.

Settings: `KIT_DEMO_*` (server_kit/README.md). The policies read no tool argument of this server (the
caller's groups and business groups and the catalog decide), so the guards send none.
"""

from __future__ import annotations

from typing import Any

from server_kit import Caller, Kit, KitSettings, guarded
from server_kit.settings import DEFAULT_PORT  # the demo listens where every kit server does unless told

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]

_REVENUE = [
    {"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300},
    {"date": "2026-11-20", "region": "amer", "revenue_usd": 2_871_950},
    {"date": "2026-11-20", "region": "apac", "revenue_usd": 943_120},
]

kit = Kit("demo", title="Demo server", instructions="A demo server behind the Portcullis gateway.")


@kit.tool()
@guarded()
def whoami(caller: Caller) -> dict[str, str]:
    """Who is calling, as the verified token says, and the gateway's decision id for this call."""
    return {
        "user": caller.user,
        "email": caller.email,
        "groups": ",".join(caller.groups),
        "business-groups": ",".join(caller.business_groups),
        "client": caller.client_id,
        "decision-id": caller.decision_id,
    }


@kit.tool()
@guarded()
def echo(message: str) -> str:
    """Echo a message back."""
    return message


@kit.tool()
@guarded()
def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]:
    """Daily ad revenue by region (sample data). Reserved to the ads-eng group and the ads business group."""
    return [row for row in _REVENUE if region is None or row["region"] == region]


def load_settings(**overrides: Any) -> KitSettings:
    """The demo's settings from `KIT_DEMO_*` (keyword arguments win), accepting the gateway's Host header.

    Raises:
        ConfigurationError: the settings are refused (no AuthZEN credential, a URL that is not absolute, ...).
    """
    return KitSettings.behind_gateway(kit.name, **overrides)
