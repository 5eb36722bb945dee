"""Real-process harness for end-to-end tests and benchmarks: authz_service, a demo server and Envoy.

Everything binds to 127.0.0.1 on free ports and is stopped by its PID. Tokens are signed by a test key
whose JWKS a small in-process HTTP server publishes, as the foundation's proof requires; with `identity=True`
the platform's own authorization server issues them instead (`user_token`, `agent_token`). The demo server
(on the server kit) verifies the same tokens as Envoy and asks authz_service for its decisions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from authz_service.catalog import FileCatalogSource
from authz_service.identity.revocations import FEED_PATH
from authz_service.keys import SigningKey
from authz_service.worker import wait_grpc_serving
from gateway.config import GatewaySpec, build_config, canonical_uri, render_yaml, spec_from_catalog
from gateway.launcher import start_envoy, validate_config
from gateway.sync import GatewaySync
from portcullis.processes import stop_process, wait_http
from portcullis.up import kit_server_environment
from portcullis_contracts.revocations import encode_feed, etag_matches

__all__ = [
    "JwksServer",
    "LocalPlatform",
    "MemoryTokenStorage",
    "authz_environment",
    "free_port",
    "free_port_block",
    "service_secret",
    "stop_process",
    "wait_http",
]

ROOT = Path(__file__).resolve().parents[1]
SERVICE_SECRET = "test-service-credential-0123456789"  # the registry's AuthZEN credential
SNAPSHOT_SECRET = "test-snapshot-credential-0123456789"


def service_secret(server: str) -> str:
    """The AuthZEN credential of kit server `server` on a test platform: each server has its own, which speaks
    only for that server."""
    return f"test-{server}-service-credential-0123456789"


DEMO_SECRET = service_secret("demo")  # the demo server's AuthZEN credential
PASSWORD = "portcullis"  # every directory user's development password
AGENT = ("internal-agent", "internal-agent-dev-secret")  # the directory's client-credentials client
_REDIRECT = "http://127.0.0.1:47124/callback"  # claude-desktop's loopback redirect (any port, RFC 8252)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range, so outgoing connections never collide


_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A free port for a listener."""
    return free_port_block(1)


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports, none of which this process handed out before.

    A port is free when asked but bound later by whoever asked: two picks in a row (a platform's gateway and its
    demo server, say) must not land on the same port, so every port handed out is remembered.
    """
    for _ in range(1000):
        first = random.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - count)
        ports = range(first, first + count)
        with _HANDED_OUT_LOCK:
            if any(port in _HANDED_OUT for port in ports):
                continue
            try:
                for port in ports:
                    with socket.socket() as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
                        sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.update(ports)
            return first
    raise RuntimeError("no block of free ports")


def authz_environment(
    workdir: Path,
    *,
    http_port: int,
    grpc_port: int,
    workers: int = 1,
    gateway_url: str = "http://127.0.0.1:8080",
    service_credentials: dict[str, str] | None = None,
    **overrides: str,
) -> dict[str, str]:
    """The environment of an authz_service process for tests and benchmarks: the checkout's policies, test
    catalog and directory, its state in `workdir`, its own issuer URL; `overrides` are AUTHZ_* names without
    the prefix (`directory_file="..."` sets AUTHZ_DIRECTORY_FILE).
    """
    env = {
        **os.environ,
        "AUTHZ_HTTP_PORT": str(http_port),
        "AUTHZ_GRPC_PORT": str(grpc_port),
        "AUTHZ_WORKERS": str(workers),
        "AUTHZ_ISSUER": f"http://127.0.0.1:{http_port}",
        "AUTHZ_POLICY_DIR": str(ROOT / "policies"),
        "AUTHZ_CATALOG_FILE": str(ROOT / "config" / "catalog.yaml"),
        "AUTHZ_DECISION_LOG": str(workdir / "decisions.jsonl"),
        "AUTHZ_KEY_DIR": str(workdir / "keys"),
        "AUTHZ_IDENTITY_DATABASE_URL": f"sqlite:///{workdir / 'identity.db'}",
        "AUTHZ_DIRECTORY_FILE": str(ROOT / "config" / "directory.yaml"),
        "AUTHZ_GATEWAY_URL": gateway_url,
        "AUTHZ_WATCH": "false",
    }
    if service_credentials is not None:
        env["AUTHZ_SERVICE_CREDENTIALS"] = json.dumps(service_credentials)
    env.update({f"AUTHZ_{name.upper()}": value for name, value in overrides.items()})
    return env


class MemoryTokenStorage:
    """The `mcp` SDK's OAuth TokenStorage, in memory: what a client would keep between runs."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class JwksServer:
    """Serves a JWKS document on 127.0.0.1 from a background thread, and a revocation feed at `revocation_url`
    (`portcullis_contracts.revocations`) listing what `revoke` was given; `feed_down` makes the feed answer 503.
    """

    def __init__(self, jwks: dict[str, Any]):
        body = json.dumps(jwks).encode()
        self.revoked: dict[str, float] = {}
        self.feed_down = False
        self.feed_polls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] == FEED_PATH:
                    self._feed()
                    return
                self._send(200, body, {"content-type": "application/json"})

            def _feed(self) -> None:
                owner.feed_polls += 1
                if owner.feed_down:
                    self._send(503, b"{}", {"content-type": "application/json"})
                    return
                document = encode_feed(dict(owner.revoked))
                headers = {"etag": document.etag, "cache-control": "no-cache"}
                if etag_matches(self.headers.get("if-none-match"), document.revision):
                    self._send(304, b"", headers)
                    return
                self._send(200, document.body, {**headers, "content-type": "application/json"})

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self.revocation_url = f"http://127.0.0.1:{self._server.server_address[1]}{FEED_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def revoke(self, jti: str, expires_at: float) -> None:
        """List a token id in the feed until `expires_at` (unix seconds)."""
        self.revoked[jti] = expires_at

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class LocalPlatform:
    """A running platform on free ports; build with `LocalPlatform.start(...)` as a context manager."""

    workdir: Path
    key: SigningKey
    issuer: str
    gateway_url: str
    authz_url: str
    decision_log: Path
    policy_dir: Path
    catalog_file: Path
    authz_env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    registry_url: str = ""
    sync: GatewaySync | None = None
    identity: bool = False
    jwks_url: str = ""
    demo_url: str = ""  # the demo server itself, not through the gateway

    @classmethod
    @contextmanager
    def start(
        cls,
        workdir: Path,
        *,
        workers: int = 1,
        ext_authz: bool = True,
        policy_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        registry: bool = False,
        identity: bool = False,
        upstreams: dict[str, int] | None = None,
        servers: Sequence[str] = (),
    ) -> Iterator[LocalPlatform]:
        """Copy the policies and catalog into `workdir`, then start authz_service, the demo server, Envoy.

        With `registry`, the catalog comes from a real registry (seeded from config/servers) instead of a file:
        authz_service follows its snapshot and the gateway's routes follow it through `GatewaySync`. With
        `identity`, the tokens Envoy and the demo server accept are the platform's own authorization server's.
        `upstreams` names the ports of other servers the test runs itself (`start_server`); the catalog and the
        registry seed route to them (a domain server's entry comes from its servers/<name>/server.json).
        Every kit server gets its own AuthZEN credential (`service_secret(name)`): the demo, the `upstreams`, and
        `servers`, the names of servers the test starts by other means.
        """
        policies = workdir / "policies"
        shutil.copytree(policy_dir or ROOT / "policies", policies)
        demo_port, gateway_port, admin_port, http_port = free_port(), free_port(), free_port(), free_port()
        registry_port = free_port()
        grpc_port = free_port_block(workers)
        ports = {"demo": demo_port, **(upstreams or {})}
        catalog = FileCatalogSource(ROOT / "config" / "catalog.yaml").document()  # built from the server.json files
        for server in catalog["servers"]:
            server["upstream"] = f"127.0.0.1:{ports.get(server['name']) or free_port()}"
        catalog_file = workdir / "catalog.yaml"
        catalog_file.write_text(yaml.safe_dump(catalog))
        key = SigningKey.generate()
        jwks = JwksServer(key.jwks())
        issuer = "https://issuer.test.portcullis"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        jwks_url = jwks.url
        if identity:  # the platform's own authorization server issues the tokens Envoy accepts
            issuer = f"http://127.0.0.1:{http_port}"
            jwks_url = f"{issuer}/.well-known/jwks.json"
        env = {
            **os.environ,
            "AUTHZ_HTTP_PORT": str(http_port),
            "AUTHZ_GRPC_PORT": str(grpc_port),
            "AUTHZ_WORKERS": str(workers),
            "AUTHZ_POLICY_DIR": str(policies),
            "AUTHZ_CATALOG_FILE": str(catalog_file),
            "AUTHZ_DECISION_LOG": str(workdir / "decisions.jsonl"),
            "AUTHZ_KEY_DIR": str(workdir / "keys"),
            "AUTHZ_ISSUER": f"http://127.0.0.1:{http_port}",
            "AUTHZ_SERVICE_CREDENTIALS": json.dumps(
                {
                    "registry": SERVICE_SECRET,
                    "demo": DEMO_SECRET,
                    **{name: service_secret(name) for name in (*(upstreams or {}), *servers)},
                }
            ),
            "AUTHZ_IDENTITY_DATABASE_URL": f"sqlite:///{workdir / 'identity.db'}",
            "AUTHZ_DIRECTORY_FILE": str(ROOT / "config" / "directory.yaml"),
            "AUTHZ_GATEWAY_URL": gateway_url,
            "AUTHZ_EXTRA_RESOURCES": json.dumps([f"http://127.0.0.1:{registry_port}"]),
            **(extra_env or {}),
        }
        registry_url = f"http://127.0.0.1:{registry_port}"
        if registry:
            env.pop("AUTHZ_CATALOG_FILE")
            env["AUTHZ_REGISTRY_URL"] = registry_url
            env["AUTHZ_REGISTRY_CREDENTIAL"] = SNAPSHOT_SECRET
            env["AUTHZ_REGISTRY_POLL_SECONDS"] = "0.2"
        platform = cls(
            workdir=workdir,
            key=key,
            issuer=issuer,
            gateway_url=gateway_url,
            authz_url=f"http://127.0.0.1:{http_port}",
            decision_log=workdir / "decisions.jsonl",
            policy_dir=policies,
            catalog_file=catalog_file,
            authz_env=env,
            registry_url=registry_url if registry else "",
            identity=identity,
            jwks_url=jwks_url,
            demo_url=f"http://127.0.0.1:{demo_port}/mcp",
        )
        try:
            if registry:
                platform._start_registry(registry_port, ports, jwks_url, f"http://127.0.0.1:{http_port}")
            platform.start_authz()
            platform.start_demo(demo_port)
            authz_endpoints = tuple(("127.0.0.1", grpc_port + i) for i in range(workers))
            if registry:
                spec = GatewaySpec(
                    issuer, jwks_url, authz_endpoints, (), listen_port=gateway_port, admin_port=admin_port
                )
                snapshot_client = httpx.Client(headers={"Authorization": f"Bearer {SNAPSHOT_SECRET}"}, timeout=2)
                platform.sync = GatewaySync(
                    registry_url, spec, workdir / "gateway", public_url=gateway_url, interval=0.2, http=snapshot_client
                )
                config_path = platform.sync.prepare()
            else:
                spec = spec_from_catalog(
                    FileCatalogSource(catalog_file).load(),
                    issuer=issuer,
                    jwks_uri=jwks_url,
                    authz_endpoints=authz_endpoints,
                    public_url=gateway_url,
                    listen_port=gateway_port,
                    admin_port=admin_port,
                )
                spec = dataclasses.replace(spec, ext_authz=ext_authz)
                config_path = workdir / "envoy.yaml"
                config_path.write_text(render_yaml(build_config(spec)))
                validate_config(config_path)
            envoy = start_envoy(config_path, workdir / "envoy.log")
            platform.processes["envoy"] = envoy
            wait_http(f"http://127.0.0.1:{admin_port}/ready", process=envoy)
            if platform.sync is not None:
                platform.sync.start()
            yield platform
        finally:
            platform.stop()
            jwks.close()

    def demo_env(self, *, resource: str | None = None) -> dict[str, str]:
        """The environment of a demo server process: it accepts this platform's tokens for `resource` (the demo
        route's canonical URI unless given) and asks this platform's authz_service.
        """
        settings = kit_server_environment(
            "demo",
            issuer=self.issuer,
            jwks_url=self.jwks_url,
            resource=resource or self.mcp_url("demo"),
            authz_url=self.authz_url,
            authz_credential=DEMO_SECRET,
            revocation_url=self.revocation_url,
        )
        return {**os.environ, **settings}

    def start_demo(self, port: int, *, name: str = "demo", resource: str | None = None) -> subprocess.Popen[bytes]:
        """Start a demo server process on `port` (see `demo_env`) and wait until it is healthy."""
        command = [sys.executable, "-m", "servers.demo", "--port", str(port)]
        process = self._spawn(name, command, self.demo_env(resource=resource))
        wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
        return process

    def server_env(self, server: str) -> dict[str, str]:
        """The environment of kit server `server`: it accepts this platform's tokens for its route and asks this
        platform's authz_service."""
        settings = kit_server_environment(
            server,
            issuer=self.issuer,
            jwks_url=self.jwks_url,
            resource=self.mcp_url(server),
            authz_url=self.authz_url,
            authz_credential=service_secret(server),
            revocation_url=self.revocation_url,
        )
        return {**os.environ, **settings}

    def start_server(self, server: str, port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m servers.<server> --port <port>` (see `server_env`) and wait until it is healthy."""
        command = [sys.executable, "-m", f"servers.{server}", "--port", str(port)]
        process = self._spawn(server, command, {**self.server_env(server), **(extra_env or {})})
        wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
        return process

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()
        self.processes[name] = process
        return process

    def _start_registry(self, port: int, ports: dict[str, int], jwks_url: str, authz_url: str) -> None:
        seed = self.workdir / "servers"
        seed.mkdir()
        domain = [ROOT / "servers" / name / "server.json" for name in ports if name != "demo"]
        for path in sorted((ROOT / "config" / "servers").glob("*.json")) + domain:
            route = path.parent.name if path.name == "server.json" else path.stem
            document = json.loads(path.read_text())
            governance = document["_meta"]["dev.portcullis/governance"]
            governance["upstream"] = f"127.0.0.1:{ports.get(governance.get('route', route)) or free_port()}"
            (seed / f"{route}.json").write_text(json.dumps(document))
        env = {
            **os.environ,
            "REGISTRY_PORT": str(port),
            "REGISTRY_DATABASE_URL": f"sqlite:///{self.workdir / 'registry.db'}",
            "REGISTRY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "REGISTRY_GATEWAY_URL": self.gateway_url,
            "REGISTRY_ISSUER": self.issuer,
            "REGISTRY_JWKS_URL": jwks_url,
            "REGISTRY_REVOCATION_URL": self.revocation_url,
            "REGISTRY_AUTHZ_URL": authz_url,
            "REGISTRY_AUTHZ_CREDENTIAL": SERVICE_SECRET,
            "REGISTRY_SERVICE_CREDENTIALS": json.dumps({"authz": SNAPSHOT_SECRET}),
            "REGISTRY_SEED_DIR": str(seed),
            "REGISTRY_DECISION_LOG": str(self.decision_log),
        }
        if self.identity:  # the web UI signs in through the platform's authorization server
            env["REGISTRY_OAUTH_CLIENT_ID"] = "registry-ui"
            env["REGISTRY_OAUTH_CLIENT_SECRET"] = "registry-ui-dev-secret"
        process = self._spawn("registry", [sys.executable, "-m", "registry"], env)
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process)

    def registry_token(self, user: str, *, groups: list[str], business_groups: list[str] | None = None) -> str:
        """A token for the registry's audience, signed by the test key."""
        return self.key.mint(
            issuer=self.issuer,
            subject=user,
            audience=self.registry_url,
            client_id="registry-cli",
            claims={"email": f"{user}@example.com", "groups": groups, "business_groups": business_groups or []},
        )

    def start_authz(self) -> None:
        process = self._spawn("authz", [sys.executable, "-m", "authz_service"], self.authz_env)
        wait_http(f"{self.authz_url}/readyz", process=process)
        first, workers = int(self.authz_env["AUTHZ_GRPC_PORT"]), int(self.authz_env["AUTHZ_WORKERS"])
        ports = list(range(first, first + workers))
        wait_grpc_serving("127.0.0.1", ports, timeout=30, alive=lambda: process.poll() is None)

    def stop_authz(self) -> None:
        stop_process(self.processes.pop("authz"))

    def stop(self) -> None:
        if self.sync is not None:
            self.sync.close()
        # The gateway first, then the servers behind it, then the services they depend on.
        last = ("authz", "registry")
        order = ["envoy", *(name for name in self.processes if name not in ("envoy", *last)), *last]
        for name in order:
            if name in self.processes:
                stop_process(self.processes.pop(name))

    def token(
        self,
        user: str = "alice",
        *,
        client: str = "claude-desktop",
        server: str = "demo",
        groups: list[str] | None = None,
        business_groups: list[str] | None = None,
        **overrides: Any,
    ) -> str:
        """A token signed by the test key, for `server`'s audience unless overridden."""
        claims = {
            "email": f"{user}@example.com",
            "scope": overrides.pop("scope", "mcp"),
            "groups": groups if groups is not None else ["eng", "ads-eng"],
            "business_groups": business_groups if business_groups is not None else ["ads"],
        }
        return self.key.mint(
            issuer=overrides.pop("issuer", self.issuer),
            subject=user,
            audience=overrides.pop("audience", canonical_uri(self.gateway_url, server)),
            client_id=client,
            claims=claims,
            ttl_seconds=overrides.pop("ttl_seconds", 600),
            now=overrides.pop("now", None),
        )

    def user_token(self, user: str, *, server: str = "demo", client: str = "claude-desktop") -> str:
        """A token of `user` from the platform's authorization server (`identity=True`): authorization code +
        PKCE on Authlib's OAuth client, signing in and consenting through its pages with the directory's
        development password.

        Raises:
            RuntimeError: the sign-in or consent did not end in a redirect with a code.
            OAuthError: the token endpoint refused the code.
        """
        # Authlib's client rather than the SDK's OAuthClientProvider: this helper is a named directory client
        # asking for any resource, where the SDK's provider registers its own client and starts from an MCP
        # server's 401 (tests/e2e/test_oauth_clients.py exercises that provider).
        resource = self.mcp_url(server)
        verifier = generate_token(48)
        with (
            OAuth2Client(
                client_id=client, token_endpoint_auth_method="none", redirect_uri=_REDIRECT, scope="mcp",
                code_challenge_method="S256", timeout=10,
            ) as oauth,
            httpx.Client(base_url=self.issuer, timeout=10) as browser,
        ):  # fmt: skip
            url, state = oauth.create_authorization_url(
                f"{self.issuer}/authorize", code_verifier=verifier, resource=resource
            )
            page = browser.get(url)
            page = browser.post("/login", data={"csrf": _csrf(page.text), "username": user, "password": PASSWORD})
            answer = browser.post("/consent", data={"csrf": _csrf(page.text), "decision": "approve"})
            if answer.status_code != 303:
                raise RuntimeError(f"sign-in of {user} failed: {answer.status_code} {answer.text[:200]}")
            token = oauth.fetch_token(
                f"{self.issuer}/token", authorization_response=answer.headers["location"], state=state,
                code_verifier=verifier, resource=resource,
            )  # fmt: skip
        return str(token["access_token"])

    def agent_token(self, *, server: str = "demo", resource: str | None = None) -> str:
        """A client-credentials token of the `internal-agent` client (groups: agents) from the platform's
        authorization server (`identity=True`), for `server` or any other `resource`.
        """
        data = {"grant_type": "client_credentials", "scope": "mcp", "resource": resource or self.mcp_url(server)}
        return _access_token(httpx.post(f"{self.issuer}/token", data=data, auth=AGENT, timeout=10))

    def mcp_url(self, server: str = "demo") -> str:
        return canonical_uri(self.gateway_url, server)

    @property
    def revocation_url(self) -> str:
        """The revocation feed the edge and every kit server of this platform follow (authz_service's own)."""
        return f"{self.authz_url}{FEED_PATH}"


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    if match is None:
        raise RuntimeError("no CSRF field on the authorization server's page")
    return match.group(1)


def _access_token(response: httpx.Response) -> str:
    if response.status_code != 200:
        raise RuntimeError(f"the token endpoint answered {response.status_code}: {response.text[:200]}")
    return str(response.json()["access_token"])
