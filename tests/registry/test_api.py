"""The registry API on SQLite and PostgreSQL, deciding through the real policies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from registry.authz import AuthzClient
from tests.registry.conftest import (
    AUDIENCE,
    SNAPSHOT_SECRET,
    RegistryHarness,
    build_registry,
    server_json,
)

DEMO = "com.portcullis/demo"
FINANCE = "com.portcullis.finance/finance-reports"
SNAPSHOT = {"Authorization": f"Bearer {SNAPSHOT_SECRET}"}


def _names(body: dict[str, Any]) -> list[str]:
    return [item["server"]["name"] for item in body["servers"]]


def _publish(registry: RegistryHarness, document: dict[str, Any], user: str = "alice", **params: str) -> Any:
    return registry.client.post("/v0.1/publish", json=document, headers=registry.auth(user), params=params)


def _review(registry: RegistryHarness, user: str, review: str, decision: str = "approve", **where: str) -> Any:
    name = where.get("name", "com.portcullis.ads/ad-insights")
    version = where.get("version", "1.0.0")
    return registry.client.post(
        f"/v0.1/x/portcullis/servers/{name.replace('/', '%2F')}/versions/{version}/reviews",
        json={"review": review, "decision": decision, "reason": f"{review} checked"},
        headers=registry.auth(user),
    )


def _approve(registry: RegistryHarness, **where: str) -> None:
    for user, review in (("dana", "security"), ("erin", "legal"), ("frank", "genai")):
        response = _review(registry, user, review, **where)
        assert response.status_code == 200, response.text


def _count(registry: RegistryHarness) -> int:
    every = "draft,pending_review,approved,deprecated,retired,rejected"
    body = registry.client.get("/v0.1/servers", params={"lifecycle": every, "limit": "100"}).json()
    return int(body["metadata"]["count"])


# --- reading -----------------------------------------------------------------------------------------------------


def test_listing_shows_approved_servers_and_hides_pending_ones_by_default(registry: RegistryHarness) -> None:
    body = registry.client.get("/v0.1/servers").json()
    assert _names(body) == [DEMO]
    official = body["servers"][0]["_meta"]["io.modelcontextprotocol.registry/official"]
    assert official["status"] == "active" and official["isLatest"] is True
    assert body["servers"][0]["_meta"]["dev.portcullis/governance"]["lifecycle"] == "approved"
    pending = registry.client.get("/v0.1/servers", params={"lifecycle": "pending_review"}).json()
    assert _names(pending) == [FINANCE]


def test_v0_is_an_alias_of_v0_1(registry: RegistryHarness) -> None:
    assert registry.client.get("/v0/servers").json() == registry.client.get("/v0.1/servers").json()


def test_one_version_and_latest_and_all_versions(registry: RegistryHarness) -> None:
    encoded = DEMO.replace("/", "%2F")
    exact = registry.client.get(f"/v0.1/servers/{encoded}/versions/1.0.0")
    latest = registry.client.get(f"/v0.1/servers/{encoded}/versions/latest")
    assert exact.status_code == latest.status_code == 200
    assert exact.json() == latest.json()
    versions = registry.client.get(f"/v0.1/servers/{encoded}/versions").json()
    assert [s["server"]["version"] for s in versions["servers"]] == ["1.0.0"]


def test_unknown_server_or_version_is_404_with_an_error_message(registry: RegistryHarness) -> None:
    missing = registry.client.get("/v0.1/servers/com.portcullis%2Fnope/versions")
    assert missing.status_code == 404 and missing.json() == {"error": "Server not found"}
    assert registry.client.get(f"/v0.1/servers/{DEMO.replace('/', '%2F')}/versions/9.9.9").status_code == 404


def test_cursor_pagination_walks_every_server_once(registry: RegistryHarness) -> None:
    for index in range(5):
        name = f"com.portcullis.ads/tool-{index}"
        assert _publish(registry, server_json(name)).status_code == 200
    params = {"lifecycle": "pending_review,approved", "limit": "2"}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body = registry.client.get("/v0.1/servers", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        assert body["metadata"]["count"] == len(body["servers"]) <= 2
        seen += _names(body)
        pages += 1
        cursor = body["metadata"].get("nextCursor")
        if not cursor:
            break
    assert pages == 4
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7


def test_a_forged_cursor_is_a_400(registry: RegistryHarness) -> None:
    response = registry.client.get("/v0.1/servers", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_search_version_latest_and_updated_since_filter(registry: RegistryHarness) -> None:
    assert _names(registry.client.get("/v0.1/servers", params={"search": "DEMO"}).json()) == [DEMO]
    assert _names(registry.client.get("/v0.1/servers", params={"search": "smoke test"}).json()) == [DEMO]
    assert _names(registry.client.get("/v0.1/servers", params={"search": "nothing-like-this"}).json()) == []
    assert _names(registry.client.get("/v0.1/servers", params={"version": "latest"}).json()) == [DEMO]
    assert _names(registry.client.get("/v0.1/servers", params={"version": "2.0.0"}).json()) == []
    future = registry.client.get("/v0.1/servers", params={"updated_since": "2999-01-01T00:00:00Z"}).json()
    past = registry.client.get("/v0.1/servers", params={"updated_since": "2000-01-01T00:00:00+02:00"}).json()
    assert _names(future) == [] and _names(past) == [DEMO]
    assert registry.client.get("/v0.1/servers", params={"updated_since": "yesterday"}).status_code == 400


def test_read_api_sends_cors_headers_but_refuses_cross_origin_writes(registry: RegistryHarness) -> None:
    read = registry.client.get("/v0.1/servers", headers={"Origin": "https://ide.example"})
    assert read.headers["access-control-allow-origin"] == "*"
    preflight = registry.client.options(
        "/v0.1/publish",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "POST" not in preflight.headers.get("access-control-allow-methods", "")


# --- publishing and validation -----------------------------------------------------------------------------------


def test_publish_needs_a_valid_token_for_the_registry(registry: RegistryHarness) -> None:
    document = server_json()
    assert registry.client.post("/v0.1/publish", json=document).status_code == 401
    garbage = registry.client.post("/v0.1/publish", json=document, headers={"Authorization": "Bearer x.y.z"})
    assert garbage.status_code == 401 and "WWW-Authenticate" in garbage.headers
    wrong_audience = registry.client.post(
        "/v0.1/publish", json=document, headers=registry.auth("alice", audience="http://gateway.test/servers/demo/mcp")
    )
    assert wrong_audience.status_code == 401
    assert _count(registry) == 2


def test_team_member_publishes_into_their_namespace_pending_review(registry: RegistryHarness) -> None:
    response = _publish(registry, server_json())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["server"]["name"] == "com.portcullis.ads/ad-insights"
    assert body["_meta"]["dev.portcullis/governance"]["lifecycle"] == "pending_review"
    assert _names(registry.client.get("/v0.1/servers").json()) == [DEMO]  # not listed until approved


def test_publish_as_draft_then_submit_for_review(registry: RegistryHarness) -> None:
    assert (
        _publish(registry, server_json(), draft="true").json()["_meta"]["dev.portcullis/governance"]["lifecycle"]
        == "draft"
    )
    submitted = registry.client.post(
        "/v0.1/x/portcullis/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0/transitions",
        json={"action": "submit", "reason": "ready"},
        headers=registry.auth("alice"),
    )
    assert submitted.status_code == 200
    assert submitted.json()["_meta"]["dev.portcullis/governance"]["lifecycle"] == "pending_review"


def test_publishing_into_a_namespace_your_team_does_not_own_is_403_with_the_policy_reason(
    registry: RegistryHarness,
) -> None:
    response = _publish(registry, server_json(), user="bob")
    assert response.status_code == 403
    assert response.json()["reason"] == "namespace_not_owned"
    assert _count(registry) == 2


@pytest.mark.parametrize("name", ["nodots/server", "com.portcullis/a/b", "COM..x/server", "com.portcullis"])
def test_a_name_outside_the_reverse_dns_namespace_form_is_a_400(registry: RegistryHarness, name: str) -> None:
    response = _publish(registry, server_json(name=name))
    assert response.status_code == 400
    assert "namespace" in response.json()["error"]


def test_duplicate_version_is_409_and_changes_nothing(registry: RegistryHarness) -> None:
    assert _publish(registry, server_json()).status_code == 200
    again = _publish(registry, server_json())
    assert again.status_code == 409
    assert _count(registry) == 3


def test_a_gateway_route_taken_by_another_server_is_409(registry: RegistryHarness) -> None:
    response = _publish(registry, server_json(name="com.portcullis.ads/demo"))
    assert response.status_code == 409 and "route" in response.json()["error"]


def test_schema_errors_are_422_with_the_json_path_of_every_error(registry: RegistryHarness) -> None:
    document = server_json()
    del document["description"]
    document["version"] = "^1.0"
    document["remotes"][0]["url"] = "ftp://nope"
    governance = document["_meta"]["dev.portcullis/governance"]
    governance["sensitivity"] = "top-secret"
    governance["upstream"] = "no-port"
    response = _publish(registry, document)
    assert response.status_code == 422
    paths = {error["path"] for error in response.json()["errors"]}
    base = "$._meta['dev.portcullis/governance']"
    assert {"$", "$.version", f"{base}.sensitivity", f"{base}.upstream"} <= paths
    assert any(path.startswith("$.remotes[0]") for path in paths)  # the transport's anyOf fails at the remote
    assert _count(registry) == 2


def test_governance_extension_is_required(registry: RegistryHarness) -> None:
    document = server_json()
    del document["_meta"]
    response = _publish(registry, document)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"path": "$._meta['dev.portcullis/governance']", "message": "the governance extension is required"}
    ]


def test_body_that_is_not_json_is_400_and_oversized_is_413(registry: RegistryHarness) -> None:
    headers = {**registry.auth("alice"), "Content-Type": "application/json"}
    assert registry.client.post("/v0.1/publish", content=b"{nope", headers=headers).status_code == 400
    huge = json.dumps({**server_json(), "padding": "x" * (registry.settings.max_body_bytes + 1)})
    assert registry.client.post("/v0.1/publish", content=huge, headers=headers).status_code == 413
    assert _count(registry) == 2


def test_validate_checks_without_publishing(registry: RegistryHarness) -> None:
    ok = registry.client.post("/v0.1/x/portcullis/validate", json=server_json())
    assert ok.status_code == 200 and ok.json()["route"] == "ad-insights"
    bad = registry.client.post("/v0.1/x/portcullis/validate", json={"name": "com.portcullis/x"})
    assert bad.status_code == 422 and bad.json()["errors"]
    assert _count(registry) == 2


def test_older_released_schema_documents_are_accepted(registry: RegistryHarness) -> None:
    document = server_json()
    document["$schema"] = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
    document["packages"] = [
        {"registryType": "pypi", "identifier": "ad-insights", "version": "1.0.0", "transport": {"type": "stdio"}}
    ]
    assert registry.client.post("/v0.1/x/portcullis/validate", json=document).status_code == 200


# --- reviews and lifecycle ---------------------------------------------------------------------------------------


def test_every_required_review_approves_and_the_catalog_follows(registry: RegistryHarness) -> None:
    before = registry.client.get("/v0.1/x/portcullis/catalog", headers=SNAPSHOT)
    assert _publish(registry, server_json()).status_code == 200
    _review(registry, "dana", "security")
    _review(registry, "erin", "legal")
    pending = registry.client.get("/v0.1/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0").json()
    assert pending["_meta"]["dev.portcullis/governance"]["lifecycle"] == "pending_review"
    last = _review(registry, "frank", "genai")
    assert last.json()["_meta"]["dev.portcullis/governance"]["lifecycle"] == "approved"
    after = registry.client.get("/v0.1/x/portcullis/catalog", headers=SNAPSHOT)
    assert after.headers["etag"] != before.headers["etag"]
    routes = {server["name"]: server for server in after.json()["servers"]}
    assert set(routes) == {"demo", "ad-insights"}
    assert routes["ad-insights"]["tools"][1] == {
        "name": "pause_campaign", "description": "Pause one campaign.", "sensitivity": "internal",
        "read_only": False, "business_groups": [],
    }  # fmt: skip
    history = registry.client.get(
        "/v0.1/x/portcullis/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0/history"
    ).json()
    assert [(e["from"], e["to"], e["actor"]) for e in history["events"]] == [
        (None, "pending_review", "alice"),
        ("pending_review", "approved", "frank"),
    ]
    assert [(r["review"], r["reviewer"], r["reason"]) for r in history["reviews"]] == [
        ("security", "dana", "security checked"),
        ("legal", "erin", "legal checked"),
        ("genai", "frank", "genai checked"),
    ]
    assert history["missing_reviews"] == []


@pytest.mark.parametrize(
    "document",
    [server_json("com.portcullis.ads/registry"), server_json(route="registry")],
    ids=["derived-route", "explicit-route"],
)
def test_a_server_may_not_take_the_registrys_name(registry: RegistryHarness, document: dict[str, Any]) -> None:
    # The registry's AuthZEN credential is owned by the name `registry`: a server routed so would share it.
    response = registry.client.post("/v0.1/x/portcullis/validate", json=document)
    assert response.status_code == 422
    assert "reserved for the platform" in response.json()["errors"][0]["message"]


def test_dataset_labels_are_reviewed_with_the_server_and_carried_in_the_catalog(registry: RegistryHarness) -> None:
    invalid: list[list[dict[str, str]]] = [[{"match": "a.*", "sensitivity": "secret"}], [{"match": "x", "b": "c"}]]
    for labels in [*invalid, [{}]]:
        response = registry.client.post("/v0.1/x/portcullis/validate", json=server_json(datasets=labels))
        assert response.status_code == 422, labels
        assert any(".datasets[0]" in error["path"] for error in response.json()["errors"])
    labels = [
        {"match": "ads.campaigns.*", "business_group": "ads", "sensitivity": "confidential"},
        {"match": "ads.public.*", "business_group": "", "sensitivity": "internal"},
    ]
    assert _publish(registry, server_json(datasets=labels)).status_code == 200
    for user, review in (("dana", "security"), ("erin", "legal"), ("frank", "genai")):
        _review(registry, user, review)
    servers = registry.client.get("/v0.1/x/portcullis/catalog", headers=SNAPSHOT).json()["servers"]
    assert {server["name"]: server["datasets"] for server in servers}["ad-insights"] == labels


def test_a_review_by_someone_outside_its_group_is_403_and_recorded_nowhere(registry: RegistryHarness) -> None:
    _publish(registry, server_json())
    response = _review(registry, "erin", "security")
    assert response.status_code == 403 and response.json()["reason"] == "not_in_review_group"
    history = registry.client.get(
        "/v0.1/x/portcullis/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0/history"
    ).json()
    assert history["reviews"] == [] and history["missing_reviews"] == ["security", "legal", "genai"]


def test_nobody_reviews_their_own_submission(registry: RegistryHarness) -> None:
    document = server_json(name="com.portcullis/platform-tools", owner_team="genai-council")
    assert _publish(registry, document, user="frank").status_code == 403  # namespace owned by platform
    response = _review(registry, "frank", "genai", name=FINANCE, version="0.9.0")
    assert response.status_code == 200  # frank did not publish finance-reports
    document = server_json(name="com.portcullis/platform-tools", owner_team="platform")
    assert _publish(registry, document, user="bob").status_code == 200


def test_a_rejected_review_rejects_the_version(registry: RegistryHarness) -> None:
    _publish(registry, server_json())
    rejected = _review(registry, "dana", "security", "reject")
    assert rejected.json()["_meta"]["dev.portcullis/governance"]["lifecycle"] == "rejected"
    assert rejected.json()["_meta"]["io.modelcontextprotocol.registry/official"]["status"] == "deleted"
    assert _review(registry, "erin", "legal").status_code == 400


def test_explicit_approval_before_every_review_is_a_409_naming_the_missing_ones(registry: RegistryHarness) -> None:
    _publish(registry, server_json())
    _review(registry, "dana", "security")
    response = registry.client.patch(
        "/v0.1/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0/status",
        json={"status": "active"},
        headers=registry.auth("frank"),  # a registry admin
    )
    assert response.status_code == 409
    assert response.json()["missing"] == ["legal", "genai"]


def test_owner_deprecates_and_retires_and_the_catalog_drops_the_server(registry: RegistryHarness) -> None:
    _publish(registry, server_json())
    _approve(registry)
    url = "/v0.1/servers/com.portcullis.ads%2Fad-insights/versions/1.0.0/status"
    outsider = registry.client.patch(url, json={"status": "deprecated"}, headers=registry.auth("bob"))
    assert outsider.status_code == 403
    deprecated = registry.client.patch(
        url, json={"status": "deprecated", "statusMessage": "use v2"}, headers=registry.auth("alice")
    )
    assert deprecated.status_code == 200
    official = deprecated.json()["_meta"]["io.modelcontextprotocol.registry/official"]
    assert official["status"] == "deprecated" and official["statusMessage"] == "use v2"
    again = registry.client.patch(url, json={"status": "deprecated"}, headers=registry.auth("alice"))
    assert again.status_code == 400 and "No changes" in again.json()["error"]
    retired = registry.client.patch(url, json={"status": "deleted"}, headers=registry.auth("alice"))
    assert retired.json()["_meta"]["dev.portcullis/governance"]["lifecycle"] == "retired"
    assert "com.portcullis.ads/ad-insights" not in _names(registry.client.get("/v0.1/servers").json())
    with_deleted = registry.client.get("/v0.1/servers", params={"include_deleted": "true"}).json()
    assert "com.portcullis.ads/ad-insights" in _names(with_deleted)
    routes = [s["name"] for s in registry.client.get("/v0.1/x/portcullis/catalog", headers=SNAPSHOT).json()["servers"]]
    assert routes == ["demo"]


def test_status_of_every_version_changes_together(registry: RegistryHarness) -> None:
    for version in ("1.0.0", "1.1.0"):
        _publish(registry, server_json(version=version))
        _approve(registry, version=version)
    response = registry.client.patch(
        "/v0.1/servers/com.portcullis.ads%2Fad-insights/status",
        json={"status": "deprecated", "statusMessage": "moving to v2"},
        headers=registry.auth("alice"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["updatedCount"] == 2
    assert {s["_meta"]["io.modelcontextprotocol.registry/official"]["status"] for s in body["servers"]} == {
        "deprecated"
    }
    latest = registry.client.get("/v0.1/servers/com.portcullis.ads%2Fad-insights/versions/latest").json()
    assert latest["server"]["version"] == "1.1.0"


def test_invalid_status_value_is_400(registry: RegistryHarness) -> None:
    response = registry.client.patch(
        f"/v0.1/servers/{DEMO.replace('/', '%2F')}/versions/1.0.0/status",
        json={"status": "archived"},
        headers=registry.auth("bob"),
    )
    assert response.status_code == 400


def test_authz_service_down_means_503_and_nothing_written(registry: RegistryHarness, database_url: str) -> None:
    down = AuthzClient(httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5), credential="x")
    harness = build_registry(database_url, down, seed=False)
    response = harness.client.post("/v0.1/publish", json=server_json(), headers=harness.auth("alice"))
    assert response.status_code == 503
    assert _names(harness.client.get("/v0.1/servers", params={"lifecycle": "pending_review"}).json()) == [FINANCE]


# --- feeding the policies and the clients ------------------------------------------------------------------------


def test_catalog_snapshot_needs_a_service_credential_and_honours_if_none_match(registry: RegistryHarness) -> None:
    assert registry.client.get("/v0.1/x/portcullis/catalog").status_code == 401
    first = registry.client.get("/v0.1/x/portcullis/catalog", headers=SNAPSHOT)
    assert first.status_code == 200
    body = first.json()
    assert first.headers["etag"] == f'"{body["revision"]}"'
    assert [s["name"] for s in body["servers"]] == ["demo"]
    unchanged = registry.client.get(
        "/v0.1/x/portcullis/catalog", headers={**SNAPSHOT, "If-None-Match": first.headers["etag"]}
    )
    assert unchanged.status_code == 304 and unchanged.content == b""


def test_my_servers_lists_what_this_user_and_client_may_use(registry: RegistryHarness) -> None:
    alice = registry.client.get(
        "/v0.1/x/portcullis/me/servers", headers=registry.auth("alice", client="claude-desktop")
    )
    assert alice.status_code == 200
    [demo] = alice.json()["servers"]
    assert demo["url"] == "http://gateway.test/servers/demo/mcp"
    assert demo["protected_resource_metadata"] == (
        "http://gateway.test/.well-known/oauth-protected-resource/servers/demo/mcp"
    )
    assert [t["name"] for t in demo["tools"]] == ["whoami", "echo", "get_revenue_metrics"]
    bob = registry.client.get("/v0.1/x/portcullis/me/servers", headers=registry.auth("bob", client="claude-desktop"))
    assert [t["name"] for t in bob.json()["servers"][0]["tools"]] == ["whoami", "echo"]
    cursor = registry.client.get("/v0.1/x/portcullis/me/servers", headers=registry.auth("alice", client="cursor"))
    assert cursor.json()["servers"] == []
    assert registry.client.get("/v0.1/x/portcullis/me/servers").status_code == 401


def test_token_audience_must_be_the_registry(registry: RegistryHarness) -> None:
    assert AUDIENCE == registry.settings.token_audience
