"""The catalog snapshot: approved (and deprecated) servers with their governance metadata, at one revision.

authz_service decides on it and the gateway routes from it; both poll with `If-None-Match`, so an unchanged
catalog costs one single-row read. A snapshot is built once per revision and shared.
"""

from __future__ import annotations

import gc
import json
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from portcullis_contracts.catalog import ToolEntry
from portcullis_contracts.catalog_snapshot import snapshot_document
from portcullis_contracts.governance import GOVERNANCE_KEY
from registry.models import Server, ServerVersion
from registry.service import VISIBLE, catalog_revision

__all__ = ["Snapshot", "SnapshotCache", "SnapshotServer", "build_snapshot"]

# Defaults for the tool fields a publisher may omit, taken from the model that validates them downstream.
_TOOL_DEFAULTS: dict[str, Any] = {
    name: field.get_default(call_default_factory=True)
    for name, field in ToolEntry.model_fields.items()
    if not field.is_required()
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
    routes: tuple[str, ...] = ()  # the routes, in the same order (for bisecting a cursor)

    def document(self) -> dict[str, Any]:
        return snapshot_document(self.revision, [server.entry for server in self.servers])

    @cached_property
    def body(self) -> bytes:
        """The serialized document, built once per revision (pollers that miss the ETag all get these bytes)."""
        return json.dumps(self.document(), separators=(",", ":")).encode()


def build_snapshot(session: Session) -> Snapshot:
    """Read the revision and the routed servers in one transaction, so they always agree."""
    revision = catalog_revision(session)
    # Columns, not ORM objects: at 10,000 servers this is the difference between ~1 s and ~0.4 s.
    statement = (
        sa_select(
            col(ServerVersion.server_name),
            col(ServerVersion.version),
            col(ServerVersion.title),
            col(ServerVersion.description),
            col(ServerVersion.lifecycle),
            col(ServerVersion.owner_team),
            col(ServerVersion.sensitivity),
            col(ServerVersion.business_group),
            col(ServerVersion.document),
            col(Server.route),
        )
        .join(Server, col(Server.name) == col(ServerVersion.server_name))
        .where(col(ServerVersion.lifecycle).in_(VISIBLE))
        .order_by(col(ServerVersion.server_name), col(ServerVersion.is_latest).desc(), col(ServerVersion.id).desc())
    )
    chosen: dict[str, SnapshotServer] = {}
    for name, version, title, description, lifecycle, team, sensitivity, group, document, route in session.execute(
        statement
    ):
        if name in chosen:
            continue  # the latest approved version of each server wins
        governance = (document.get("_meta") or {}).get(GOVERNANCE_KEY) or {}
        entry = {
            "name": route,
            "title": title or route,
            "status": lifecycle,
            "owner_team": team,
            "sensitivity": sensitivity,
            "business_group": group,
            "allowed_clients": list(governance.get("allowed_clients", [])),
            "upstream": governance["upstream"],
            "tools": [{**_TOOL_DEFAULTS, **tool} for tool in governance.get("tools", [])],
            "datasets": list(governance.get("datasets", [])),
            "downstream_resources": list(governance.get("downstream_resources", [])),
        }
        chosen[name] = SnapshotServer(name, version, description, entry)
    servers = tuple(sorted(chosen.values(), key=lambda server: str(server.entry["name"])))
    return Snapshot(revision, servers, tuple(str(server.entry["name"]) for server in servers))


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
                # Keep the long-lived snapshot out of the collector's full passes (they paused requests ~100 ms).
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            return current
