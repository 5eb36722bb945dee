"""Signing-key rotation through the real Envoy, which validates tokens against authz_service's own JWKS.

Envoy caches that JWKS (`jwks_cache_seconds`); the tests shorten the cache and the activation delay in the
same proportion as production's 300 s and 330 s, so a rotation is seen end to end in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from authz_service.catalog import FileCatalogSource
from authz_service.keys import KeyRing
from authz_service.worker import wait_grpc_serving
from gateway.config import build_config, canonical_uri, render_yaml, spec_from_catalog
from gateway.launcher import start_envoy, validate_config
from portcullis.processes import running, stop_process, wait_http
from portcullis.testing import DEMO_SECRET, JwksServer, free_port
from portcullis.up import kit_server_environment

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ACCEPT = "application/json, text/event-stream"


@dataclass
class Stack:
    """authz_service (issuer and JWKS), and Envoy and the demo server trusting authz_service's JWKS."""

    key_dir: Path
    issuer: str
    gateway_url: str

    def token(self) -> str:
        """A token signed now by the ring's current key, as the authorization server would sign it."""
        key = KeyRing(self.key_dir).current()
        return key.mint(
            issuer=self.issuer,
            subject="alice",
            audience=canonical_uri(self.gateway_url, "demo"),
            client_id="claude-desktop",
            claims={
                "email": "alice@example.com",
                "scope": "mcp",
                "groups": ["eng", "ads-eng"],
                "business_groups": ["ads"],
            },
            ttl_seconds=600,
        )

    def call(self, token: str) -> int:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        headers = {"accept": ACCEPT, "authorization": f"Bearer {token}"}
        url = canonical_uri(self.gateway_url, "demo")
        return httpx.post(url, headers=headers, json=body, timeout=10).status_code

    def published(self) -> list[str]:
        response = httpx.get(f"{self.issuer}/.well-known/jwks.json", timeout=5)
        return [key["kid"] for key in response.json()["keys"]]

    def rotate(self, activate_in: int) -> str:
        """`portcullis keys rotate` in its own process, as an operator runs it; the new kid."""
        result = subprocess.run(
            [sys.executable, "-m", "portcullis.cli", "keys", "rotate", "--key-dir", str(self.key_dir),
             "--activate-in", str(activate_in)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.split("new key ", 1)[1].split(":", 1)[0]


def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@contextmanager
def _stack(workdir: Path, *, jwks_cache_seconds: int) -> Iterator[Stack]:
    demo_port, http_port, grpc_port, gateway_port, admin_port = (free_port() for _ in range(5))
    catalog = FileCatalogSource(ROOT / "config" / "catalog.yaml").document()
    for server in catalog["servers"]:
        server["upstream"] = f"127.0.0.1:{demo_port if server['name'] == 'demo' else free_port()}"
    catalog_file = workdir / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(catalog))
    issuer, gateway_url = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{gateway_port}"
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTHZ_HTTP_PORT": str(http_port),
        "AUTHZ_GRPC_PORT": str(grpc_port),
        "AUTHZ_WORKERS": "1",
        "AUTHZ_POLICY_DIR": str(ROOT / "policies"),
        "AUTHZ_CATALOG_FILE": str(catalog_file),
        "AUTHZ_WATCH": "false",
        "AUTHZ_DECISION_LOG": str(workdir / "decisions.jsonl"),
        "AUTHZ_KEY_DIR": str(workdir / "keys"),
        "AUTHZ_ISSUER": issuer,
        "AUTHZ_IDENTITY": "false",  # the keys and their JWKS only: the login flows are tested on their own
        "AUTHZ_SERVICE_CREDENTIALS": json.dumps({"demo": DEMO_SECRET}),
    }
    # Without identity authz_service publishes no revocation feed: the demo server follows an empty one.
    feed = JwksServer({"keys": []})
    # The demo server verifies the same tokens against the same JWKS, with a cache shortened like Envoy's.
    demo_env = env | kit_server_environment(
        "demo",
        issuer=issuer,
        jwks_url=f"{issuer}/.well-known/jwks.json",
        resource=canonical_uri(gateway_url, "demo"),
        authz_url=issuer,
        authz_credential=DEMO_SECRET,
        revocation_url=feed.revocation_url,
    )
    demo_env["KIT_DEMO_JWKS_CACHE_SECONDS"] = str(jwks_cache_seconds)
    with ExitStack() as stack:
        stack.callback(feed.close)
        authz = stack.enter_context(running([sys.executable, "-m", "authz_service"], workdir / "authz.log",
                                            env=env, cwd=ROOT))  # fmt: skip
        wait_http(f"{issuer}/readyz", process=authz)
        wait_grpc_serving("127.0.0.1", [grpc_port], timeout=30, alive=lambda: authz.poll() is None)
        demo = stack.enter_context(running([sys.executable, "-m", "servers.demo", "--port", str(demo_port)],
                                           workdir / "demo.log", env=demo_env, cwd=ROOT))  # fmt: skip
        wait_http(f"http://127.0.0.1:{demo_port}/healthz", process=demo)
        spec = spec_from_catalog(
            FileCatalogSource(catalog_file).load(),
            issuer=issuer,
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            authz_endpoints=[("127.0.0.1", grpc_port)],
            public_url=gateway_url,
            listen_port=gateway_port,
            admin_port=admin_port,
        )
        config = workdir / "envoy.yaml"
        config.write_text(render_yaml(build_config(dataclasses.replace(spec, jwks_cache_seconds=jwks_cache_seconds))))
        validate_config(config)
        envoy = start_envoy(config, workdir / "envoy.log")
        try:
            wait_http(f"http://127.0.0.1:{admin_port}/ready", process=envoy)
            yield Stack(workdir / "keys", issuer, gateway_url)
        finally:
            stop_process(envoy)


def test_rotation_with_pre_publication_never_rejects_a_token_at_the_gateway(tmp_path: Path) -> None:
    with _stack(tmp_path, jwks_cache_seconds=3) as stack:
        old_token = stack.token()
        assert stack.call(old_token) == 200
        new_kid = stack.rotate(activate_in=6)  # longer than the cache, as 330 s is longer than 300 s
        assert _until(lambda: new_kid in stack.published(), timeout=5)  # the workers re-read the manifest
        assert stack.call(stack.token()) == 200  # still signed by the old key until activation
        assert _until(lambda: KeyRing(stack.key_dir).current().kid == new_kid, timeout=10)
        new_token = stack.token()
        assert stack.call(new_token) == 200  # Envoy already holds the new key: no 401 at activation
        assert stack.call(old_token) == 200  # the old key stays published until its tokens expire


def test_key_that_signs_before_the_gateway_refreshes_its_jwks_is_rejected(tmp_path: Path) -> None:
    """The control: without pre-publication, Envoy's cached JWKS refuses the new key's tokens."""
    with _stack(tmp_path, jwks_cache_seconds=300) as stack:
        old_token = stack.token()
        assert stack.call(old_token) == 200
        new_kid = stack.rotate(activate_in=0)
        assert _until(lambda: new_kid in stack.published(), timeout=5)
        assert stack.call(stack.token()) == 401
        assert stack.call(old_token) == 200
