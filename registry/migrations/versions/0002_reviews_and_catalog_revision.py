"""Review sign-offs, and the catalog revision that authz_service and the gateway follow.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("server_versions.id"), nullable=False),
        sa.Column("review", sa.String(50), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("reviewer_group", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_reviews_version_id", "reviews", ["version_id"])
    state = op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
    )
    # Servers approved before this revision count as revision 1 of the catalog.
    op.bulk_insert(state, [{"id": 1, "epoch": secrets.token_hex(4), "counter": 1}])


def downgrade() -> None:
    op.drop_table("catalog_state")
    op.drop_table("reviews")
