"""A revoked token is refused by the registry too: it follows the issuer's revocation feed, like both layers."""

from __future__ import annotations

import jwt
import pytest

from portcullis_contracts.revocations import RevocationsUnavailable
from registry.authz import AuthzClient
from tests.registry.conftest import build_registry, server_json


class Revocations:
    """What a follower of the feed would hold: the revoked ids, or a feed it cannot vouch for."""

    def __init__(self) -> None:
        self.ids: frozenset[str] = frozenset()
        self.down = False

    def __call__(self) -> frozenset[str]:
        if self.down:
            raise RevocationsUnavailable("stale")
        return self.ids


def test_a_revoked_token_cannot_publish_while_a_live_one_can(database_url: str, authz_client: AuthzClient) -> None:
    revocations = Revocations()
    registry = build_registry(database_url, authz_client, revoked=revocations)
    revoked, live = registry.token("alice"), registry.token("alice")
    revocations.ids = frozenset({jwt.decode(revoked, options={"verify_signature": False})["jti"]})
    refused = registry.client.post("/v0.1/publish", json=server_json(), headers={"Authorization": f"Bearer {revoked}"})
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]
    assert (
        registry.client.post(
            "/v0.1/publish", json=server_json(), headers={"Authorization": f"Bearer {live}"}
        ).status_code
        == 200
    )


def test_a_feed_that_cannot_be_vouched_for_refuses_writes_with_503(
    database_url: str, authz_client: AuthzClient
) -> None:
    revocations = Revocations()
    registry = build_registry(database_url, authz_client, revoked=revocations)
    revocations.down = True
    response = registry.client.post("/v0.1/publish", json=server_json(), headers=registry.auth("alice"))
    assert response.status_code == 503
    assert registry.client.get("/v0.1/servers").status_code == 200  # reads need no token


@pytest.mark.parametrize("jti", [None, "", ["a"], 7, "x" * 300], ids=["missing", "empty", "list", "number", "huge"])
def test_a_token_without_a_usable_jti_is_refused(database_url: str, authz_client: AuthzClient, jti: object) -> None:
    registry = build_registry(database_url, authz_client, revoked=Revocations())
    claims = jwt.decode(registry.token("alice"), options={"verify_signature": False})
    if jti is None:
        del claims["jti"]
    else:
        claims["jti"] = jti
    token = registry.key.sign(claims)
    response = registry.client.post("/v0.1/publish", json=server_json(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
