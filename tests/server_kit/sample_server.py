"""The demo server's three tools, built on the kit (what servers/demo becomes once it moves to the kit)."""

from __future__ import annotations

from typing import Any

import jwt

from server_kit import Caller, Dataset, Kit, guarded, public

_REVENUE = [
    {"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300},
    {"date": "2026-11-20", "region": "amer", "revenue_usd": 2_871_950},
    {"date": "2026-11-20", "region": "apac", "revenue_usd": 943_120},
]

_REVENUE_BY_GROUP = [
    {"business_group": "ads", "sensitivity": "confidential", "revenue_usd": 5_019_370},
    {"business_group": "search", "sensitivity": "internal", "revenue_usd": 7_300_000},
    {"business_group": "finance", "sensitivity": "restricted", "revenue_usd": 120_000},
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


@kit.tool()
@guarded()
async def revenue_by_business_group(caller: Caller) -> list[dict[str, Any]]:
    """Revenue per business group: each row is a dataset the policy decides on for this caller."""
    return await caller.filter_readable(
        _REVENUE_BY_GROUP,
        lambda row: Dataset(f"revenue.{row['business_group']}", row["business_group"], row["sensitivity"]),
    )


@kit.tool()
@guarded(arguments=["resource"])
async def downstream_claims(caller: Caller, resource: str) -> dict[str, Any]:
    """Exchange the caller's token for one to `resource` and show what it says (a test of token exchange)."""
    token = await caller.exchange_token(resource)
    claims = jwt.decode(token, options={"verify_signature": False})
    return {name: claims.get(name) for name in ("sub", "aud", "client_id", "act", "scope", "groups")}
