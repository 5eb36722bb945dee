"""Servers, their published versions, and the lifecycle history.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "servers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("route", sa.String(63), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_servers_namespace", "servers", ["namespace"])
    op.create_table(
        "server_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("server_name", sa.String(200), sa.ForeignKey("servers.name"), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("description", sa.String(100), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("owner_team", sa.String(100), nullable=False),
        sa.Column("business_group", sa.String(100), nullable=False),
        sa.Column("sensitivity", sa.String(20), nullable=False),
        sa.Column("lifecycle", sa.String(20), nullable=False),
        sa.Column("status_message", sa.String(500), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("server_name", "version", name="uq_server_version"),
    )
    op.create_index("ix_versions_name_id", "server_versions", ["server_name", "id"])
    op.create_index("ix_versions_latest_name", "server_versions", ["is_latest", "server_name"])
    op.create_index("ix_versions_updated", "server_versions", ["updated_at"])
    op.create_index("ix_server_versions_owner_team", "server_versions", ["owner_team"])
    op.create_index("ix_server_versions_lifecycle", "server_versions", ["lifecycle"])
    op.create_table(
        "status_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("server_versions.id"), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=False),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_status_events_version_id", "status_events", ["version_id"])


def downgrade() -> None:
    op.drop_table("status_events")
    op.drop_table("server_versions")
    op.drop_table("servers")
