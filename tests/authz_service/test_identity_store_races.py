"""Reuse detection survives a race: a token saved by the winner after a replay revoked its family is dead too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from authz_service.identity.store import CodeGrant, IdentityStore, RefreshGrant
from authz_service.identity.subject import Subject

ALICE = Subject(sub="alice")
RESOURCE = "http://127.0.0.1:8080/servers/demo/mcp"


@pytest.fixture
def store(tmp_path: Path) -> IdentityStore:
    return IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")


def _refresh_grant(family: str) -> RefreshGrant:
    return RefreshGrant(family, "vscode", "mcp", RESOURCE, ALICE, time.time() + 3600)


def test_a_refresh_token_saved_by_the_winner_after_the_replay_revoked_the_family_is_refused(
    store: IdentityStore,
) -> None:
    store.save_refresh_token("first", _refresh_grant("family-1"))
    assert store.rotate_refresh_token("first", "vscode") is not None  # the winner claims it
    assert store.rotate_refresh_token("first", "vscode") is None  # the replay: the family is revoked
    store.save_refresh_token("second", _refresh_grant("family-1"))  # the winner's response, saved last
    assert store.refresh_token("second") is None


def test_a_refresh_token_from_a_code_replayed_before_the_winner_saved_it_is_refused(store: IdentityStore) -> None:
    grant = CodeGrant("vscode", "http://127.0.0.1/cb", "mcp", RESOURCE, ALICE, "challenge", "", "family-2")
    store.save_code("code", grant, ttl=60)
    assert store.consume_code("code", "vscode") is not None  # the winner
    assert store.consume_code("code", "vscode") is None  # the replay, before the winner saved its refresh token
    store.save_refresh_token("from-the-code", _refresh_grant("family-2"))
    assert store.refresh_token("from-the-code") is None


def test_other_families_and_rotation_without_replay_are_unaffected(store: IdentityStore) -> None:
    store.save_refresh_token("one", _refresh_grant("family-3"))
    store.save_refresh_token("other", _refresh_grant("family-4"))
    assert store.rotate_refresh_token("one", "vscode") is not None
    store.save_refresh_token("two", _refresh_grant("family-3"))
    assert store.refresh_token("two") is not None
    assert store.rotate_refresh_token("one", "vscode") is None  # replay of the rotated token
    assert store.refresh_token("two") is None
    assert store.refresh_token("other") is not None


def test_a_family_tombstone_cannot_be_presented_as_a_token(store: IdentityStore) -> None:
    store.save_refresh_token("t", _refresh_grant("family-5"))
    assert store.revoke_refresh_token("t", "vscode")
    assert store.revoke_refresh_token("t", "vscode")  # revoking twice keeps one tombstone
    for client in ("vscode", ""):
        assert store.rotate_refresh_token("revoked-family\0family-5", client) is None
