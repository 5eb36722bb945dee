"""Service credentials: each secret speaks for one owner, from the settings or a directory read when it changes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from authz_service.credentials import ServiceCredentials, ensure_credential


def _bearer(secret: str) -> str:
    return f"Bearer {secret}"


def test_a_secret_names_its_owner_and_nothing_else_does() -> None:
    credentials = ServiceCredentials({"sql": "sql-secret-0123456789", "registry": "registry-secret-0123456789"})
    assert credentials.owner(_bearer("sql-secret-0123456789")) == "sql"
    assert credentials.owner(_bearer("registry-secret-0123456789")) == "registry"
    for header in (None, "", "Bearer ", "Bearer wrong", "Basic sql-secret-0123456789", "sql-secret-0123456789"):
        assert credentials.owner(header) is None


def test_a_credential_written_into_the_directory_works_without_a_restart(tmp_path: Path) -> None:
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=0)
    assert credentials.owner(_bearer("anything")) is None
    secret = ensure_credential(tmp_path, "weather")
    assert credentials.owner(_bearer(secret)) == "weather"
    (tmp_path / "weather").unlink()
    assert credentials.owner(_bearer(secret)) is None


def test_a_credential_rewritten_in_place_stops_the_old_secret(tmp_path: Path) -> None:
    (tmp_path / "sql").write_text("sql-secret-leaked-0123456789")
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=0)
    assert credentials.owner(_bearer("sql-secret-leaked-0123456789")) == "sql"
    (tmp_path / "sql").write_text("sql-secret-rotated-0123456789")  # same file, same directory entry
    assert credentials.owner(_bearer("sql-secret-leaked-0123456789")) is None
    assert credentials.owner(_bearer("sql-secret-rotated-0123456789")) == "sql"


def test_the_directory_is_read_at_most_once_per_interval(tmp_path: Path) -> None:
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=3600)
    assert credentials.owner(_bearer("anything")) is None
    secret = ensure_credential(tmp_path, "weather")
    assert credentials.owner(_bearer(secret)) is None  # not yet: read again once the interval has passed


def test_ensure_credential_keeps_an_existing_secret_private_to_its_user(tmp_path: Path) -> None:
    first = ensure_credential(tmp_path / "creds", "sql")
    assert ensure_credential(tmp_path / "creds", "sql") == first
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "creds" / "sql").stat().st_mode) == 0o600
    assert [path.name for path in (tmp_path / "creds").iterdir()] == ["sql"]  # no temporary file left behind
    with pytest.raises(ValueError):
        ensure_credential(tmp_path / "creds", "../registry")


def test_a_kubernetes_secret_mount_is_read_through_its_data_link_and_follows_a_swap(tmp_path: Path) -> None:
    # Kubernetes mounts a Secret as `..data -> ..<timestamp>/` with one `<key> -> ..data/<key>` link per key, and
    # updates it by swapping the `..data` link.
    first, second = tmp_path / "..2026_12_05_1", tmp_path / "..2026_12_05_2"
    first.mkdir()
    second.mkdir()
    (first / "sql").write_text("sql-secret-version-one-0123456789\n")
    (second / "sql").write_text("sql-secret-version-two-0123456789\n")
    os.symlink(first.name, tmp_path / "..data")
    os.symlink("..data/sql", tmp_path / "sql")
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=0)
    assert credentials.owner(_bearer("sql-secret-version-one-0123456789")) == "sql"
    os.symlink(second.name, tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert credentials.owner(_bearer("sql-secret-version-one-0123456789")) is None
    assert credentials.owner(_bearer("sql-secret-version-two-0123456789")) == "sql"


def test_a_secret_two_owners_share_in_the_directory_speaks_for_neither(tmp_path: Path) -> None:
    (tmp_path / "sql").write_text("one-secret-for-two-0123456789")
    (tmp_path / "spark").write_text("one-secret-for-two-0123456789")
    (tmp_path / "airflow").write_text("airflow-secret-0123456789")
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=0)
    assert credentials.owner(_bearer("one-secret-for-two-0123456789")) is None
    assert credentials.owner(_bearer("airflow-secret-0123456789")) == "airflow"


def test_files_that_are_not_owner_names_are_not_credentials(tmp_path: Path) -> None:
    (tmp_path / ".hidden").write_text("hidden-secret-0123456789")
    (tmp_path / "UPPER").write_text("upper-secret-0123456789")
    (tmp_path / "empty").write_text("")
    (tmp_path / "folder").mkdir()
    credentials = ServiceCredentials({}, tmp_path, reread_seconds=0)
    for secret in ("hidden-secret-0123456789", "upper-secret-0123456789", ""):
        assert credentials.owner(_bearer(secret)) is None


def test_a_missing_directory_leaves_the_settings_credentials(tmp_path: Path) -> None:
    credentials = ServiceCredentials({"demo": "demo-secret-0123456789"}, tmp_path / "absent")
    assert credentials.owner(_bearer("demo-secret-0123456789")) == "demo"
