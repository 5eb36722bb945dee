"""Client applications and the other grants: client credentials (basic, post, private_key_jwt), dynamic
registration, Client ID Metadata Documents, token exchange, revocation and introspection.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authz_service.identity.errors import IdentityError
from portcullis_contracts.directory import hash_secret
from tests.authz_service.identity_support import (
    DEMO,
    ISSUER,
    REDIRECT,
    REGISTRY,
    AuthServer,
    build_server,
    code_flow,
    exchange_code,
)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AGENT_SECRET = "internal-agent-dev-secret"
DEMO_SECRET = "demo-server-dev-secret"
_APP = "https://app.example/cb"
_PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _with_key_client(data: dict[str, Any]) -> None:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_PRIVATE_KEY.public_key()))
    data["clients"]["batch-agent"] = {
        "name": "Batch agent",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [{**public, "kid": "batch-1", "use": "sig", "alg": "RS256"}]},
        "grant_types": ["client_credentials"],
        "scope": "mcp",
        "groups": ["agents"],
    }
    data["clients"]["post-agent"] = {
        "token_endpoint_auth_method": "client_secret_post",
        "secret_hash": hash_secret("post-secret"),
        "grant_types": ["client_credentials"],
        "scope": "mcp",
    }


@pytest.fixture
def server(tmp_path: Path) -> AuthServer:
    return build_server(tmp_path, directory=_with_key_client)


def _assertion(client_id: str = "batch-agent", *, audience: str = f"{ISSUER}/token", jti: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60}
    claims["jti"] = jti or uuid.uuid4().hex
    return jwt.encode(claims, _PRIVATE_KEY, algorithm="RS256", headers={"kid": "batch-1"})


def _key_jwt_request(server: AuthServer, assertion: str) -> Any:
    return server.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "resource": DEMO,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def test_client_credentials_with_basic_auth_gives_the_client_its_own_identity(server: AuthServer) -> None:
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials", "resource": DEMO}, auth=("internal-agent", AGENT_SECRET)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = server.claims(body["access_token"])
    assert claims["sub"] == "internal-agent" and claims["client_id"] == "internal-agent"
    assert claims["groups"] == ["agents"] and claims["aud"] == DEMO and claims["scope"] == "mcp"


def test_client_credentials_with_a_wrong_secret_is_invalid_client_with_401(server: AuthServer) -> None:
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials", "resource": DEMO}, auth=("internal-agent", "wrong")
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


def test_client_credentials_with_post_auth(server: AuthServer) -> None:
    data = {"grant_type": "client_credentials", "client_id": "post-agent", "client_secret": "post-secret"}
    response = server.client.post("/token", data=data)
    assert response.status_code == 200 and server.claims(response.json()["access_token"], audience=ISSUER)
    # The method a client registered is the only one it may use.
    basic = server.client.post("/token", data={"grant_type": "client_credentials"}, auth=("post-agent", "post-secret"))
    assert basic.json()["error"] == "invalid_client"


def test_client_credentials_with_private_key_jwt_and_no_replay(server: AuthServer) -> None:
    assertion = _assertion()
    response = _key_jwt_request(server, assertion)
    assert response.status_code == 200, response.text
    assert server.claims(response.json()["access_token"])["sub"] == "batch-agent"
    replay = _key_jwt_request(server, assertion)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"


def test_private_key_jwt_for_another_audience_or_key_is_refused(server: AuthServer) -> None:
    assert _key_jwt_request(server, _assertion(audience="https://other.example/token")).json()["error"] == (
        "invalid_client"
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(
        {"iss": "batch-agent", "sub": "batch-agent", "aud": f"{ISSUER}/token", "exp": now + 60, "jti": "x"},
        stranger,
        algorithm="RS256",
        headers={"kid": "batch-1"},
    )
    assert _key_jwt_request(server, forged).json()["error"] == "invalid_client"


def test_a_public_client_cannot_use_client_credentials(server: AuthServer) -> None:
    response = server.client.post("/token", data={"grant_type": "client_credentials", "client_id": "claude-desktop"})
    assert response.json()["error"] in ("invalid_client", "unauthorized_client")
    assert "access_token" not in response.json()


def test_client_credentials_for_an_unknown_resource_is_invalid_target(server: AuthServer) -> None:
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "https://x.example/mcp"},
        auth=("internal-agent", AGENT_SECRET),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


@pytest.mark.parametrize("resource", ["https://x.example/a'b", 'https://x.example/a"b', "https://x.example/caf\u00e9"])
def test_a_resource_an_error_may_not_repeat_is_a_400_never_a_500(server: AuthServer, resource: str) -> None:
    # Authlib refuses to build an error description holding a quote or non-ASCII text: that was a 500.
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials", "resource": resource}, auth=("internal-agent", AGENT_SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_target", "invalid_request")
    assert resource not in response.text


def test_dynamic_registration_of_a_public_client_then_the_code_flow(server: AuthServer) -> None:
    registered = server.client.post(
        "/register",
        json={
            "client_name": "Some IDE",
            "redirect_uris": ["http://127.0.0.1:7000/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        },
    )
    assert registered.status_code == 201, registered.text
    client = registered.json()
    assert client["client_id"].startswith("dyn-") and "client_secret" not in client
    code, verifier = code_flow(server, client_id=client["client_id"], redirect_uri="http://127.0.0.1:7000/cb")
    token = exchange_code(
        server, code, verifier, client_id=client["client_id"], redirect_uri="http://127.0.0.1:7000/cb"
    )
    assert server.claims(token.json()["access_token"])["client_id"] == client["client_id"]


def test_dynamic_registration_of_a_confidential_client_returns_its_secret_once(server: AuthServer) -> None:
    registered = server.client.post(
        "/register",
        json={"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"},
    ).json()
    assert registered["client_secret"]
    stored = server.identity.store.client(registered["client_id"])
    assert stored is not None and registered["client_secret"] not in json.dumps(stored)


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        (
            {"redirect_uris": ["https://app.example/cb"], "grant_types": ["client_credentials"]},
            "invalid_client_metadata",
        ),
        (
            {"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "magic"},
            "invalid_client_metadata",
        ),
    ],
)
def test_dynamic_registration_refuses_bad_metadata(server: AuthServer, metadata: dict[str, Any], error: str) -> None:
    response = server.client.post("/register", json=metadata)
    assert response.status_code == 400 and response.json()["error"] == error, response.text


def test_dynamic_registration_refuses_a_body_that_is_not_a_json_object(server: AuthServer) -> None:
    response = server.client.post("/register", content=b"[1,2]", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


class _MetadataDocument:
    """Serves a Client ID Metadata Document that names its own URL (or another, to test the check)."""

    def __init__(self, **overrides: Any):
        document = overrides

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = f"http://127.0.0.1:{self.server.server_port}{self.path}"  # type: ignore[attr-defined]
                body = json.dumps({
                    "client_id": url,
                    "client_name": "Hosted agent",
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "none",
                    **document,
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/oauth/client.json"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def document() -> Iterator[_MetadataDocument]:
    served = _MetadataDocument()
    yield served
    served.close()


def test_a_metadata_document_url_is_a_client_id(tmp_path: Path, document: _MetadataDocument) -> None:
    server = build_server(tmp_path, allow_insecure_metadata_documents=True)
    code, verifier = code_flow(server, client_id=document.url)
    response = exchange_code(server, code, verifier, client_id=document.url)
    assert server.claims(response.json()["access_token"])["client_id"] == document.url


def test_a_metadata_document_naming_another_client_id_is_refused(tmp_path: Path) -> None:
    served = _MetadataDocument(client_id="https://someone.else/client.json")
    try:
        server = build_server(tmp_path, allow_insecure_metadata_documents=True)
        page = server.client.get(
            "/authorize", params={"response_type": "code", "client_id": served.url, "redirect_uri": REDIRECT}
        )
        assert page.status_code == 400 and "location" not in page.headers
    finally:
        served.close()


def test_metadata_documents_over_http_or_on_private_addresses_are_refused_by_default(
    server: AuthServer, document: _MetadataDocument
) -> None:
    assert server.identity.clients.get(document.url) is None  # served, but over plain http
    with pytest.raises(IdentityError, match="private address"):
        server.identity.clients._fetch_document("https://127.0.0.1:1/client.json")  # refused before any fetch


def _alice_demo_token(server: AuthServer) -> str:
    code, verifier = code_flow(server)
    token: str = exchange_code(server, code, verifier).json()["access_token"]
    return token


def _exchange(server: AuthServer, token: str, **extra: str) -> Any:
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "resource": REGISTRY,
        **extra,
    }
    return server.client.post("/token", data=data, auth=("server.demo", DEMO_SECRET))


def test_token_exchange_gives_a_server_a_downstream_token_for_the_user_with_act(server: AuthServer) -> None:
    response = _exchange(server, _alice_demo_token(server))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and "refresh_token" not in body
    claims = server.claims(body["access_token"], audience=REGISTRY)
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "server.demo"}
    assert claims["groups"] == ["ads-eng", "eng"] and claims["client_id"] == "server.demo"


def test_token_exchange_refuses_a_token_the_server_did_not_receive(server: AuthServer) -> None:
    code, verifier = code_flow(server, resource=REGISTRY)
    registry_token = exchange_code(server, code, verifier).json()["access_token"]
    assert _exchange(server, registry_token).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"scope": "mcp openid"}, "invalid_scope"),
        ({"resource": "https://nowhere.example/"}, "invalid_target"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
        ({"subject_token": "not-a-token"}, "invalid_grant"),
    ],
)
def test_token_exchange_errors(server: AuthServer, extra: dict[str, str], error: str) -> None:
    response = _exchange(server, _alice_demo_token(server), **extra)
    assert response.status_code == 400 and response.json()["error"] == error, response.text


def test_token_exchange_needs_an_authenticated_client_allowed_to_exchange(server: AuthServer) -> None:
    token = _alice_demo_token(server)
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": token, "subject_token_type": ACCESS_TOKEN_TYPE}
    public = server.client.post("/token", data={**data, "client_id": "claude-desktop", "resource": REGISTRY})
    assert public.json()["error"] in ("invalid_client", "unauthorized_client")
    agent = server.client.post("/token", data={**data, "resource": REGISTRY}, auth=("internal-agent", AGENT_SECRET))
    assert agent.json()["error"] == "unauthorized_client"


def test_a_revoked_access_token_is_inactive_and_cannot_be_exchanged(server: AuthServer) -> None:
    token = _alice_demo_token(server)
    jti = server.claims(token)["jti"]
    revoked = server.client.post("/revoke", data={"token": token, "client_id": "claude-desktop"})
    assert revoked.status_code == 200
    assert jti in server.identity.store.revoked_access_tokens()
    inactive = server.client.post("/introspect", data={"token": token}, auth=("server.demo", DEMO_SECRET))
    assert inactive.json() == {"active": False}
    assert _exchange(server, token).json()["error"] == "invalid_grant"


def test_a_client_cannot_revoke_another_clients_token(server: AuthServer) -> None:
    token = _alice_demo_token(server)
    server.client.post("/revoke", data={"token": token, "client_id": "vscode"})
    assert server.claims(token)["jti"] not in server.identity.store.revoked_access_tokens()


def test_a_revoked_refresh_token_no_longer_refreshes(server: AuthServer) -> None:
    code, verifier = code_flow(server)
    refresh = exchange_code(server, code, verifier).json()["refresh_token"]
    server.client.post(
        "/revoke", data={"token": refresh, "token_type_hint": "refresh_token", "client_id": "claude-desktop"}
    )
    data = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "claude-desktop"}
    assert server.client.post("/token", data=data).json()["error"] == "invalid_grant"


def test_introspection_describes_a_live_token_to_a_confidential_client_only(server: AuthServer) -> None:
    token = _alice_demo_token(server)
    active = server.client.post("/introspect", data={"token": token}, auth=("server.demo", DEMO_SECRET)).json()
    assert active["active"] is True and active["sub"] == "alice" and active["aud"] == DEMO
    assert active["business_groups"] == ["ads"] and active["client_id"] == "claude-desktop"
    public = server.client.post("/introspect", data={"token": token, "client_id": "claude-desktop"})
    assert public.json()["error"] == "invalid_client"
    unknown = server.client.post("/introspect", data={"token": "abc"}, auth=("server.demo", DEMO_SECRET))
    assert unknown.json() == {"active": False}
