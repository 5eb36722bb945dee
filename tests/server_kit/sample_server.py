"""The demo server's three tools, built on the kit (what servers/demo becomes once it moves to the kit)."""

from __future__ import annotations

from typing import Any

from server_kit import Caller, Kit, guarded, public

_REVENUE = [
    {"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300},
    {"date": "2026-11-20", "region": "amer", "revenue_usd": 2_871_950},
    {"date": "2026-11-20", "region": "apac", "revenue_usd": 943_120},
]

kit = Kit("demo", instructions="A demo server built on the Portcullis server kit.")


@kit.tool()
@guarded()
def whoami(caller: Caller) -> dict[str, Any]:
    """The caller, as the verified token says."""
    return {
        "user": caller.user,
        "client_id": caller.client_id,
        "groups": list(caller.groups),
        "business_groups": list(caller.business_groups),
        "decision_id": caller.decision_id,
    }


@kit.tool()
@guarded(arguments=["message"])
async def echo(message: str) -> str:
    """Echo a message back."""
    return message


@kit.tool()
@guarded(arguments=["region"])
def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]:
    """Daily ad revenue by region (sample data). Reserved to the ads-eng group."""
    return [row for row in _REVENUE if region is None or row["region"] == region]


@kit.tool()
@public(reason="Reports the server's version; reads no data.")
def server_version() -> str:
    """The server's version."""
    return "1.0.0"
