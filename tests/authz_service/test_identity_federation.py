"""Login federation: the authorization server sends the person to an upstream OIDC provider and takes their
groups from its ID token. The upstream here is a second, real instance of our own server (its own process,
directory, keys and issuer).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from portcullis.testing import authz_environment, free_port, free_port_block, stop_process, wait_http
from portcullis_contracts.directory import hash_secret
from tests.authz_service.identity_support import (
    DEMO,
    ISSUER,
    ROOT,
    AuthServer,
    authorize_params,
    build_server,
    csrf_of,
    exchange_code,
    pkce,
)

UPSTREAM_SECRET = "downstream-federation-secret"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second authz_service: the company's "OIDC provider", whose directory knows zoe."""
    workdir = tmp_path_factory.mktemp("upstream")
    directory = {
        "users": {
            "zoe": {
                "name": "Zoe Zhang",
                "email": "zoe@corp.example",
                "groups": ["finance-eng", "finance-analysts"],
                "business_groups": ["finance"],
                "password_hash": hash_secret("zoe-password"),
            }
        },
        "clients": {
            "portcullis": {
                "name": "Portcullis",
                "token_endpoint_auth_method": "client_secret_basic",
                "secret_hash": hash_secret(UPSTREAM_SECRET),
                "redirect_uris": [f"{ISSUER}/federation/callback"],
                "scope": "openid profile email",
            }
        },
    }
    (workdir / "directory.yaml").write_text(yaml.safe_dump(directory))
    http_port, grpc_port = free_port(), free_port_block(1)
    issuer = f"http://127.0.0.1:{http_port}"
    env = authz_environment(
        workdir, http_port=http_port, grpc_port=grpc_port, directory_file=str(workdir / "directory.yaml")
    )
    with (workdir / "upstream.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "authz_service"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"{issuer}/readyz", process=process)
        yield issuer
    finally:
        stop_process(process)


@pytest.fixture
def federated(tmp_path: Path, upstream: str) -> AuthServer:
    return build_server(
        tmp_path,
        upstream_issuer=upstream,
        upstream_client_id="portcullis",
        upstream_client_secret=UPSTREAM_SECRET,
    )


def _upstream_login(location: str, user: str, password: str) -> httpx.Response:
    """The person at the upstream provider: sign in, allow, and get sent back to us."""
    base = "{0.scheme}://{0.netloc}".format(urlsplit(location))
    with httpx.Client(timeout=10) as browser:
        page = browser.get(location)
        assert page.status_code == 200, page.text
        page = browser.post(f"{base}/login", data={"csrf": csrf_of(page.text), "username": user, "password": password})
        if 'name="password"' in page.text:
            return page
        return browser.post(f"{base}/consent", data={"csrf": csrf_of(page.text), "decision": "approve"})


def test_login_federated_to_an_upstream_provider_takes_groups_from_its_id_token(
    federated: AuthServer, upstream: str
) -> None:
    verifier, challenge = pkce()
    start = federated.client.get("/authorize", params=authorize_params(challenge), follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"].startswith(f"{upstream}/authorize?")
    upstream_query = parse_qs(urlsplit(start.headers["location"]).query)
    assert upstream_query["code_challenge_method"] == ["S256"] and upstream_query["nonce"]

    back = _upstream_login(start.headers["location"], "zoe", "zoe-password")
    assert back.status_code == 303 and back.headers["location"].startswith(f"{ISSUER}/federation/callback?")
    callback = urlsplit(back.headers["location"])
    consent = federated.client.get(f"{callback.path}?{callback.query}")
    assert consent.status_code == 200 and "Zoe Zhang" in consent.text
    answer = federated.client.post(
        "/consent", data={"csrf": csrf_of(consent.text), "decision": "approve"}, follow_redirects=False
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    body: dict[str, Any] = exchange_code(federated, code, verifier).json()
    claims = federated.claims(body["access_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == DEMO and claims["sub"] == "zoe"
    assert claims["groups"] == ["finance-analysts", "finance-eng"] and claims["business_groups"] == ["finance"]
    assert claims["email"] == "zoe@corp.example"


def test_a_federated_login_with_a_forged_state_is_refused(federated: AuthServer, upstream: str) -> None:
    start = federated.client.get("/authorize", params=authorize_params(pkce()[1]), follow_redirects=False)
    back = _upstream_login(start.headers["location"], "zoe", "zoe-password")
    callback = urlsplit(back.headers["location"])
    query = {key: values[0] for key, values in parse_qs(callback.query).items()}
    query["state"] = "forged"
    refused = federated.client.get(callback.path, params=query)
    assert refused.status_code == 400 and "state" in refused.text
    assert "code=" not in json.dumps(dict(refused.headers))


def test_the_dev_directory_login_is_not_offered_when_login_is_federated(federated: AuthServer) -> None:
    assert (
        federated.client.post("/login", data={"csrf": "x", "username": "alice", "password": "portcullis"}).status_code
        == 400
    )
    start = federated.client.get("/authorize", params=authorize_params(pkce()[1]), follow_redirects=False)
    assert start.status_code == 303 and 'name="password"' not in start.text
