"""GatewaySync against a snapshot server over HTTP, with the real Envoy following the files it writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import GatewaySpec, GatewaySync, RouteSpec, canonical_uri, start_envoy, write_dynamic_bootstrap
from gateway.dynamic import JWT_AUTHN_FILE, write_atomic
from portcullis.processes import stop_process, wait_http
from portcullis.testing import free_port
from portcullis_contracts.catalog_snapshot import SNAPSHOT_PATH

pytestmark = pytest.mark.e2e


def _server(name: str, upstream: str | None = None) -> dict[str, Any]:
    # The upstreams are closed ports, never reached: ext_authz (unreachable, see ROUTED) refuses first.
    return {"name": name, "status": "approved", "owner_team": "platform", "upstream": upstream or "127.0.0.1:9"}


class SnapshotServer:
    """The registry's catalog snapshot endpoint, serving whatever the test publishes, honouring If-None-Match."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.full = 0  # 200 answers
        self.not_modified = 0  # 304 answers
        self._document: dict[str, Any] = {"revision": "r0", "servers": []}
        snapshots = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path != SNAPSHOT_PATH:
                    self.send_error(404)
                    return
                document = snapshots._document
                etag = f'"{document["revision"]}"'
                if self.headers.get("if-none-match") == etag:
                    snapshots.not_modified += 1
                    self.send_response(304)
                    self.send_header("etag", etag)
                    self.end_headers()
                    return
                snapshots.full += 1
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("etag", etag)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def publish(self, revision: str, *servers: dict[str, Any]) -> None:
        self._document = {"revision": revision, "servers": list(servers)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def registry() -> Iterator[SnapshotServer]:
    server = SnapshotServer()
    try:
        yield server
    finally:
        server.close()


def _spec(listen_port: int = 8080, admin_port: int = 9901) -> GatewaySpec:
    # authz_service and the JWKS issuer are closed ports: nothing is forwarded to a server.
    return GatewaySpec(
        issuer="https://issuer.test.portcullis",
        jwks_uri=f"http://127.0.0.1:{free_port()}/jwks.json",
        authz_endpoints=(("127.0.0.1", free_port()),),
        routes=(),
        listen_port=listen_port,
        admin_port=admin_port,
    )


# An MCP request without a token to a routed server: jwt_authn passes it on to ext_authz, which is a closed port
# here, so Envoy fails closed with 503 (status_on_error). An unrouted server is the catch-all's 404.
ROUTED = 503


def _status(gateway_url: str, server: str, http: httpx.Client | None = None) -> int:
    """The status of an MCP request without a token: `ROUTED` when routed, 404 (the catch-all) when not."""
    return (http or httpx).get(canonical_uri(gateway_url, server), timeout=5).status_code


def _metadata(gateway_url: str, server: str, http: httpx.Client) -> httpx.Response:
    """GET a server's protected-resource metadata (path-inserted form): served from the route table (RDS)."""
    return http.get(f"{gateway_url}/.well-known/oauth-protected-resource/servers/{server}/mcp", timeout=5)


def _stat(admin_url: str, name: str) -> int:
    text = httpx.get(f"{admin_url}/stats?filter=^{name}$", timeout=5).text
    return int(text.rsplit(":", 1)[1]) if text.strip() else 0


@dataclass
class Gateway:
    url: str
    admin_url: str
    envoy: subprocess.Popen[bytes]
    sync: GatewaySync

    def status(self, server: str, http: httpx.Client | None = None) -> int:
        return _status(self.url, server, http)


@contextmanager
def _gateway(tmp_path: Path, registry_url: str) -> Iterator[Gateway]:
    """Envoy on the sync's bootstrap, the sync polling every 0.1 s; both stopped at the end."""
    listen_port, admin_port = free_port(), free_port()
    url = f"http://127.0.0.1:{listen_port}"
    sync = GatewaySync(registry_url, _spec(listen_port, admin_port), tmp_path / "gateway", public_url=url, interval=0.1)
    envoy = start_envoy(sync.prepare(), tmp_path / "envoy.log")
    try:
        wait_http(f"http://127.0.0.1:{admin_port}/ready", process=envoy)
        sync.start()
        yield Gateway(url, f"http://127.0.0.1:{admin_port}", envoy, sync)
    finally:
        sync.close()
        stop_process(envoy)


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_server_added_to_the_snapshot_is_routed_and_removed_is_404_again_without_restarting_envoy(
    tmp_path: Path, registry: SnapshotServer
) -> None:
    registry.publish("r1", _server("beta"))
    with _gateway(tmp_path, registry.url) as gateway, httpx.Client() as kept_alive:
        pid = gateway.envoy.pid
        assert gateway.sync.wait_for_revision("r1", timeout=10)
        assert _eventually(lambda: gateway.status("beta") == ROUTED)
        missing = kept_alive.get(canonical_uri(gateway.url, "alpha"), timeout=5)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == -32601

        registry.publish("r2", _server("alpha"), _server("beta"))
        assert _eventually(lambda: gateway.status("alpha") == ROUTED)
        assert gateway.status("alpha", kept_alive) == ROUTED  # the connection opened before the change too

        assert _metadata(gateway.url, "alpha", kept_alive).json()["resource"] == canonical_uri(gateway.url, "alpha")

        registry.publish("r3", _server("beta"))
        assert _eventually(lambda: gateway.status("alpha") == 404)
        assert gateway.status("alpha", kept_alive) == 404
        assert _metadata(gateway.url, "alpha", kept_alive).status_code == 404  # its metadata leaves with it
        assert gateway.status("beta", kept_alive) == ROUTED

        assert gateway.envoy.poll() is None and gateway.envoy.pid == pid
        assert _stat(gateway.admin_url, "listener_manager.listener_modified") == 0  # nothing was drained
        assert gateway.sync.revision == "r3"


def test_invalid_snapshot_keeps_the_last_good_routes(
    tmp_path: Path, registry: SnapshotServer, caplog: pytest.LogCaptureFixture
) -> None:
    registry.publish("r1", _server("alpha"))
    with _gateway(tmp_path, registry.url) as gateway:
        assert _eventually(lambda: gateway.status("alpha") == ROUTED)

        with caplog.at_level(logging.WARNING, logger="gateway.sync"):
            registry.publish("r2", _server("alpha", upstream="nope"), _server("beta"))
            assert _eventually(lambda: gateway.sync.last_error is not None)
            full_before = registry.full
            assert _eventually(lambda: registry.full >= full_before + 3)  # polled again, still invalid

        assert gateway.sync.revision == "r1"
        assert "upstream" in (gateway.sync.last_error or "")
        assert gateway.status("alpha") == ROUTED
        assert gateway.status("beta") == 404
        warnings = [r for r in caplog.records if r.name == "gateway.sync" and r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per problem, not once per poll
        assert warnings[0].exc_info is None and "\n" not in warnings[0].getMessage()

        registry.publish("r3", _server("beta"))
        assert _eventually(lambda: gateway.status("beta") == ROUTED)
        assert gateway.status("alpha") == 404
        assert gateway.sync.last_error is None


def test_unreachable_registry_at_start_leaves_only_the_catch_all_until_it_answers(tmp_path: Path) -> None:
    registry_port = free_port()
    with _gateway(tmp_path, f"http://127.0.0.1:{registry_port}") as gateway:
        assert gateway.sync.revision is None
        assert gateway.sync.last_error == "registry unreachable (ConnectError)"
        response = httpx.get(canonical_uri(gateway.url, "alpha"), timeout=5)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == -32601

        registry = SnapshotServer(registry_port)
        try:
            registry.publish("r1", _server("alpha"))
            assert _eventually(lambda: gateway.status("alpha") == ROUTED)
            assert gateway.sync.revision == "r1"
        finally:
            registry.close()


def test_unchanged_snapshot_is_answered_304_and_not_rendered_again(tmp_path: Path, registry: SnapshotServer) -> None:
    registry.publish("r1", _server("alpha"))
    with GatewaySync(registry.url, _spec(), tmp_path, public_url="http://127.0.0.1:8080") as sync:
        sync.prepare()
        assert sync.revision == "r1"
        files = {path.name: path.stat().st_ino for path in tmp_path.iterdir()}
        assert [sync.sync_once() for _ in range(5)] == [False] * 5
        assert (registry.full, registry.not_modified) == (1, 5)
        assert {path.name: path.stat().st_ino for path in tmp_path.iterdir()} == files

        registry.publish("r2", _server("alpha"), _server("beta"))
        assert sync.sync_once() is True
        assert (registry.full, registry.not_modified) == (2, 5)


def test_registry_problem_is_one_warning_line_without_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://portcullis:s3cret-token@127.0.0.1:{free_port()}"
    with caplog.at_level(logging.INFO, logger="gateway.sync"):
        with GatewaySync(url, _spec(), tmp_path, public_url="http://127.0.0.1:8080", validate=False) as sync:
            assert [sync.sync_once() for _ in range(3)] == [False] * 3
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    message = record.getMessage()
    assert "s3cret" not in message and "portcullis:" not in message
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}{SNAPSHOT_PATH}" in message
    assert "registry unreachable" in message and "\n" not in message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"servers": []}, id="no-revision"),
        pytest.param({"revision": "r9"}, id="no-servers"),
        pytest.param({"revision": "r9", "servers": [{"name": "Alpha!", "status": "approved"}]}, id="bad-server"),
        pytest.param({"revision": "r9", "servers": [_server("alpha"), _server("alpha")]}, id="duplicate"),
    ],
)
def test_malformed_snapshot_is_refused_and_routes_stay_empty(
    tmp_path: Path, registry: SnapshotServer, body: dict[str, Any]
) -> None:
    registry._document = body  # shapes `publish` cannot make
    with GatewaySync(registry.url, _spec(), tmp_path, public_url="http://127.0.0.1:8080") as sync:
        sync.prepare()
        assert sync.revision is None
        assert sync.last_error is not None
    assert "server-" not in (tmp_path / "rds.yaml").read_text()


def test_envoy_rejects_a_misspelt_field_in_a_dynamic_file_and_keeps_its_config(tmp_path: Path) -> None:
    # Without --reject-unknown-dynamic-fields (start_envoy passes it) Envoy drops the field and applies the rest.
    listen_port, admin_port = free_port(), free_port()
    url, admin_url = f"http://127.0.0.1:{listen_port}", f"http://127.0.0.1:{admin_port}"
    alpha = RouteSpec("alpha", "127.0.0.1", 9, canonical_uri(url, "alpha"))
    spec = dataclasses.replace(_spec(listen_port, admin_port), routes=(alpha,))
    directory = tmp_path / "gateway"
    envoy = start_envoy(write_dynamic_bootstrap(spec, directory, routes=True), tmp_path / "envoy.log")
    try:
        wait_http(f"{admin_url}/ready", process=envoy)
        assert _status(url, "alpha") == ROUTED
        rejected = "extension_config_discovery.http_filter.envoy.filters.http.jwt_authn.update_rejected"
        jwt_authn = directory / JWT_AUTHN_FILE
        write_atomic(jwt_authn, jwt_authn.read_text().replace("requirement_map", "requirement_mapp"))
        assert _eventually(lambda: _stat(admin_url, rejected) == 1)
        assert _status(url, "alpha") == ROUTED  # not 403 "Wrong requirement_name": the old config still runs
    finally:
        stop_process(envoy)
