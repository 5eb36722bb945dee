"""A token revoked at the authorization server is refused within about a second by both layers, through the real
processes: the gateway (ext_authz follows the revocation feed) and a kit server asked directly on its own port,
which the gateway never sees (in containers the servers share a network with it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portcullis.testing import AGENT, LocalPlatform

pytestmark = pytest.mark.e2e
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    workdir: Path = tmp_path_factory.mktemp("revocation-platform")
    with LocalPlatform.start(workdir, workers=2, identity=True) as running:
        yield running


def _status(url: str, token: str) -> int:
    return httpx.post(url, headers={**HEADERS, "Authorization": f"Bearer {token}"}, json=TOOLS_LIST).status_code


def _refused_after(platform: LocalPlatform, token: str, deadline_seconds: float) -> dict[str, float]:
    """Seconds until each layer answers 401 (polled, with a deadline); a layer still accepting is missing."""
    urls = {"kit on its own port": platform.demo_url, "gateway": platform.mcp_url("demo")}
    start = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(urls) and time.monotonic() - start < deadline_seconds:
        for layer, url in urls.items():
            if layer not in refused and _status(url, token) == 401:
                refused[layer] = time.monotonic() - start
        time.sleep(0.05)
    return refused


def test_a_revoked_token_is_refused_within_seconds_by_the_kit_on_its_own_port_and_by_the_gateway(
    platform: LocalPlatform,
) -> None:
    token = platform.agent_token(server="demo")
    # Both layers accept it first (the kit now holds it in its verified-token cache).
    assert _status(platform.demo_url, token) == 200
    assert _status(platform.mcp_url("demo"), token) == 200
    assert httpx.post(f"{platform.issuer}/revoke", data={"token": token}, auth=AGENT).status_code == 200
    refused = _refused_after(platform, token, deadline_seconds=3.0)
    print(f"revoked token refused after: {refused}")
    assert set(refused) == {"kit on its own port", "gateway"}, f"still accepted by: {refused}"
    assert max(refused.values()) < 2.0
    # Another token of the same client is not affected.
    assert _status(platform.demo_url, platform.agent_token(server="demo")) == 200


def test_the_issuer_metadata_names_the_feed_the_layers_follow(platform: LocalPlatform) -> None:
    metadata = httpx.get(f"{platform.issuer}/.well-known/oauth-authorization-server").json()
    assert metadata["portcullis_revocation_feed_endpoint"] == platform.revocation_url
    feed = httpx.get(platform.revocation_url)
    unchanged = httpx.get(platform.revocation_url, headers={"If-None-Match": feed.headers["etag"]})
    assert feed.status_code == 200 and unchanged.status_code == 304


def test_a_revoked_token_is_refused_by_the_registry_within_seconds(tmp_path: Path) -> None:
    with LocalPlatform.start(tmp_path, workers=1, identity=True, registry=True) as platform:
        mine = f"{platform.registry_url}/v0.1/x/portcullis/me/servers"
        token = platform.agent_token(resource=platform.registry_url)
        assert httpx.get(mine, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.post(f"{platform.issuer}/revoke", data={"token": token}, auth=AGENT).status_code == 200
        start = time.monotonic()
        while httpx.get(mine, headers={"Authorization": f"Bearer {token}"}).status_code != 401:
            assert time.monotonic() - start < 3.0, "the registry still accepts the revoked token"
            time.sleep(0.05)
        print(f"revoked token refused by the registry after {time.monotonic() - start:.2f} s")
        fresh = platform.agent_token(resource=platform.registry_url)
        assert httpx.get(mine, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
