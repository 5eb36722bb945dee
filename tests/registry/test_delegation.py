"""Delegated tokens (RFC 8693 token exchange: the token carries `act`, the server acting for the person) write
nothing in the registry: the actor chain goes to the policy with every write, and registry.polar denies it.
Reads stay open to them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.registry.conftest import SNAPSHOT_SECRET, RegistryHarness, server_json

NAME = "com.portcullis.ads%2Fad-insights"
EXTENSION = f"/v0.1/x/portcullis/servers/{NAME}/versions/1.0.0"
ACT = {"sub": "server.demo"}


def _as_server(registry: RegistryHarness, user: str, act: Any = ACT) -> dict[str, str]:
    """What a server holding `user`'s exchanged token would send (client_id and act as the issuer sets them)."""
    return registry.auth(user, client="server.demo", act=act)


def _denied_as_delegated(response: Any) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "delegated_actor"


def _lifecycle(registry: RegistryHarness) -> str:
    body = registry.client.get(f"/v0.1/servers/{NAME}/versions/1.0.0", params={"include_deleted": "true"}).json()
    return str(body["_meta"]["dev.portcullis/governance"]["lifecycle"])


def test_a_server_holding_a_persons_exchanged_token_cannot_publish_as_them(registry: RegistryHarness) -> None:
    refused = registry.client.post("/v0.1/publish", json=server_json(), headers=_as_server(registry, "alice"))
    _denied_as_delegated(refused)
    assert registry.client.get(f"/v0.1/servers/{NAME}/versions/1.0.0").status_code == 404  # nothing stored
    mine = registry.client.post("/v0.1/publish", json=server_json(), headers=registry.auth("alice"))
    assert mine.status_code == 200, mine.text  # the same person, through their own client


def test_a_chain_of_delegations_is_refused_too(registry: RegistryHarness) -> None:
    chain = {"sub": "server.sql", "act": {"sub": "server.demo"}}
    refused = registry.client.post("/v0.1/publish", json=server_json(), headers=_as_server(registry, "alice", chain))
    _denied_as_delegated(refused)


def test_a_delegated_token_cannot_review_transition_or_retire(registry: RegistryHarness) -> None:
    assert registry.client.post("/v0.1/publish", json=server_json(), headers=registry.auth("alice")).status_code == 200
    review = registry.client.post(
        f"{EXTENSION}/reviews",
        json={"review": "security", "decision": "approve", "reason": "looks fine"},
        headers=_as_server(registry, "dana"),
    )
    _denied_as_delegated(review)
    reject = registry.client.post(
        f"{EXTENSION}/transitions", json={"action": "reject", "reason": "x"}, headers=_as_server(registry, "alice")
    )
    assert reject.status_code == 403
    for url in (f"/v0.1/servers/{NAME}/versions/1.0.0/status", f"/v0.1/servers/{NAME}/status"):
        retire = registry.client.patch(url, json={"status": "deleted"}, headers=_as_server(registry, "alice"))
        assert retire.status_code == 403, retire.text
    assert _lifecycle(registry) == "pending_review"
    history = registry.client.get(f"{EXTENSION}/history").json()
    assert history["reviews"] == [] and len(history["events"]) == 1  # nothing recorded for the delegated calls


@pytest.mark.parametrize(
    "act",
    ["server.demo", {"client": "server.demo"}, {"sub": ""}, {"sub": 7}, {"sub": "a", "act": "b"}, ["server.demo"]],
)
def test_a_token_whose_delegation_cannot_be_read_is_refused(registry: RegistryHarness, act: Any) -> None:
    response = registry.client.post("/v0.1/publish", json=server_json(), headers=_as_server(registry, "alice", act))
    assert response.status_code == 401 and "act" in response.json()["error"]


def test_a_delegation_chain_deeper_than_any_real_one_is_refused(registry: RegistryHarness) -> None:
    act: dict[str, Any] = {"sub": "server.0"}
    for depth in range(1, 20):
        act = {"sub": f"server.{depth}", "act": act}
    response = registry.client.post("/v0.1/publish", json=server_json(), headers=_as_server(registry, "alice", act))
    assert response.status_code == 401


def test_a_delegated_token_still_reads(registry: RegistryHarness) -> None:
    listing = registry.client.get("/v0.1/x/portcullis/me/servers", headers=_as_server(registry, "alice"))
    assert listing.status_code == 200, listing.text


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8282@attacker.example",
        "https://registry.example/#x",
        "ftp://registry.example/",
        "https://REGISTRY.example/",
        "//registry.example/",
        "https://registry.example/v0/../admin",
        "http://2130706433/",
    ],
)
def test_declared_downstream_resources_must_be_canonical_absolute_http_uris(
    registry: RegistryHarness, uri: str
) -> None:
    response = registry.client.post("/v0.1/x/portcullis/validate", json=server_json(downstream_resources=[uri]))
    assert response.status_code in (400, 422) and "downstream" in response.text, response.text


def test_declared_downstream_resources_are_reviewed_and_carried_in_the_catalog(registry: RegistryHarness) -> None:
    document = server_json(downstream_resources=["http://127.0.0.1:8282"])
    assert registry.client.post("/v0.1/publish", json=document, headers=registry.auth("alice")).status_code == 200
    for user, review in (("dana", "security"), ("erin", "legal"), ("frank", "genai")):
        signed = registry.client.post(
            f"{EXTENSION}/reviews", json={"review": review, "decision": "approve"}, headers=registry.auth(user)
        )
        assert signed.status_code == 200, signed.text
    snapshot = registry.client.get("/v0.1/x/portcullis/catalog", headers={"Authorization": f"Bearer {SNAPSHOT_SECRET}"})
    entry = next(server for server in snapshot.json()["servers"] if server["name"] == "ad-insights")
    assert entry["downstream_resources"] == ["http://127.0.0.1:8282"]
