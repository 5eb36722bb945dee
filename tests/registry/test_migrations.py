"""Alembic migrations: from an empty database, and from the previous revision with data in it."""

from __future__ import annotations

from sqlalchemy import inspect, text

from registry.db import current_revision, head_revision, make_engine, migrate


def test_migrating_an_empty_database_reaches_head_with_every_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"servers", "server_versions", "status_events", "reviews", "catalog_state"} <= tables
        migrate(engine)  # idempotent
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_upgrading_from_the_first_revision_keeps_data_and_starts_the_catalog_revision(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0001")
        assert "reviews" not in inspect(engine).get_table_names()
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO servers (name, namespace, route, created_at) VALUES ('com.a/x', 'com.a', 'x', :t)"),
                {"t": "2026-01-01 00:00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO server_versions (server_name, version, document, title, description, search_text,"
                    " owner_team, business_group, sensitivity, lifecycle, status_message, is_latest, published_by,"
                    " published_at, updated_at, status_changed_at) VALUES ('com.a/x', '1.0.0', '{}', '', '', 'x',"
                    " 't', '', 'internal', 'approved', '', :latest, 'someone', :t, :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00", "latest": True},
            )
        migrate(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version, lifecycle FROM server_versions")).all() == [
                ("1.0.0", "approved")
            ]
            epoch, counter = connection.execute(text("SELECT epoch, counter FROM catalog_state")).one()
        assert counter == 1 and len(epoch) == 8
    finally:
        engine.dispose()


def test_upgrading_from_the_previous_revision_drops_only_the_lifecycle_index(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0002")
        before = {index["name"] for index in inspect(engine).get_indexes("server_versions")}
        migrate(engine)
        after = {index["name"] for index in inspect(engine).get_indexes("server_versions")}
        assert before - after == {"ix_server_versions_lifecycle"}
        assert "ix_versions_name_id" in after
    finally:
        engine.dispose()
