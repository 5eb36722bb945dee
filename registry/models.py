"""The registry's tables (SQLModel) and the lifecycle vocabulary.

servers           one row per server name (reverse-DNS namespace/name) and its gateway route
server_versions   one row per published server.json version, with its lifecycle state
status_events     every lifecycle transition: who, when, why
reviews           every review sign-off (or rejection): who, when, why
catalog_state     the catalog revision: bumped in the same transaction as any lifecycle change
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "LIFECYCLE",
    "OFFICIAL_STATUS",
    "CatalogState",
    "Lifecycle",
    "Review",
    "Server",
    "ServerVersion",
    "StatusEvent",
    "utcnow",
]

Lifecycle = Literal["draft", "pending_review", "approved", "deprecated", "retired", "rejected"]
LIFECYCLE: tuple[str, ...] = ("draft", "pending_review", "approved", "deprecated", "retired", "rejected")
# How our lifecycle reads in the official registry vocabulary (active | deprecated | deleted).
OFFICIAL_STATUS: dict[str, str] = {
    "draft": "active",
    "pending_review": "active",
    "approved": "active",
    "deprecated": "deprecated",
    "retired": "deleted",
    "rejected": "deleted",
}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored naive UTC: identical on SQLite and PostgreSQL


class Server(SQLModel, table=True):
    __tablename__ = "servers"

    name: str = Field(primary_key=True, max_length=200)
    namespace: str = Field(max_length=200, index=True)
    route: str = Field(max_length=63, unique=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ServerVersion(SQLModel, table=True):
    __tablename__ = "server_versions"
    __table_args__ = (
        UniqueConstraint("server_name", "version", name="uq_server_version"),
        Index("ix_versions_name_id", "server_name", "id"),
        Index("ix_versions_latest_name", "is_latest", "server_name"),
        Index("ix_versions_updated", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    server_name: str = Field(foreign_key="servers.name", max_length=200)
    version: str = Field(max_length=255)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    title: str = Field(default="", max_length=100)
    description: str = Field(default="", max_length=100)
    search_text: str = Field(sa_column=Column(Text, nullable=False))
    owner_team: str = Field(max_length=100, index=True)
    business_group: str = Field(default="", max_length=100)
    sensitivity: str = Field(max_length=20)
    lifecycle: str = Field(max_length=20)
    status_message: str = Field(default="", max_length=500)
    is_latest: bool = False
    published_by: str = Field(max_length=200)
    published_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    status_changed_at: NaiveDatetime = Field(default_factory=utcnow)


class StatusEvent(SQLModel, table=True):
    __tablename__ = "status_events"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="server_versions.id", index=True)
    from_status: str = Field(default="", max_length=20)
    to_status: str = Field(max_length=20)
    actor: str = Field(max_length=200)
    reason: str = Field(default="", max_length=500)
    at: NaiveDatetime = Field(default_factory=utcnow)


class Review(SQLModel, table=True):
    __tablename__ = "reviews"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="server_versions.id", index=True)
    review: str = Field(max_length=50)
    decision: str = Field(max_length=10)  # approve | reject
    reviewer: str = Field(max_length=200)
    reviewer_group: str = Field(max_length=100)
    reason: str = Field(default="", max_length=500)
    at: NaiveDatetime = Field(default_factory=utcnow)


class CatalogState(SQLModel, table=True):
    __tablename__ = "catalog_state"

    id: int = Field(default=1, primary_key=True)
    epoch: str = Field(max_length=32)  # random per database: a recreated database never reuses a revision
    counter: int = 0

    @property
    def revision(self) -> str:
        return f"{self.epoch}-{self.counter}"
