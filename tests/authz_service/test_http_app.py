"""The HTTP adapter in-process: AuthZEN evaluation API, discovery, health and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from authz_service.errors import ConfigurationError
from authz_service.http_app import create_app
from authz_service.runtime import Runtime
from authz_service.settings import Settings
from tests.authz_service.helpers import CATALOG, POLICIES

SECRET = "s3rv1ce-credential-for-tests"
AUTH = {"authorization": f"Bearer {SECRET}"}
ALICE = {
    "type": "user",
    "id": "alice",
    "properties": {"client_id": "claude-desktop", "groups": ["eng", "ads-eng"], "business_groups": ["ads"]},
}
BOB = {"type": "user", "id": "bob", "properties": {"client_id": "claude-desktop", "groups": ["eng"]}}
REVENUE = {"type": "tool", "id": "get_revenue_metrics", "properties": {"server": "demo"}}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        policy_dir=POLICIES,
        catalog_file=CATALOG,
        decision_log=tmp_path / "decisions.jsonl",
        key_dir=tmp_path / "keys",
        service_credentials={"demo": SecretStr(SECRET)},
        max_body_bytes=4096,
    )
    built = Runtime(settings)
    yield built
    built.close()


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime))


def _evaluation(subject: dict[str, Any], resource: dict[str, Any], action: str = "call") -> dict[str, Any]:
    return {"subject": subject, "action": {"name": action}, "resource": resource}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {SECRET}"}])
def test_caller_without_a_valid_service_credential_gets_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/access/v1/evaluation", json=_evaluation(ALICE, REVENUE), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_evaluation_allows_ads_engineer_and_denies_others_with_reason(client: TestClient) -> None:
    allowed = client.post("/access/v1/evaluation", json=_evaluation(ALICE, REVENUE), headers=AUTH).json()
    denied = client.post("/access/v1/evaluation", json=_evaluation(BOB, REVENUE), headers=AUTH).json()
    assert allowed["decision"] is True
    assert denied["decision"] is False and denied["context"]["reason"] == "group_required"
    assert denied["context"]["id"] and denied["context"]["policy_revision"] and denied["context"]["catalog_revision"]


def test_evaluations_batch_answers_each_resource_in_order(client: TestClient) -> None:
    request = {
        "subject": BOB,
        "action": {"name": "call"},
        "evaluations": [
            {"resource": {"type": "tool", "id": name, "properties": {"server": "demo"}}}
            for name in ("whoami", "get_revenue_metrics", "echo")
        ],
    }
    results = client.post("/access/v1/evaluations", json=request, headers=AUTH).json()["evaluations"]
    assert [r["decision"] for r in results] == [True, False, True]


def test_evaluations_deny_on_first_deny_stops_at_the_first_denial(client: TestClient) -> None:
    request = {
        "subject": BOB,
        "action": {"name": "call"},
        "evaluations": [{"resource": REVENUE}, {"resource": {**REVENUE, "id": "whoami"}}],
        "options": {"evaluations_semantic": "deny_on_first_deny"},
    }
    results = client.post("/access/v1/evaluations", json=request, headers=AUTH).json()["evaluations"]
    assert [r["decision"] for r in results] == [False]


def test_dataset_read_is_gated_by_business_group(client: TestClient) -> None:
    data = {"type": "dataset", "id": "revenue.ads", "properties": {"server": "demo"}}
    assert client.post("/access/v1/evaluation", json=_evaluation(ALICE, data, "read"), headers=AUTH).json()["decision"]
    denied = client.post("/access/v1/evaluation", json=_evaluation(BOB, data, "read"), headers=AUTH).json()
    assert denied["context"]["reason"] == "business_group_mismatch"


def test_dataset_labels_sent_by_the_asking_server_are_ignored_for_the_catalogs(client: TestClient) -> None:
    # The catalog labels revenue.ads confidential to ads; a server relabelling it public reads nothing more.
    relabelled = {"type": "dataset", "id": "revenue.ads",
                  "properties": {"server": "demo", "business_group": "search", "sensitivity": "public"}}  # fmt: skip
    denied = client.post("/access/v1/evaluation", json=_evaluation(BOB, relabelled, "read"), headers=AUTH).json()
    assert denied["decision"] is False
    assert denied["context"]["reason"] == "business_group_mismatch"


def test_data_no_catalog_label_matches_is_decided_as_restricted(client: TestClient) -> None:
    unlabelled = {"type": "dataset", "id": "salaries.all", "properties": {"server": "demo", "sensitivity": "public"}}
    denied = client.post("/access/v1/evaluation", json=_evaluation(ALICE, unlabelled, "read"), headers=AUTH).json()
    assert denied["context"]["reason"] == "business_group_mismatch"


@pytest.mark.parametrize(
    "resource",
    [
        {"type": "server", "id": "sql"},
        {"type": "tool", "id": "run_query", "properties": {"server": "sql"}},
        {"type": "dataset", "id": "lake.finance.ledger", "properties": {"server": "sql"}},
        {"type": "registry_entry", "id": "com.portcullis/demo"},
    ],
    ids=["another-server", "another-servers-tool", "another-servers-dataset", "a-registry-entry"],
)
def test_a_servers_credential_may_ask_only_about_its_own_server(client: TestClient, resource: dict[str, Any]) -> None:
    response = client.post("/access/v1/evaluation", json=_evaluation(ALICE, resource, "read"), headers=AUTH)
    assert response.status_code == 403
    assert "may not ask" in response.json()["error"]


def test_one_foreign_question_refuses_the_whole_batch(client: TestClient) -> None:
    batch = {
        "subject": ALICE,
        "action": {"name": "call"},
        "evaluations": [
            {"resource": REVENUE},
            {"resource": {"type": "tool", "id": "x", "properties": {"server": "sql"}}},
        ],
    }
    assert client.post("/access/v1/evaluations", json=batch, headers=AUTH).status_code == 403


def test_the_registrys_credential_asks_about_entries_and_the_listing_only(tmp_path: Path) -> None:
    registry_secret = "registry-credential-for-tests"
    settings = Settings(
        policy_dir=POLICIES,
        catalog_file=CATALOG,
        decision_log=tmp_path / "decisions.jsonl",
        key_dir=tmp_path / "keys",
        service_credentials={"demo": SecretStr(SECRET), "registry": SecretStr(registry_secret)},
    )
    runtime = Runtime(settings)
    try:
        registry = TestClient(create_app(runtime))
        auth = {"authorization": f"Bearer {registry_secret}"}
        entry = {"type": "registry_entry", "id": "com.portcullis/demo", "properties": {"namespace": "com.portcullis"}}
        allowed = [
            _evaluation(ALICE, entry, "registry.publish"),
            _evaluation(ALICE, {"type": "server", "id": "demo"}, "connect"),
            _evaluation(ALICE, REVENUE, "call"),
        ]
        for body in allowed:
            assert registry.post("/access/v1/evaluation", json=body, headers=auth).status_code == 200, body
        refused = [
            _evaluation(ALICE, {"type": "dataset", "id": "revenue.ads", "properties": {"server": "demo"}}, "read"),
            _evaluation(ALICE, REVENUE, "call_unconfirmed"),
            _evaluation(ALICE, entry, "read"),
        ]
        for body in refused:
            assert registry.post("/access/v1/evaluation", json=body, headers=auth).status_code == 403, body
    finally:
        runtime.close()


def test_two_callers_sharing_one_secret_are_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="share a secret"):
        Settings(key_dir=tmp_path / "keys", service_credentials={"demo": SecretStr(SECRET), "sql": SecretStr(SECRET)})


@pytest.mark.parametrize(
    "body",
    [
        {"subject": ALICE},
        {"subject": ALICE, "action": {"name": "call"}, "resource": {"type": "tool", "id": "x"}},
        {"subject": {**ALICE, "properties": {"groups": "ads-eng"}}, "action": {"name": "call"}, "resource": REVENUE},
        {"subject": ALICE, "action": {"name": "call"}, "resource": {"type": "spaceship", "id": "x"}},
    ],
    ids=["missing-fields", "tool-without-server", "groups-not-a-list", "unknown-resource-type"],
)
def test_malformed_evaluation_is_a_400_with_a_message(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/access/v1/evaluation", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]


def test_non_json_body_is_a_400(client: TestClient) -> None:
    response = client.post("/access/v1/evaluation", content=b"nope", headers=AUTH)
    assert response.status_code == 400


def test_oversized_body_is_a_413(client: TestClient) -> None:
    body = _evaluation(ALICE, {**REVENUE, "properties": {"server": "demo", "arguments": {"x": "y" * 5000}}})
    assert client.post("/access/v1/evaluation", json=body, headers=AUTH).status_code == 413


def test_authzen_configuration_names_both_endpoints(client: TestClient) -> None:
    config = client.get("/.well-known/authzen-configuration").json()
    assert config["access_evaluation_endpoint"].endswith("/access/v1/evaluation")
    assert config["access_evaluations_endpoint"].endswith("/access/v1/evaluations")


def test_readyz_reports_revisions_and_a_rejected_reload(tmp_path: Path) -> None:
    policies = tmp_path / "p"
    policies.mkdir()
    for path in POLICIES.glob("*.polar"):
        (policies / path.name).write_text(path.read_text())
    settings = Settings(policy_dir=policies, catalog_file=CATALOG, decision_log=tmp_path / "d.jsonl",
                        key_dir=tmp_path / "k", watch=False)  # fmt: skip
    runtime = Runtime(settings)
    try:
        client = TestClient(create_app(runtime))
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["policy_revision"]
        (policies / "bad.polar").write_text("allow(")
        runtime.reload_policies()
        degraded = client.get("/readyz")
        assert degraded.status_code == 200
        assert degraded.json()["policy_revision"] == ready.json()["policy_revision"]
        assert "bad.polar" in degraded.json()["policy_error"]
    finally:
        runtime.close()


def test_readyz_is_503_without_any_policy(tmp_path: Path) -> None:
    settings = Settings(policy_dir=tmp_path, catalog_file=CATALOG, decision_log=tmp_path / "d.jsonl",
                        key_dir=tmp_path / "k")  # fmt: skip
    runtime = Runtime(settings)
    try:
        assert TestClient(create_app(runtime)).get("/readyz").status_code == 503
    finally:
        runtime.close()


def test_metrics_count_decisions_by_layer_and_result(client: TestClient) -> None:
    client.post("/access/v1/evaluation", json=_evaluation(BOB, REVENUE), headers=AUTH)
    text = client.get("/metrics").text
    assert 'portcullis_decisions_total{layer="server",result="deny"} 1.0' in text
    assert "portcullis_decision_seconds_bucket" in text
    assert "portcullis_policy_reloads_total 1.0" in text


def test_decisions_reach_the_log_file_as_json_lines(runtime: Runtime, client: TestClient) -> None:
    client.post("/access/v1/evaluation", json=_evaluation(BOB, REVENUE), headers=AUTH)
    runtime.log.close()
    lines = runtime.settings.decision_log.read_text().splitlines()
    assert len(lines) == 1
    assert SECRET not in lines[0]


def test_jwks_publishes_the_signing_key_with_kid_and_no_private_parts(client: TestClient, runtime: Runtime) -> None:
    response = client.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == [runtime.keys.current().kid]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])
    assert response.headers["cache-control"] == "public, max-age=300"
    assert (runtime.settings.key_dir / f"{keys[0]['kid']}.pem").stat().st_mode & 0o777 == 0o600


def test_jwks_publishes_a_rotated_key_before_it_signs(client: TestClient, runtime: Runtime) -> None:
    old = runtime.keys.current()
    new = runtime.keys.rotate(activation_seconds=330, token_ttl_seconds=600)
    kids = [key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [old.kid, new.kid]
    assert runtime.keys.current().kid == old.kid
