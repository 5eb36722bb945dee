"""The authorization code flow with PKCE, login and consent, refresh rotation, and every way to get it wrong."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.authz_service.identity_support import (
    DEMO,
    ISSUER,
    PASSWORD,
    REGISTRY,
    AuthServer,
    authorize_params,
    build_server,
    code_flow,
    csrf_of,
    exchange_code,
    pkce,
    sign_in_and_consent,
)


@pytest.fixture
def server(tmp_path: Path) -> AuthServer:
    return build_server(tmp_path)


def test_metadata_advertises_s256_pkce_metadata_documents_issuer_parameter_and_registration(server: AuthServer) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        metadata = server.client.get(path).json()
        assert metadata["issuer"] == ISSUER
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert metadata["client_id_metadata_document_supported"] is True
        assert metadata["authorization_response_iss_parameter_supported"] is True
        assert metadata["registration_endpoint"] == f"{ISSUER}/register"
        assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]
        assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]


def test_code_flow_issues_a_token_for_the_requested_server_only_with_every_claim(server: AuthServer) -> None:
    verifier, challenge = pkce()
    query = sign_in_and_consent(server, authorize_params(challenge, scope="openid mcp"))
    assert query["state"] == ["state-1"] and query["iss"] == [ISSUER]  # RFC 9207
    response = exchange_code(server, query["code"][0], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid mcp" and body["refresh_token"]
    claims = server.claims(body["access_token"])
    assert claims["aud"] == DEMO and claims["iss"] == ISSUER and claims["sub"] == "alice"
    assert claims["client_id"] == "claude-desktop" and claims["scope"] == "openid mcp"
    assert claims["email"] == "alice@example.com"
    assert claims["groups"] == ["ads-eng", "eng"] and claims["business_groups"] == ["ads"]
    assert claims["exp"] - claims["iat"] == server.settings.access_token_ttl_seconds and claims["jti"]
    id_token = server.claims(body["id_token"], audience="claude-desktop")
    assert id_token["sub"] == "alice" and id_token["at_hash"]


def test_a_second_server_gets_its_own_audience_without_signing_in_again(server: AuthServer) -> None:
    code_flow(server)
    verifier, challenge = pkce()
    page = server.client.get("/authorize", params=authorize_params(challenge, resource=REGISTRY))
    assert 'name="password"' not in page.text and "Allow" in page.text  # the login session is remembered
    answer = server.client.post(
        "/consent", data={"csrf": csrf_of(page.text), "decision": "approve"}, follow_redirects=False
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    token = exchange_code(server, code, verifier).json()["access_token"]
    assert server.claims(token, audience=REGISTRY)["aud"] == REGISTRY


def test_a_reused_code_is_refused_and_revokes_what_it_issued(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    first = exchange_code(server, code, verifier).json()
    again = exchange_code(server, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refresh = server.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "claude-desktop"},
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_a_wrong_pkce_verifier_is_refused_and_issues_nothing(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    wrong = exchange_code(server, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong.json()
    # Validate first, consume last: a guess at the verifier (hopeless: 256 bits) does not burn the client's code.
    assert exchange_code(server, code, verifier).status_code == 200


def test_an_expired_code_is_refused(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    server.clock.offset = server.settings.authorization_code_ttl_seconds + 1
    assert exchange_code(server, code, verifier).json()["error"] == "invalid_grant"


def test_a_code_is_bound_to_its_client_and_redirect_uri(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    other = exchange_code(server, code, verifier, client_id="vscode")
    assert other.json()["error"] == "invalid_grant"
    code, verifier = code_flow(server)
    moved = exchange_code(server, code, verifier, redirect_uri="http://127.0.0.1:5555/other")
    assert moved.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),
        ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
        ({"resource": "servers/demo/mcp"}, "invalid_target"),
        ({"scope": "mcp admin"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_a_bad_authorization_request_returns_to_the_client_with_the_error_state_and_issuer(
    server: AuthServer, change: dict[str, str], error: str
) -> None:
    params = {**authorize_params(pkce()[1]), **change}
    response = server.client.get("/authorize", params=params, follow_redirects=False)
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == [error] and query["state"] == ["state-1"] and query["iss"] == [ISSUER]
    assert "code" not in query


def test_two_resources_in_one_request_are_refused(server: AuthServer) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [*authorize_params(pkce()[1]).items()]
    params.append(("resource", REGISTRY))
    response = server.client.get("/authorize", params=params, follow_redirects=False)
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_target"]


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": "http://127.0.0.1:5555/callback/../steal"},
        {"redirect_uri": "http://localhost:5555/callback"},
        {"client_id": "no-such-client"},
        {"redirect_uri": ""},
    ],
)
def test_an_unregistered_redirect_uri_or_client_gets_an_error_page_never_a_redirect(
    server: AuthServer, change: dict[str, str]
) -> None:
    params = {**authorize_params(pkce()[1]), **change}
    response = server.client.get("/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers
    assert "cannot continue" in response.text


def test_a_loopback_redirect_may_use_any_port_but_not_another_path(server: AuthServer) -> None:
    code, verifier = code_flow(server, redirect_uri="http://127.0.0.1:61234/callback")
    ok = exchange_code(server, code, verifier, redirect_uri="http://127.0.0.1:61234/callback")
    assert ok.status_code == 200


def test_the_token_request_may_not_name_another_resource(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    response = exchange_code(server, code, verifier, resource=REGISTRY)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_a_wrong_password_shows_the_login_again_and_issues_nothing(server: AuthServer) -> None:
    page = server.client.get("/authorize", params=authorize_params(pkce()[1]))
    answer = server.client.post("/login", data={"csrf": csrf_of(page.text), "username": "alice", "password": "nope"})
    assert answer.status_code == 401 and "Wrong user name or password" in answer.text
    assert "portcullis_idp_session" not in server.client.cookies


def test_login_and_consent_without_the_pending_request_cookie_are_refused(server: AuthServer) -> None:
    server.client.get("/authorize", params=authorize_params(pkce()[1]))
    answer = server.client.post("/login", data={"csrf": "forged", "username": "alice", "password": PASSWORD})
    assert answer.status_code == 400 and "expired" in answer.text
    assert server.client.post("/consent", data={"csrf": "forged", "decision": "approve"}).status_code == 400


def test_denied_consent_returns_access_denied_to_the_client(server: AuthServer) -> None:
    query = sign_in_and_consent(server, authorize_params(pkce()[1]), decision="deny")
    assert query["error"] == ["access_denied"] and query["iss"] == [ISSUER] and "code" not in query


def test_refresh_rotates_the_token_and_reuse_revokes_the_family(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    first = exchange_code(server, code, verifier).json()

    def refresh(token: str) -> dict[str, str]:
        data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "claude-desktop"}
        result: dict[str, str] = server.client.post("/token", data=data).json()
        return result

    second = refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert server.claims(second["access_token"])["aud"] == DEMO
    assert refresh(first["refresh_token"])["error"] == "invalid_grant"  # replay of a rotated token
    assert refresh(second["refresh_token"])["error"] == "invalid_grant"  # ... revoked the whole family


def test_refresh_reads_the_directory_again(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    token = exchange_code(server, code, verifier).json()["refresh_token"]
    data = yaml.safe_load(server.directory_file.read_text())
    data["users"]["alice"]["groups"] = ["eng"]
    server.directory_file.write_text(yaml.safe_dump(data))
    server.identity.directory._checked = 0  # the file is re-read at most once a second
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "claude-desktop"}
    body = server.client.post("/token", data=data).json()
    assert server.claims(body["access_token"])["groups"] == ["eng"]


def test_the_flow_logs_no_code_token_or_password(server: AuthServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    code, verifier = code_flow(server)
    body = exchange_code(server, code, verifier).json()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (code, verifier, body["access_token"], body["refresh_token"], PASSWORD):
        assert secret not in logged


def test_token_endpoint_errors_follow_rfc_6749(server: AuthServer) -> None:
    unsupported = server.client.post("/token", data={"grant_type": "password", "client_id": "claude-desktop"})
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    missing = server.client.post("/token", data={"grant_type": "authorization_code", "client_id": "claude-desktop"})
    assert missing.json()["error"] == "invalid_request"
    unknown = server.client.post("/token", data={"grant_type": "authorization_code", "client_id": "nobody"})
    assert unknown.json()["error"] == "invalid_client"
    json_body = server.client.post("/token", json={"grant_type": "client_credentials"})
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    huge = server.client.post("/token", data={"grant_type": "x" * 100_000})
    assert huge.status_code == 413


def test_redirect_uri_is_required_at_the_token_endpoint(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": "claude-desktop"}
    response = server.client.post("/token", data=data)
    assert response.json()["error"] == "invalid_grant" and "access_token" not in response.json()


def test_userinfo_answers_for_a_live_token_only(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    token = exchange_code(server, code, verifier).json()["access_token"]
    info = server.client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.json()["sub"] == "alice"
    bad = server.client.get("/userinfo", headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")


def test_pages_forbid_framing_and_scripts(server: AuthServer) -> None:
    page = server.client.get("/authorize", params=authorize_params(pkce()[1]))
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text


def test_expired_codes_and_refresh_tokens_are_purged_but_a_fresh_replay_is_still_caught(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    first = exchange_code(server, code, verifier).json()
    store = server.identity.store
    assert store.purge_expired() == 0  # nothing has expired: the used code still catches a replay
    assert exchange_code(server, code, verifier).json()["error"] == "invalid_grant"
    server.clock.offset = server.settings.refresh_token_ttl_seconds + 1
    assert store.purge_expired() >= 2  # the code and the (now revoked) refresh tokens
    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "claude-desktop"}
    assert server.client.post("/token", data=data).json()["error"] == "invalid_grant"


def test_repeated_wrong_passwords_pause_sign_ins_for_that_user_before_any_hashing(server: AuthServer) -> None:
    page = server.client.get("/authorize", params=authorize_params(pkce()[1]))
    csrf = csrf_of(page.text)
    for _ in range(10):
        wrong = server.client.post("/login", data={"csrf": csrf, "username": "alice", "password": "guess"})
        assert wrong.status_code == 401
    paused = server.client.post("/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD})
    assert paused.status_code == 429 and "Too many failed sign-ins" in paused.text
    other = server.client.post("/login", data={"csrf": csrf, "username": "bob", "password": PASSWORD})
    assert other.status_code == 200  # another person is not locked out by alice's attacker
    server.clock.offset = 901
    again = server.client.post("/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD})
    assert again.status_code == 200
