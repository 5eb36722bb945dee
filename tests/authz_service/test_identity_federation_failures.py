"""Login federation against an upstream provider that misbehaves: whatever it answers, the person gets a clear
error page with the right status (502 when the provider cannot be used, 400 when this login is refused), never a
500, and the provider's discovery document is read once, not per login.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc.jwk import RSAKey

from tests.authz_service.identity_support import AuthServer, authorize_params, build_server, pkce
from tests.fake_oidc import DISCOVERY, Answer, FakeProvider, fake_provider


@pytest.fixture
def upstream() -> Iterator[FakeProvider]:
    with fake_provider() as provider:
        yield provider


@pytest.fixture
def federated(tmp_path: Path, upstream: FakeProvider) -> AuthServer:
    return build_server(
        tmp_path, upstream_issuer=upstream.url, upstream_client_id="portcullis", upstream_client_secret="s3cret-fed"
    )


def _start(server: AuthServer) -> tuple[str, str]:
    """Send the person upstream (signed out: a new browser); the state and nonce the server asked for."""
    server.client.cookies.clear()
    start = server.client.get("/authorize", params=authorize_params(pkce()[1]), follow_redirects=False)
    assert start.status_code == 303, start.text
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["portcullis"]
    return query["state"][0], query["nonce"][0]


def _callback(server: AuthServer, state: str) -> httpx2.Response:
    return server.client.get("/federation/callback", params={"code": "upstream-code", "state": state})


def test_a_login_completes_against_the_scripted_provider(federated: AuthServer, upstream: FakeProvider) -> None:
    state, nonce = _start(federated)
    upstream.answers["/token"] = Answer.json({"id_token": upstream.id_token(nonce=nonce, name="Zoe Zhang")})
    consent = _callback(federated, state)
    assert consent.status_code == 200 and "Zoe Zhang" in consent.text


def test_the_discovery_document_is_read_once_not_per_login(federated: AuthServer, upstream: FakeProvider) -> None:
    for _ in range(3):
        state, nonce = _start(federated)
        upstream.answers["/token"] = Answer.json({"id_token": upstream.id_token(nonce=nonce)})
        assert _callback(federated, state).status_code == 200
    assert upstream.requests[DISCOVERY] == 1 and upstream.requests["/jwks"] == 1


@pytest.mark.parametrize(
    ("answers", "shown"),
    [
        ({DISCOVERY: Answer.html()}, "not JSON"),
        ({DISCOVERY: Answer.html(status=503)}, "503"),
        ({DISCOVERY: Answer.json(["not", "an", "object"])}, "not a JSON object"),
        ({"/jwks": Answer.html()}, "key set is not JSON"),
        ({"/jwks": Answer.json({"keys": [{"kty": "nonsense"}]})}, "key set is unusable"),
    ],
)
def test_an_unreadable_provider_is_a_502_page_when_the_login_starts(
    federated: AuthServer, upstream: FakeProvider, answers: dict[str, Answer], shown: str
) -> None:
    upstream.answers.update(answers)
    page = federated.client.get("/authorize", params=authorize_params(pkce()[1]), follow_redirects=False)
    assert page.status_code == 502 and shown in page.text


@pytest.mark.parametrize(
    ("metadata", "shown"),
    [
        ({"jwks_uri": None}, "no usable jwks_uri"),
        ({"token_endpoint": None}, "no usable token_endpoint"),
        ({"authorization_endpoint": 42}, "no usable authorization_endpoint"),
        ({"issuer": "https://elsewhere.example"}, "another issuer"),
        ({"issuer": None}, "another issuer"),
    ],
)
def test_discovery_without_what_it_must_name_is_a_502_page(
    federated: AuthServer, upstream: FakeProvider, metadata: dict[str, object], shown: str
) -> None:
    upstream.serve_metadata(**metadata)
    page = federated.client.get("/authorize", params=authorize_params(pkce()[1]), follow_redirects=False)
    assert page.status_code == 502 and shown in page.text


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (Answer.html(), "other than JSON"),
        (Answer.html(status=502), "answered 502"),
        (Answer.html(status=400), "answered 400"),
        (Answer.json({"error": "server_error"}, status=500), "answered 500"),
        (Answer.json({"access_token": "x", "token_type": "Bearer"}), "no ID token"),
    ],
)
def test_an_unusable_token_answer_is_a_502_page(
    federated: AuthServer, upstream: FakeProvider, answer: Answer, shown: str
) -> None:
    state, _ = _start(federated)
    upstream.answers["/token"] = answer
    page = _callback(federated, state)
    assert page.status_code == 502 and shown in page.text


def test_a_refused_code_is_a_400_page(federated: AuthServer, upstream: FakeProvider) -> None:
    state, _ = _start(federated)
    upstream.answers["/token"] = Answer.json({"error": "invalid_grant"}, status=400)
    page = _callback(federated, state)
    assert page.status_code == 400 and "invalid_grant" in page.text


@pytest.mark.parametrize(
    ("claims", "shown"),
    [
        ({"sub": None}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sub": 42}, "sub"),
        ({"iss": "https://elsewhere.example"}, "iss"),
        ({"aud": "another-client"}, "aud"),
        ({"nonce": "replayed"}, "nonce"),
        ({"exp": 1_000}, "expired"),
    ],
)
def test_an_id_token_that_does_not_verify_is_a_400_page(
    federated: AuthServer, upstream: FakeProvider, claims: dict[str, Any], shown: str
) -> None:
    state, nonce = _start(federated)
    upstream.answers["/token"] = Answer.json({"id_token": upstream.id_token(**{"nonce": nonce, **claims})})
    page = _callback(federated, state)
    assert page.status_code == 400 and ("does not verify" in page.text or "names nobody" in page.text)
    assert shown in page.text


def test_an_id_token_signed_by_an_unknown_key_is_refused_without_a_flood_of_key_set_reads(
    federated: AuthServer, upstream: FakeProvider
) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger"})
    for _ in range(3):
        state, nonce = _start(federated)
        upstream.answers["/token"] = Answer.json({"id_token": upstream.id_token(key=stranger, nonce=nonce)})
        page = _callback(federated, state)
        assert page.status_code == 400 and "does not verify" in page.text
    # An unknown key id re-reads the key set (a rotation upstream), but not within seconds of the last read.
    assert upstream.requests["/jwks"] == 1


def test_a_garbage_id_token_is_a_400_page(federated: AuthServer, upstream: FakeProvider) -> None:
    state, _ = _start(federated)
    upstream.answers["/token"] = Answer.json({"id_token": "not.a.jwt"})
    page = _callback(federated, state)
    assert page.status_code == 400 and "does not verify" in page.text


def test_an_unreachable_token_endpoint_is_a_502_page(federated: AuthServer, upstream: FakeProvider) -> None:
    upstream.serve_metadata(token_endpoint="http://127.0.0.1:9/token")  # discard port: nothing listens
    state, _ = _start(federated)
    page = _callback(federated, state)
    assert page.status_code == 502 and "unreachable" in page.text
