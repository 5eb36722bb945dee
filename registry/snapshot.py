"""The catalog snapshot: approved (and deprecated) servers with their governance metadata, at one revision.

authz_service decides on it and the gateway routes from it; both poll with `If-None-Match`, so an unchanged
catalog costs one single-row read. A snapshot is built once per revision and shared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from registry.models import Server, ServerVersion
from registry.service import VISIBLE, catalog_revision, governance_of

__all__ = ["Snapshot", "SnapshotCache", "SnapshotServer", "build_snapshot"]

_TOOL_DEFAULTS: dict[str, Any] = {
    "description": "",
    "sensitivity": "internal",
    "read_only": True,
    "business_groups": [],
}


@dataclass(frozen=True)
class SnapshotServer:
    """One routed server: its catalog entry (what the policies see) and what the registry knows besides."""

    registry_name: str
    version: str
    description: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    revision: str
    servers: tuple[SnapshotServer, ...]  # sorted by route

    def document(self) -> dict[str, Any]:
        return {"revision": self.revision, "servers": [server.entry for server in self.servers]}


def build_snapshot(session: Session) -> Snapshot:
    """Read the revision and the routed servers in one transaction, so they always agree."""
    revision = catalog_revision(session)
    statement = (
        select(ServerVersion, Server.route)
        .join(Server, col(Server.name) == col(ServerVersion.server_name))
        .where(col(ServerVersion.lifecycle).in_(VISIBLE))
        .order_by(col(ServerVersion.server_name), col(ServerVersion.is_latest).desc(), col(ServerVersion.id).desc())
    )
    chosen: dict[str, SnapshotServer] = {}
    for row, route in session.exec(statement):
        if row.server_name in chosen:
            continue  # the latest approved version of each server wins
        governance = governance_of(row)
        entry = {
            "name": route,
            "title": row.title or route,
            "status": row.lifecycle,
            "owner_team": row.owner_team,
            "sensitivity": row.sensitivity,
            "business_group": row.business_group,
            "allowed_clients": list(governance.get("allowed_clients", [])),
            "upstream": governance["upstream"],
            "tools": [{**_TOOL_DEFAULTS, **tool} for tool in governance.get("tools", [])],
        }
        chosen[row.server_name] = SnapshotServer(row.server_name, row.version, row.description, entry)
    servers = tuple(sorted(chosen.values(), key=lambda server: str(server.entry["name"])))
    return Snapshot(revision, servers)


class SnapshotCache:
    """The snapshot of the current revision, rebuilt only when the revision moves."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._current: Snapshot | None = None

    def revision(self) -> str:
        with Session(self._engine) as session:
            return catalog_revision(session)

    def get(self) -> Snapshot:
        revision = self.revision()
        current = self._current
        if current is not None and current.revision == revision:
            return current
        with self._lock:
            current = self._current
            if current is None or current.revision != revision:
                with Session(self._engine) as session:
                    current = build_snapshot(session)
                self._current = current
            return current
