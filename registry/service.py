"""The registry's operations: publish, list, read, review and move through the lifecycle.

Keyword-only functions over a SQLModel `Session`. Every write runs inside the caller's one transaction, and
every decision about who may write is the policy engine's (through `AuthzClient`) before anything changes.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, tuple_, update
from sqlmodel import Session, col, select

from portcullis_contracts.governance import GOVERNANCE_KEY
from portcullis_contracts.resource_metadata import canonical_uri, resource_metadata_url
from registry.authz import AuthzClient
from registry.errors import Conflict, Forbidden, InvalidRequest, NotFound
from registry.identity import RegistryCaller
from registry.lifecycle import TRANSITIONS, is_newer
from registry.models import OFFICIAL_STATUS, CatalogState, Review, Server, ServerVersion, StatusEvent, utcnow
from registry.validation import ValidServer

if TYPE_CHECKING:  # the snapshot is built from this module's queries
    from registry.snapshot import Snapshot, SnapshotServer

__all__ = [
    "ListQuery",
    "bump_revision",
    "catalog_revision",
    "entry_resource",
    "facets",
    "find_version",
    "governance_of",
    "history",
    "isotime",
    "lifecycle_counts",
    "list_server_versions",
    "list_versions",
    "missing_reviews",
    "pending_queue",
    "publish",
    "record_transition",
    "set_status_message",
    "sign_off",
    "to_response",
    "transition",
    "usable_servers",
]

VISIBLE = ("approved", "deprecated")
DELETED = ("retired", "rejected")


def isotime(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"


def governance_of(row: ServerVersion) -> dict[str, Any]:
    meta = row.document.get("_meta") or {}
    governance = meta.get(GOVERNANCE_KEY) or {}
    return dict(governance)


def to_response(row: ServerVersion) -> dict[str, Any]:
    """A `ServerResponse` exactly as the official OpenAPI defines it, plus our lifecycle under our own key."""
    official: dict[str, Any] = {
        "status": OFFICIAL_STATUS[row.lifecycle],
        "statusChangedAt": isotime(row.status_changed_at),
        "publishedAt": isotime(row.published_at),
        "updatedAt": isotime(row.updated_at),
        "isLatest": row.is_latest,
    }
    if row.status_message:
        official["statusMessage"] = row.status_message[:500]
    return {
        "server": row.document,
        "_meta": {
            "io.modelcontextprotocol.registry/official": official,
            GOVERNANCE_KEY: {"lifecycle": row.lifecycle, "owner_team": row.owner_team},
        },
    }


def _entry(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The AuthZEN resource of a registry entry: what the registry policies decide on."""
    return {"type": "registry_entry", "id": name, "properties": {"namespace": name.partition("/")[0], **properties}}


def entry_resource(row: ServerVersion, **extra: Any) -> dict[str, Any]:
    """The registry-entry resource of a stored version (plus extra facts, such as the review asked about)."""
    return _entry(
        row.server_name,
        {
            "owner_team": row.owner_team,
            "lifecycle": row.lifecycle,
            "sensitivity": row.sensitivity,
            "business_group": row.business_group,
            "published_by": row.published_by,
            "allowed_clients": list(governance_of(row).get("allowed_clients", [])),
            **extra,
        },
    )


def _authorize(authz: AuthzClient, caller: RegistryCaller, action: str, resource: dict[str, Any]) -> None:
    # Every registry write is decided here. The actor chain of a delegated token (a server that exchanged the
    # person's token) goes with the facts, so the policy can refuse a write the person did not make themselves.
    resource = {**resource, "properties": {**resource["properties"], "delegated_by": list(caller.delegated_by)}}
    verdict = authz.evaluate(caller, f"registry.{action}", resource)
    if not verdict.allowed:
        raise Forbidden(
            f"{caller.id} may not {action} {resource['id']}: {verdict.reason}",
            reason=verdict.reason,
            decision_id=verdict.decision_id,
        )


def catalog_state(session: Session) -> CatalogState:
    state = session.get(CatalogState, 1)
    if state is None:
        raise RuntimeError("catalog_state is missing: the database was not migrated")
    return state


def catalog_revision(session: Session) -> str:
    return catalog_state(session).revision


def bump_revision(session: Session) -> None:
    """Advance the catalog revision inside the current transaction (atomic with the change it announces)."""
    session.execute(update(CatalogState).where(col(CatalogState.id) == 1).values(counter=CatalogState.counter + 1))


def record_transition(session: Session, row: ServerVersion, target: str, actor: str, reason: str) -> None:
    assert row.id is not None
    now = utcnow()
    session.add(StatusEvent(version_id=row.id, from_status=row.lifecycle, to_status=target, actor=actor, reason=reason))
    row.lifecycle = target
    row.status_changed_at = now
    row.updated_at = now
    session.add(row)
    bump_revision(session)


# --- publish ---------------------------------------------------------------------------------------------------


def publish(
    session: Session, *, valid: ValidServer, caller: RegistryCaller, authz: AuthzClient, draft: bool = False
) -> ServerVersion:
    """Store a new version (pending review, or a draft) after the policy allows the caller to publish it.

    Raises:
        Forbidden: the policy refuses (for example a namespace the caller's team does not own).
        Conflict: the version exists, or the gateway route belongs to another server.
    """
    governance = valid.governance
    lifecycle = "draft" if draft else "pending_review"
    resource = _entry(
        valid.name,
        {
            "owner_team": governance.owner_team,
            "lifecycle": lifecycle,
            "sensitivity": governance.sensitivity,
            "business_group": governance.business_group,
            "published_by": caller.id,
            "allowed_clients": list(governance.allowed_clients),
        },
    )
    _authorize(authz, caller, "publish", resource)
    server = session.get(Server, valid.name, with_for_update=True)
    if server is None:
        taken = session.exec(select(Server).where(Server.route == valid.route)).first()
        if taken is not None:
            raise Conflict(f"gateway route {valid.route!r} already belongs to {taken.name}", route=valid.route)
        server = Server(name=valid.name, namespace=valid.namespace, route=valid.route)
        session.add(server)
        session.flush()
    elif server.route != valid.route:
        raise Conflict(f"the gateway route of {valid.name} is {server.route!r} and cannot change", route=valid.route)
    duplicate = session.exec(
        select(ServerVersion.id).where(ServerVersion.server_name == valid.name, ServerVersion.version == valid.version)
    ).first()
    if duplicate is not None:
        raise Conflict(f"{valid.name} version {valid.version} is already published", version=valid.version)
    latest = session.exec(
        select(ServerVersion).where(ServerVersion.server_name == valid.name, col(ServerVersion.is_latest))
    ).first()
    becomes_latest = latest is None or is_newer(valid.version, latest.version)
    if latest is not None and becomes_latest:
        latest.is_latest = False
        session.add(latest)
        session.flush()
    document = valid.document
    row = ServerVersion(
        server_name=valid.name,
        version=valid.version,
        document=document,
        title=str(document.get("title", ""))[:100],
        description=str(document.get("description", ""))[:100],
        search_text=" ".join(
            [valid.name, str(document.get("title", "")), str(document.get("description", "")), valid.route]
        ).lower(),
        owner_team=governance.owner_team,
        business_group=governance.business_group,
        sensitivity=governance.sensitivity,
        lifecycle=lifecycle,
        is_latest=becomes_latest,
        published_by=caller.id,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    session.add(
        StatusEvent(version_id=row.id, to_status=row.lifecycle, actor=caller.id, reason=f"published {valid.version}")
    )
    bump_revision(session)
    return row


# --- read ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """`GET /servers` parameters (official ones first, then our filters for the UI)."""

    limit: int
    cursor: str | None = None
    search: str | None = None
    updated_since: datetime | None = None
    version: str | None = None
    include_deleted: bool = False
    lifecycle: tuple[str, ...] = ()
    owner_team: str | None = None
    sensitivity: str | None = None
    business_group: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _encode_cursor(name: str, row_id: int) -> str:
    raw = json.dumps([name, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(name, str) or not isinstance(row_id, int):
            raise ValueError
        return name, row_id
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest("invalid cursor: use the exact metadata.nextCursor value", parameter="cursor") from None


def list_versions(session: Session, *, query: ListQuery) -> tuple[list[ServerVersion], str | None]:
    """One page of server versions in (name, publication) order, and the cursor of the next page."""
    statement = select(ServerVersion)
    if query.lifecycle:
        statement = statement.where(col(ServerVersion.lifecycle).in_(query.lifecycle))
    elif query.include_deleted or query.updated_since is not None:
        statement = statement.where(col(ServerVersion.lifecycle).in_((*VISIBLE, *DELETED)))
    else:
        statement = statement.where(col(ServerVersion.lifecycle).in_(VISIBLE))
    if query.version == "latest":
        statement = statement.where(col(ServerVersion.is_latest))
    elif query.version:
        statement = statement.where(ServerVersion.version == query.version)
    if query.search:
        needle = query.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(col(ServerVersion.search_text).like(f"%{needle}%", escape="\\"))
    if query.updated_since is not None:
        statement = statement.where(ServerVersion.updated_at >= query.updated_since)
    if query.owner_team:
        statement = statement.where(ServerVersion.owner_team == query.owner_team)
    if query.sensitivity:
        statement = statement.where(ServerVersion.sensitivity == query.sensitivity)
    if query.business_group:
        statement = statement.where(ServerVersion.business_group == query.business_group)
    if query.cursor:
        name, row_id = _decode_cursor(query.cursor)
        statement = statement.where(tuple_(col(ServerVersion.server_name), col(ServerVersion.id)) > (name, row_id))
    statement = statement.order_by(col(ServerVersion.server_name), col(ServerVersion.id)).limit(query.limit + 1)
    rows = list(session.exec(statement).all())
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        assert last.id is not None
        return rows, _encode_cursor(last.server_name, last.id)
    return rows, None


def list_server_versions(session: Session, *, name: str, include_deleted: bool) -> list[ServerVersion]:
    """Every version of one server, newest publication first (drafts and pending ones included)."""
    statement = select(ServerVersion).where(ServerVersion.server_name == name)
    if not include_deleted:
        statement = statement.where(col(ServerVersion.lifecycle).not_in(DELETED))
    rows = list(session.exec(statement.order_by(col(ServerVersion.published_at).desc(), col(ServerVersion.id).desc())))
    if not rows:
        raise NotFound("Server not found")
    return rows


def find_version(
    session: Session, *, name: str, version: str, include_deleted: bool = True, lock: bool = False
) -> ServerVersion:
    """One version (or `latest`).

    Raises:
        NotFound: no such server or version.
    """
    statement = select(ServerVersion).where(ServerVersion.server_name == name)
    if version == "latest":
        statement = statement.where(col(ServerVersion.is_latest))
    else:
        statement = statement.where(ServerVersion.version == version)
    if not include_deleted:
        statement = statement.where(col(ServerVersion.lifecycle).not_in(DELETED))
    if lock:
        statement = statement.with_for_update()
    row = session.exec(statement).first()
    if row is None:
        raise NotFound("Server not found" if version == "latest" else "Server version not found")
    return row


def history(session: Session, *, row: ServerVersion) -> tuple[list[StatusEvent], list[Review]]:
    events = session.exec(select(StatusEvent).where(StatusEvent.version_id == row.id).order_by(col(StatusEvent.id)))
    reviews = session.exec(select(Review).where(Review.version_id == row.id).order_by(col(Review.id)))
    return list(events), list(reviews)


def facets(session: Session) -> dict[str, list[str]]:
    """Distinct filter values for the UI."""
    result: dict[str, list[str]] = {}
    for key, column in (
        ("owner_team", ServerVersion.owner_team),
        ("business_group", ServerVersion.business_group),
        ("sensitivity", ServerVersion.sensitivity),
    ):
        values = session.exec(select(column).distinct().order_by(column)).all()
        result[key] = [v for v in values if v]
    return result


def lifecycle_counts(session: Session) -> dict[str, int]:
    statement = select(ServerVersion.lifecycle, func.count()).group_by(ServerVersion.lifecycle)
    return {str(lifecycle): int(count) for lifecycle, count in session.exec(statement).all()}


# --- lifecycle -------------------------------------------------------------------------------------------------


def missing_reviews(session: Session, *, row: ServerVersion, required: dict[str, str]) -> list[str]:
    """Required reviews without an approving sign-off, in settings order."""
    passed = {
        review.review
        for review in session.exec(select(Review).where(Review.version_id == row.id, Review.decision == "approve"))
    }
    return [name for name in required if name not in passed]


def transition(
    session: Session,
    *,
    row: ServerVersion,
    action: str,
    reason: str,
    caller: RegistryCaller,
    authz: AuthzClient,
    required_reviews: dict[str, str],
) -> ServerVersion:
    """Move one version through the lifecycle, as the policy allows.

    Raises:
        InvalidRequest: unknown action, or not possible from the current state.
        Conflict: approval asked before every required review passed.
        Forbidden: the policy refuses.
    """
    step = TRANSITIONS.get(action)
    if step is None:
        raise InvalidRequest(f"unknown action {action!r}: expected one of {', '.join(TRANSITIONS)}")
    if row.lifecycle not in step.sources:
        raise InvalidRequest(f"cannot {action} {row.server_name} {row.version}: it is {row.lifecycle}")
    _authorize(authz, caller, action, entry_resource(row))
    if action == "approve":
        missing = missing_reviews(session, row=row, required=required_reviews)
        if missing:
            raise Conflict(f"approval needs every required review; missing: {', '.join(missing)}", missing=missing)
    record_transition(session, row, step.target, caller.id, reason)
    return row


def sign_off(
    session: Session,
    *,
    row: ServerVersion,
    review: str,
    decision: str,
    reason: str,
    caller: RegistryCaller,
    authz: AuthzClient,
    required_reviews: dict[str, str],
) -> ServerVersion:
    """Record a review sign-off (or rejection). The last required approval approves; a rejection rejects.

    Raises:
        InvalidRequest: unknown review or decision, or the version is not pending review.
        Conflict: this review was already signed off.
        Forbidden: the policy refuses (not a member of the review's group, or the publisher reviewing their own).
    """
    if review not in required_reviews:
        raise InvalidRequest(f"unknown review {review!r}: expected one of {', '.join(required_reviews)}")
    if decision not in ("approve", "reject"):
        raise InvalidRequest("decision must be 'approve' or 'reject'")
    if row.lifecycle != "pending_review":
        raise InvalidRequest(f"{row.server_name} {row.version} is {row.lifecycle}, not pending review")
    group = required_reviews[review]
    _authorize(authz, caller, "review", entry_resource(row, review=review, review_group=group))
    already = session.exec(
        select(Review).where(Review.version_id == row.id, Review.review == review, Review.decision == "approve")
    ).first()
    if already is not None:
        raise Conflict(f"the {review} review was already signed off by {already.reviewer}")
    assert row.id is not None
    session.add(
        Review(
            version_id=row.id, review=review, decision=decision, reviewer=caller.id, reviewer_group=group, reason=reason
        )
    )
    session.flush()
    if decision == "reject":
        record_transition(session, row, "rejected", caller.id, f"{review} review rejected: {reason}".strip())
    elif not missing_reviews(session, row=row, required=required_reviews):
        record_transition(
            session, row, "approved", caller.id, f"every required review passed ({', '.join(required_reviews)})"
        )
    else:
        row.updated_at = utcnow()
        session.add(row)
    return row


def set_status_message(row: ServerVersion, message: str | None) -> None:
    if message is not None:
        row.status_message = message[:500]


def pending_queue(session: Session) -> list[ServerVersion]:
    statement = select(ServerVersion).where(ServerVersion.lifecycle == "pending_review")
    return list(session.exec(statement.order_by(col(ServerVersion.published_at))))


def usable_servers(
    snapshot: Snapshot, *, caller: RegistryCaller, authz: AuthzClient, gateway_url: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The routed servers this caller's client application may connect to, each with the tools it may call.

    Walks the snapshot in route order, asking connect decisions a chunk at a time and tool decisions only
    for servers the caller may reach (batched AuthZEN evaluations), until the page is full.
    """
    servers = snapshot.servers
    position = bisect.bisect_right(snapshot.routes, cursor) if cursor else 0
    page: list[dict[str, Any]] = []
    gateway = gateway_url.rstrip("/")
    while position < len(servers) and len(page) < limit:
        wanted = limit - len(page)
        chunk = servers[position : position + max(wanted + wanted // 2, 10)]
        connect = authz.evaluate_many(caller, [("connect", {"type": "server", "id": s.entry["name"]}) for s in chunk])
        # Only the reachable servers that fit on this page have their tools asked about.
        reachable: list[SnapshotServer] = []
        consumed = len(chunk)
        for index, (server, verdict) in enumerate(zip(chunk, connect, strict=True)):
            if verdict.allowed:
                reachable.append(server)
                if len(reachable) == wanted:
                    consumed = index + 1
                    break
        tool_items = [
            ("call", {"type": "tool", "id": tool["name"], "properties": {"server": s.entry["name"]}})
            for s in reachable
            for tool in s.entry["tools"]
        ]
        verdicts = iter(authz.evaluate_many(caller, tool_items)) if tool_items else iter(())
        for server in reachable:
            tools = [tool for tool in server.entry["tools"] if next(verdicts).allowed]
            route = str(server.entry["name"])
            page.append(
                {
                    "name": server.registry_name,
                    "route": route,
                    "title": server.entry["title"],
                    "description": server.description,
                    "version": server.version,
                    "status": server.entry["status"],
                    "url": canonical_uri(gateway, route),
                    "transport": "streamable-http",
                    "protected_resource_metadata": resource_metadata_url(canonical_uri(gateway, route)),
                    "tools": [
                        {k: tool[k] for k in ("name", "description", "read_only", "sensitivity") if k in tool}
                        for tool in tools
                    ],
                }
            )
        position += consumed
    metadata: dict[str, Any] = {"count": len(page), "revision": snapshot.revision}
    if position < len(servers) and page:
        metadata["nextCursor"] = page[-1]["route"]
    return {"servers": page, "metadata": metadata}
