"""The governance extension of a server.json (`_meta["dev.portcullis/governance"]`) and the catalog entry it becomes.

A server declares here what the policies decide on: its owner team, sensitivity, business group, the client
applications it admits, where it runs, its tools, the labels of the data it serves and the resources it may
exchange its callers' tokens for. The registry validates it on publish (with the official server.json schema), the
kit's pipeline checks it before deploy, and the catalog entry derived from it (`catalog_entry`) is what the
registry's snapshot serves and what the policy test table reads: one source for a server's facts.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from portcullis_contracts.catalog import DatasetLabel, Sensitivity, ToolEntry, check_unique_tools, check_upstream
from portcullis_contracts.urls import absolute_url_problem

__all__ = ["GOVERNANCE_KEY", "ROUTE_PATTERN", "SEED_KEY", "Governance", "catalog_entry", "route_for"]

GOVERNANCE_KEY = "dev.portcullis/governance"
# The lifecycle a seed file asks for (the local platform's registry seed and the policy table's catalog).
SEED_KEY = "dev.portcullis/seed"
ROUTE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class Governance(BaseModel):
    """Our extension under `_meta["dev.portcullis/governance"]`: what the policies decide on."""

    model_config = ConfigDict(extra="forbid")

    owner_team: str = Field(min_length=1, max_length=100)
    support_channel: str = Field(default="", max_length=200)
    business_group: str = Field(default="", max_length=100)
    sensitivity: Sensitivity = "internal"
    allowed_clients: list[str] = Field(default_factory=list)
    route: str | None = Field(default=None, description="gateway path segment; defaults to the name's last part")
    upstream: str = Field(description="host:port of the server behind the gateway")
    tools: list[ToolEntry] = Field(default_factory=list)
    datasets: list[DatasetLabel] = Field(
        default_factory=list, max_length=1000, description="labels of the data the server serves; first match wins"
    )
    downstream_resources: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="resources (canonical http(s) URIs) the server may exchange its callers' tokens for",
    )

    _host_port = field_validator("upstream")(classmethod(lambda cls, value: check_upstream(value)))
    _unique_tools = field_validator("tools")(classmethod(lambda cls, tools: check_unique_tools(tools)))

    @field_validator("downstream_resources")
    @classmethod
    def _downstream(cls, value: list[str]) -> list[str]:
        # What the identity server lets this server exchange tokens for: only canonical absolute http(s) URIs,
        # parsed by the same strict parser the identity server uses (no userinfo, fragment or spelling tricks).
        for uri in value:
            problem = absolute_url_problem(uri)
            if problem is not None:
                raise ValueError(f"downstream resource {uri[:200]!r}: {problem}")
        if len({uri.rstrip("/") for uri in value}) != len(value):
            raise ValueError("downstream_resources lists a resource twice")
        return value

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and not ROUTE_PATTERN.match(value):
            raise ValueError("route must be lowercase letters, digits, '_', '.', '-' (max 63)")
        return value


def route_for(name: str) -> str:
    """The default gateway route of a server name: its part after the slash, lowercased."""
    return name.rpartition("/")[2].lower()


def catalog_entry(document: dict[str, Any], governance: Governance, *, status: str | None = None) -> dict[str, Any]:
    """The catalog entry the policies see for a server.json and its (validated) governance.

    `status` defaults to the lifecycle the document's seed marker asks for, else approved.
    """
    meta = document.get("_meta")
    seed = meta.get(SEED_KEY) if isinstance(meta, dict) else None
    lifecycle = seed.get("lifecycle", "approved") if isinstance(seed, dict) else "approved"
    route = governance.route or route_for(str(document.get("name", "")))
    return {
        "name": route,
        "title": str(document.get("title") or route),
        "status": status or str(lifecycle),
        "owner_team": governance.owner_team,
        "sensitivity": governance.sensitivity,
        "business_group": governance.business_group,
        "allowed_clients": list(governance.allowed_clients),
        "upstream": governance.upstream,
        "tools": [tool.model_dump() for tool in governance.tools],
        "datasets": [label.model_dump() for label in governance.datasets],
        "downstream_resources": list(governance.downstream_resources),
    }
