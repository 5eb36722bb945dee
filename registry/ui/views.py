"""What the UI's pages show, built from the database: catalog cards, one server's page, review states."""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass
from typing import Any

import httpx

from portcullis_contracts.resource_metadata import canonical_uri
from registry import service
from registry.api import Registry
from registry.errors import NotFound
from registry.models import Review, Server, ServerVersion

__all__ = [
    "HEALTH_TIMEOUT_SECONDS",
    "ReviewState",
    "cards",
    "connect_snippets",
    "probe_health",
    "review_states",
    "server_view",
]

HEALTH_TIMEOUT_SECONDS = 0.5
_ROUTED = ("approved", "deprecated")


@dataclass(frozen=True)
class ReviewState:
    """One required review of one version: passed, rejected or pending, and the sign-off that decided it."""

    review: str
    group: str
    state: str
    record: Review | None


def review_states(required: dict[str, str], reviews: list[Review]) -> list[ReviewState]:
    """The state of every required review, in settings order (an approval counts over an earlier rejection)."""
    states = []
    for name, group in required.items():
        signed = [r for r in reviews if r.review == name]
        approved = next((r for r in signed if r.decision == "approve"), None)
        rejected = next((r for r in reversed(signed) if r.decision == "reject"), None)
        state = "passed" if approved else "rejected" if rejected else "pending"
        states.append(ReviewState(name, group, state, approved or rejected))
    return states


def connect_snippets(route: str, url: str) -> list[dict[str, str]]:
    """Copy-paste configuration for common MCP clients, all pointing at the gateway URL."""
    vscode = {"servers": {route: {"type": "http", "url": url}}}
    cursor = {"mcpServers": {route: {"url": url}}}
    return [
        {"id": "claude-code", "client": "Claude Code", "where": "Run in a terminal",
         "text": f"claude mcp add --transport http {shlex.quote(route)} {shlex.quote(url)}"},
        {"id": "claude-desktop", "client": "Claude Desktop", "where": "Settings → Connectors → Add custom connector",
         "text": url},
        {"id": "vscode", "client": "VS Code", "where": ".vscode/mcp.json", "text": json.dumps(vscode, indent=2)},
        {"id": "cursor", "client": "Cursor", "where": "~/.cursor/mcp.json", "text": json.dumps(cursor, indent=2)},
    ]  # fmt: skip


async def probe_health(upstream: str, *, timeout: float = HEALTH_TIMEOUT_SECONDS) -> str:
    """`healthy` when the upstream's `/healthz` answers 200 within the timeout; `unhealthy` or `unreachable`."""

    async def ask() -> int:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            return (await client.get(f"http://{upstream}/healthz")).status_code

    try:
        status = await asyncio.wait_for(ask(), timeout)
    except (httpx.HTTPError, TimeoutError, OSError):
        return "unreachable"
    return "healthy" if status == 200 else "unhealthy"


def cards(rows: list[ServerVersion]) -> list[dict[str, Any]]:
    """One card per server: its newest version on the page, and the others listed on it."""
    found: list[dict[str, Any]] = []
    for row in rows:
        if found and found[-1]["row"].server_name == row.server_name:
            found[-1]["others"].append(found[-1]["row"].version)
            found[-1]["row"] = row
        else:
            found.append({"row": row, "others": []})
    for card in found:
        governance = service.governance_of(card["row"])
        card["tools"] = len(governance.get("tools", []))
        card["support"] = str(governance.get("support_channel", ""))
    return found


def server_view(registry: Registry, name: str, version: str) -> dict[str, Any] | None:
    """Everything the server page shows from the database; None when there is no such version."""
    if name.count("/") != 1:
        return None
    settings = registry.settings
    with registry.reading() as db:
        try:
            row = service.find_version(db, name=name, version=version)
        except NotFound:
            return None
        server = db.get(Server, row.server_name)
        route = server.route if server else ""
        events, signed = service.history(db, row=row)
        versions = service.list_server_versions(db, name=name, include_deleted=True)
    # The rows are plain loaded objects now (no lazy relationships), readable after the session closed.
    governance = service.governance_of(row)
    url = canonical_uri(settings.gateway_url, route)
    return {
        "row": row,
        "route": route,
        "governance": governance,
        "tools": _tools(governance),
        "reviews": review_states(settings.reviews, signed),
        "timeline": _timeline(events, signed),
        "versions": [(v.version, v.lifecycle) for v in versions],
        "gateway_url": url,
        "routed": row.lifecycle in _ROUTED,
        "snippets": connect_snippets(route, url),
        "upstream": str(governance.get("upstream", "")),
        "website": _web_link(row.document.get("websiteUrl")),
    }


def _tools(governance: dict[str, Any]) -> list[dict[str, Any]]:
    tools = []
    for tool in governance.get("tools", []):
        entry = {"description": "", "sensitivity": "internal", "read_only": True, "business_groups": [], **tool}
        entry["restricted"] = entry["sensitivity"] in ("confidential", "restricted")
        tools.append(entry)
    return tools


def _timeline(events: list[Any], reviews: list[Review]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"at": e.at, "kind": "status", "actor": e.actor, "reason": e.reason,
         "from": e.from_status, "to": e.to_status}
        for e in events
    ] + [
        {"at": r.at, "kind": "review", "actor": r.reviewer, "reason": r.reason,
         "review": r.review, "decision": r.decision, "group": r.reviewer_group}
        for r in reviews
    ]  # fmt: skip
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _web_link(value: Any) -> str:
    """A link for the page only when it is http(s): a published document must not smuggle `javascript:` in."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value
    return ""
