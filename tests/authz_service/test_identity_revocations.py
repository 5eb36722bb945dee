"""The identity side publishes the revocation feed: the revoked, unexpired access tokens of its store, with an
ETag (304 when unchanged), named in its metadata, followed over HTTP by the edge and the kit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from authz_service.identity.revocations import FEED_PATH
from authz_service.runtime import Runtime
from authz_service.settings import Settings
from portcullis_contracts.revocations import (
    EXPIRY_GRACE_SECONDS,
    FEED_METADATA_KEY,
    RevocationFollower,
    RevocationsUnavailable,
    decode_feed,
)
from tests.authz_service.identity_support import DEMO, ISSUER, AuthServer, build_server

AGENT = ("internal-agent", "internal-agent-dev-secret")


@pytest.fixture
def server(tmp_path: Path) -> AuthServer:
    return build_server(tmp_path)


def _agent_token(server: AuthServer) -> tuple[str, dict[str, Any]]:
    answer = server.client.post("/token", data={"grant_type": "client_credentials", "resource": DEMO}, auth=AGENT)
    token = answer.json()["access_token"]
    return token, server.claims(token)


def _revoke(server: AuthServer, token: str) -> None:
    assert server.client.post("/revoke", data={"token": token}, auth=AGENT).status_code == 200


def test_the_issuer_metadata_names_its_feed(server: AuthServer) -> None:
    metadata = server.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata[FEED_METADATA_KEY] == f"{ISSUER}{FEED_PATH}"


def test_a_token_revoked_at_revoke_is_listed_with_its_expiry_and_others_are_not(server: AuthServer) -> None:
    token, claims = _agent_token(server)
    _, other = _agent_token(server)
    _revoke(server, token)
    listed = decode_feed(server.client.get(FEED_PATH).content)
    assert listed == {claims["jti"]: claims["exp"]}
    assert other["jti"] not in listed


def test_an_unchanged_feed_answers_304_to_its_etag_and_a_new_revocation_changes_it(server: AuthServer) -> None:
    first = server.client.get(FEED_PATH)
    etag = first.headers["etag"]
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    unchanged = server.client.get(FEED_PATH, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    _revoke(server, _agent_token(server)[0])
    changed = server.client.get(FEED_PATH, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_an_entry_leaves_the_feed_only_once_its_token_is_past_expiry_and_the_leeway_grace(server: AuthServer) -> None:
    token, claims = _agent_token(server)
    _revoke(server, token)
    seen = []
    for offset in (claims["exp"] - server.clock() + EXPIRY_GRACE_SECONDS - 5, EXPIRY_GRACE_SECONDS + 10):
        server.clock.offset += offset
        server.identity.revocations.invalidate()
        seen.append(claims["jti"] in decode_feed(server.client.get(FEED_PATH).content))
    assert seen == [True, False]


def test_the_feed_answers_503_never_an_old_list_when_the_store_cannot_be_read(server: AuthServer) -> None:
    assert server.client.get(FEED_PATH).status_code == 200
    server.identity.store.engine.dispose()
    Path(server.settings.identity_database().removeprefix("sqlite:///")).unlink()  # an empty database: no tables
    server.identity.revocations.invalidate()
    answer = server.client.get(FEED_PATH)
    assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"


def test_a_follower_finds_and_follows_the_real_feed_through_the_metadata(server: AuthServer) -> None:
    token, claims = _agent_token(server)
    transport = httpx.ASGITransport(app=server.client.app)

    async def run() -> tuple[frozenset[str], frozenset[str]]:
        follower = RevocationFollower(issuer=ISSUER, http=httpx.AsyncClient(transport=transport, base_url=ISSUER))
        await follower.poll_once()
        before = follower.revoked()
        _revoke(server, token)
        await follower.poll_once()
        return before, follower.revoked()

    before, after = anyio.run(run)
    assert before == frozenset() and after == frozenset({claims["jti"]})


def test_the_edge_follows_its_own_feed_over_http_and_refuses_until_it_is_loaded(tmp_path: Path) -> None:
    settings = Settings(
        key_dir=tmp_path / "keys", decision_log=tmp_path / "d.jsonl", http_port=18181, host="0.0.0.0", watch=False
    )
    runtime = Runtime(settings)
    try:
        assert runtime.revocations is not None and runtime.revocations.url == "http://127.0.0.1:18181/revocations"
        assert not runtime.revocations_ready
        with pytest.raises(RevocationsUnavailable):
            runtime.revoked_tokens()
    finally:
        runtime.close()


def test_without_built_in_identity_the_edge_follows_the_configured_feed_or_none(tmp_path: Path) -> None:
    base: dict[str, Any] = {"key_dir": tmp_path / "keys", "decision_log": tmp_path / "d.jsonl", "identity": False}
    configured = Runtime(Settings(**base, revocation_url="https://idp.example.com/revocations"))
    unconfigured = Runtime(Settings(**base))
    try:
        assert configured.revocations is not None
        assert configured.revocations.url == "https://idp.example.com/revocations"
        assert unconfigured.revocations is None and unconfigured.revoked_tokens() == frozenset()
    finally:
        configured.close()
        unconfigured.close()
