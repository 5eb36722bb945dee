"""The web UI's single sign-on against an authorization server that misbehaves (a scripted provider over real
HTTP): whatever it answers, the person gets a clear page with the right status (503 when sign-in cannot start,
502 when the server's answer is unusable, 400 when this sign-in is refused), never a 500; the server's metadata
is read once, not per sign-in. The sign-in through the real authorization server is tests/e2e/test_oauth_clients.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from registry.app import create_app
from registry.authz import AuthzClient
from registry.identity import RegistryTokenVerifier
from registry.settings import RegistrySettings
from tests.fake_oidc import AS_METADATA, Answer, FakeProvider, fake_provider

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "http://registry.test"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with fake_provider() as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path, provider: FakeProvider) -> Iterator[TestClient]:
    settings = RegistrySettings(
        database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
        seed_dir=ROOT / "config" / "servers",
        decision_log=tmp_path / "decisions.jsonl",
        public_url=REGISTRY,
        issuer=provider.url,
        oauth_client_id="registry-ui",
        oauth_client_secret=SecretStr("registry-ui-test-secret"),
    )
    verifier = RegistryTokenVerifier(issuer=provider.url, audience=REGISTRY, jwks_url=f"{provider.url}/jwks")
    # Signing in asks the decision point nothing: nothing listens here.
    authz = AuthzClient(httpx.Client(base_url="http://127.0.0.1:9"), credential="unused")
    app = create_app(settings, authz=authz, verifier=verifier)
    yield TestClient(app)
    app.state.registry.engine.dispose()


def _start(browser: TestClient, provider: FakeProvider) -> str:
    """Send the person to the authorization server; the state it carries."""
    start = browser.get("/ui/login/oauth", params={"next": "/ui/reviews"}, follow_redirects=False)
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    assert location.startswith(f"{provider.url}/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["resource"] == [REGISTRY] and query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == ["registry-ui"] and query["redirect_uri"] == [f"{REGISTRY}/auth/callback"]
    return query["state"][0]


def _callback(browser: TestClient, provider: FakeProvider, state: str) -> httpx2.Response:
    params = {"code": "a-code", "state": state, "iss": provider.url}
    return browser.get("/auth/callback", params=params, follow_redirects=False)


def _access_token(provider: FakeProvider, **claims: Any) -> Answer:
    token = provider.id_token(**{"aud": REGISTRY, "sub": "dana", "name": "Dana Diaz", "groups": ["security"], **claims})
    return Answer.json({"access_token": token, "token_type": "Bearer", "expires_in": 300})


def test_people_sign_in_and_the_metadata_is_read_once_not_per_sign_in(
    browser: TestClient, provider: FakeProvider
) -> None:
    for _ in range(2):
        state = _start(browser, provider)
        provider.answers["/token"] = _access_token(provider)
        back = _callback(browser, provider, state)
        assert back.status_code == 303 and back.headers["location"] == "/ui/reviews", back.text
    assert "Dana Diaz" in browser.get("/ui/reviews").text
    assert provider.requests[AS_METADATA] == 1


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (Answer.html(), "unreachable"),
        (Answer.html(status=503), "unreachable"),
        (Answer.json(["not", "an", "object"]), "unreachable"),
    ],
)
def test_unreadable_metadata_is_a_503_page_when_sign_in_starts(
    browser: TestClient, provider: FakeProvider, answer: Answer, shown: str
) -> None:
    provider.answers[AS_METADATA] = answer
    page = browser.get("/ui/login/oauth", follow_redirects=False)
    assert page.status_code == 503 and shown in page.text


@pytest.mark.parametrize(
    ("metadata", "shown"),
    [
        ({"token_endpoint": None}, "no usable token_endpoint"),
        ({"authorization_endpoint": ["x"]}, "no usable authorization_endpoint"),
        ({"issuer": "https://elsewhere.example"}, "another issuer"),
    ],
)
def test_metadata_without_what_it_must_name_is_a_503_page(
    browser: TestClient, provider: FakeProvider, metadata: dict[str, object], shown: str
) -> None:
    provider.serve_metadata(**metadata)
    page = browser.get("/ui/login/oauth", follow_redirects=False)
    assert page.status_code == 503 and shown in page.text


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (Answer.html(), "unreadable"),
        (Answer.html(status=502), "answered 502"),
        (Answer.html(status=401), "answered 401"),
        (Answer.json({"error": "server_error"}, status=500), "answered 500"),
        (Answer.json({"token_type": "Bearer"}), "no access token"),
    ],
)
def test_an_unusable_token_answer_is_a_502_page(
    browser: TestClient, provider: FakeProvider, answer: Answer, shown: str
) -> None:
    state = _start(browser, provider)
    provider.answers["/token"] = answer
    page = _callback(browser, provider, state)
    assert page.status_code == 502 and shown in page.text


def test_a_refused_code_is_a_400_page(browser: TestClient, provider: FakeProvider) -> None:
    state = _start(browser, provider)
    provider.answers["/token"] = Answer.json({"error": "invalid_grant"}, status=400)
    page = _callback(browser, provider, state)
    assert page.status_code == 400 and "invalid_grant" in page.text


def test_an_access_token_that_does_not_verify_is_a_400_page(browser: TestClient, provider: FakeProvider) -> None:
    state = _start(browser, provider)
    provider.answers["/token"] = _access_token(provider, aud="http://another.test")
    page = _callback(browser, provider, state)
    assert page.status_code == 400 and "Sign-in failed" in page.text


def test_an_answer_without_the_issuer_or_from_another_is_refused(browser: TestClient, provider: FakeProvider) -> None:
    state = _start(browser, provider)
    for iss in ("", "https://elsewhere.example"):
        page = browser.get("/auth/callback", params={"code": "c", "state": state, "iss": iss})
        assert page.status_code == 400 and "another issuer" in page.text
    assert provider.requests["/token"] == 0


def test_a_callback_for_a_sign_in_not_started_in_this_browser_is_a_400_page(
    browser: TestClient, provider: FakeProvider
) -> None:
    page = browser.get("/auth/callback", params={"code": "c", "state": "guessed", "iss": provider.url})
    assert page.status_code == 400 and "Sign-in expired" in page.text
    assert provider.requests["/token"] == 0
