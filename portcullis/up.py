"""`portcullis up`: the whole platform on 127.0.0.1 with embedded defaults, stopped cleanly on Ctrl-C.

Order: preflight (binary, ports, policies, seed files) -> registry (SQLite; seed servers it does not hold yet
are published on start) -> authz_service (follows the registry's catalog snapshot) -> demo server and the domain
servers (on the server kit: they verify tokens from the built-in authorization server and ask authz_service's
AuthZEN API) -> Envoy, whose routes follow the same snapshot through `GatewaySync` (a thread of this process).
Each is awaited on its health endpoint. The domain servers' backends are then set up and started in the
background (portcullis/domain.py), with a console line at each step.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from authz_service.credentials import ensure_credential
from authz_service.identity.revocations import FEED_PATH
from authz_service.policy import load_policy_set, policy_files
from authz_service.settings import Settings
from authz_service.worker import check_ports_free, wait_grpc_serving
from gateway.config import GatewaySpec, canonical_uri
from gateway.launcher import envoy_binary, start_envoy
from gateway.sync import GatewaySync
from portcullis.domain import DOMAIN_SERVERS, BackendStarter, DomainServer, console, domain_server
from portcullis.processes import wait_http
from registry.errors import RegistryError
from registry.settings import DEFAULT_PORT as REGISTRY_PORT
from registry.validation import validate_server_json
from server_kit import env_prefix
from servers.demo.server import DEFAULT_PORT as DEMO_PORT

__all__ = ["Platform", "PlatformError", "UpOptions", "kit_server_environment", "run_up"]

_START_DEADLINE_SECONDS = 30.0
# Under the state folder: one file per AuthZEN caller holding its own secret (authz_service reads the folder).
SERVICE_CREDENTIALS_DIR = "service-credentials"


class PlatformError(Exception):
    """A start-up problem, reported as one line."""


@dataclass
class UpOptions:
    root: Path
    state_dir: Path
    gateway_port: int = 8080
    admin_port: int = 9901
    authz_http_port: int = 8181
    authz_grpc_port: int = 9191
    workers: int = 2
    demo_port: int = DEMO_PORT
    registry_port: int = REGISTRY_PORT
    # The domain servers to run (servers/<name>), each with its local backend.
    servers: tuple[str, ...] = tuple(server.name for server in DOMAIN_SERVERS)

    def domain_servers(self) -> list[DomainServer]:
        """The chosen domain servers.

        Raises:
            PlatformError: an unknown name.
        """
        try:
            return [domain_server(name) for name in self.servers]
        except KeyError as exc:
            raise PlatformError(str(exc.args[0])) from None


@dataclass
class Platform:
    """The running processes, in start order."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    sync: GatewaySync | None = None
    backends: BackendStarter | None = None

    def stop(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.backends is not None:
            self.backends.stop()
            with self.backends.lock:
                processes = list(self.processes)
        else:
            processes = list(self.processes)
        for _, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process in reversed(processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def _wait_healthy(name: str, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    try:
        wait_http(url, timeout=_START_DEADLINE_SECONDS, process=process)
    except RuntimeError:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
        raise PlatformError(
            f"{name} exited during start-up: {tail[0] if tail else 'no output'} (log: {log_path})"
        ) from None
    except TimeoutError:
        raise PlatformError(
            f"{name} did not become healthy at {url} within {_START_DEADLINE_SECONDS:.0f}s (log: {log_path})"
        ) from None


def _wait_grpc(ports: list[int], process: subprocess.Popen[bytes], log_path: Path) -> None:
    try:
        wait_grpc_serving("127.0.0.1", ports, timeout=_START_DEADLINE_SECONDS, alive=lambda: process.poll() is None)
    except TimeoutError as exc:
        raise PlatformError(f"authz_service: {exc} (log: {log_path})") from None


def preflight(options: UpOptions) -> None:
    """Everything that can be checked before starting anything; raises PlatformError with one line."""
    envoy_binary()
    load_policy_set(policy_files(options.root / "policies"), timeout_ms=1000)
    for path in seed_files(options):
        try:
            document = json.loads(path.read_text())
            document.get("_meta", {}).pop("dev.portcullis/seed", None)
            validate_server_json(document)
        except (ValueError, RegistryError) as exc:
            raise PlatformError(f"seed server {path}: {exc}") from None
    ports = [
        options.registry_port,
        options.gateway_port,
        options.admin_port,
        options.authz_http_port,
        options.demo_port,
        *range(options.authz_grpc_port, options.authz_grpc_port + options.workers),
    ]
    for server in options.domain_servers():
        ports.extend(port for port in (server.port, server.backend_port) if port)
    check_ports_free("127.0.0.1", ports)


def seed_files(options: UpOptions) -> list[Path]:
    """The registry's seed: config/servers/*.json and the chosen domain servers' server.json."""
    files = sorted((options.root / "config" / "servers").glob("*.json"))
    return files + [server.server_json for server in options.domain_servers()]


def _seed_dir(options: UpOptions) -> Path:
    """The seed files gathered in one folder (rewritten on every start; the registry adds servers it lacks)."""
    seed = options.state_dir / "seed"
    if seed.exists():
        shutil.rmtree(seed)
    seed.mkdir(parents=True)
    for path in seed_files(options):
        name = path.parent.name if path.name == "server.json" else path.stem
        shutil.copyfile(path, seed / f"{name}.json")
    return seed


def _service_credential(state_dir: Path, name: str = "authzen-credential") -> str:
    path = state_dir / name
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def kit_server_environment(
    server: str,
    *,
    issuer: str,
    jwks_url: str,
    resource: str,
    authz_url: str,
    authz_credential: str,
    revocation_url: str = "",
) -> dict[str, str]:
    """The `KIT_<SERVER>_*` variables of a kit server: whose tokens it accepts (issuer, keys, its audience, the
    revocation feed it follows; without `revocation_url` the one the issuer's metadata names) and where it asks
    for decisions, with its AuthZEN service credential.
    """
    prefix = env_prefix(server)
    values = {
        "ISSUER": issuer,
        "JWKS_URL": jwks_url,
        "RESOURCE": resource,
        "AUTHZ_URL": authz_url,
        "AUTHZ_CREDENTIAL": authz_credential,
        **({"REVOCATION_URL": revocation_url} if revocation_url else {}),
    }
    return {prefix + name: value for name, value in values.items()}


def start(options: UpOptions) -> Platform:
    """Start every component and wait until each is healthy; on failure, stop what started."""
    preflight(options)
    root, state = options.root, options.state_dir
    state.mkdir(parents=True, exist_ok=True)
    issuer = f"http://127.0.0.1:{options.authz_http_port}"
    settings = Settings(
        http_port=options.authz_http_port,
        grpc_port=options.authz_grpc_port,
        workers=options.workers,
        policy_dir=root / "policies",
        decision_log=state / "decisions.jsonl",
        key_dir=state / "keys",
        issuer=issuer,
    )
    registry_url = f"http://127.0.0.1:{options.registry_port}"
    gateway_url = f"http://127.0.0.1:{options.gateway_port}"
    # One secret per caller: an AuthZEN credential speaks only for its owner (a server, or the registry), and
    # each follower of the registry's snapshot has its own.
    kit_servers = ("demo", *(server.name for server in options.domain_servers()))
    credentials_dir = state / SERVICE_CREDENTIALS_DIR
    authzen_secrets = {name: ensure_credential(credentials_dir, name) for name in ("registry", *kit_servers)}
    snapshot_secret = _service_credential(state, "snapshot-credential")
    gateway_snapshot_secret = _service_credential(state, "snapshot-credential-gateway")
    registry_env = {
        **os.environ,
        "REGISTRY_PORT": str(options.registry_port),
        "REGISTRY_DATABASE_URL": f"sqlite:///{state / 'registry.db'}",
        "REGISTRY_PUBLIC_URL": registry_url,
        "REGISTRY_GATEWAY_URL": gateway_url,
        "REGISTRY_ISSUER": issuer,
        "REGISTRY_JWKS_URL": f"{issuer}/.well-known/jwks.json",
        "REGISTRY_REVOCATION_URL": f"{issuer}{FEED_PATH}",
        "REGISTRY_AUTHZ_URL": issuer,
        "REGISTRY_AUTHZ_CREDENTIAL": authzen_secrets["registry"],
        "REGISTRY_SERVICE_CREDENTIALS": json.dumps({"authz": snapshot_secret, "gateway": gateway_snapshot_secret}),
        "REGISTRY_SEED_DIR": str(_seed_dir(options)),
        "REGISTRY_DIRECTORY_FILE": str(root / "config" / "directory.yaml"),
        "REGISTRY_DECISION_LOG": str(settings.decision_log),
        "REGISTRY_SESSION_SECRET": _service_credential(state, "session-secret"),
        # The web UI signs people in through the built-in authorization server (the directory's registry-ui
        # client and its development secret); the pick-a-person development login stays off.
        "REGISTRY_OAUTH_CLIENT_ID": "registry-ui",
        "REGISTRY_OAUTH_CLIENT_SECRET": "registry-ui-dev-secret",
    }
    env = {
        **os.environ,
        "AUTHZ_HTTP_PORT": str(settings.http_port),
        "AUTHZ_GRPC_PORT": str(settings.grpc_port),
        "AUTHZ_WORKERS": str(settings.workers),
        "AUTHZ_POLICY_DIR": str(settings.policy_dir),
        "AUTHZ_REGISTRY_URL": registry_url,
        "AUTHZ_REGISTRY_CREDENTIAL": snapshot_secret,
        "AUTHZ_DECISION_LOG": str(settings.decision_log),
        "AUTHZ_KEY_DIR": str(settings.key_dir),
        "AUTHZ_ISSUER": issuer,
        "AUTHZ_SERVICE_CREDENTIALS_DIR": str(credentials_dir),
        # The built-in authorization server: users and clients from the directory, tokens for every server
        # behind the gateway and for the registry.
        "AUTHZ_DIRECTORY_FILE": str(root / "config" / "directory.yaml"),
        "AUTHZ_GATEWAY_URL": gateway_url,
        "AUTHZ_EXTRA_RESOURCES": json.dumps([registry_url]),
    }
    platform = Platform()
    try:
        registry_log = state / "registry.log"
        registry = _spawn([sys.executable, "-m", "registry"], registry_log, registry_env, platform)
        platform.processes.append(("registry", registry))
        _wait_healthy("registry", f"{registry_url}/readyz", registry, registry_log)
        authz_log = state / "authz.log"
        platform.processes.append(
            ("authz_service", _spawn([sys.executable, "-m", "authz_service"], authz_log, env, platform))
        )
        _wait_healthy("authz_service", f"{issuer}/readyz", platform.processes[-1][1], authz_log)
        _wait_grpc(settings.grpc_ports(), platform.processes[-1][1], authz_log)
        demo_log = state / "demo.log"
        demo_env = {
            **os.environ,
            **kit_server_environment(
                "demo",
                issuer=issuer,
                jwks_url=f"{issuer}/.well-known/jwks.json",
                resource=canonical_uri(gateway_url, "demo"),
                authz_url=issuer,
                authz_credential=authzen_secrets["demo"],
                revocation_url=f"{issuer}{FEED_PATH}",
            ),
        }
        demo_command = [sys.executable, "-m", "servers.demo", "--port", str(options.demo_port)]
        demo = _spawn(demo_command, demo_log, demo_env, platform)
        platform.processes.append(("demo server", demo))
        _wait_healthy("demo server", f"http://127.0.0.1:{options.demo_port}/healthz", demo, demo_log)
        domain_servers = options.domain_servers()
        if domain_servers:

            def launch_server(server: DomainServer, backend_env: dict[str, str]) -> None:
                server_log = state / f"{server.name}.log"
                server_env = {
                    **os.environ,
                    **kit_server_environment(
                        server.name,
                        issuer=issuer,
                        jwks_url=f"{issuer}/.well-known/jwks.json",
                        resource=canonical_uri(gateway_url, server.name),
                        authz_url=issuer,
                        authz_credential=authzen_secrets[server.name],
                        revocation_url=f"{issuer}{FEED_PATH}",
                    ),
                    **backend_env,
                }
                command = [sys.executable, "-m", server.module, "--port", str(server.port)]
                process = _spawn(command, server_log, server_env, platform)
                assert platform.backends is not None
                with platform.backends.lock:
                    platform.processes.append((f"{server.name} server", process))
                url = f"http://127.0.0.1:{server.port}/healthz"
                _wait_healthy(f"{server.name} server", url, process, server_log)

            platform.backends = BackendStarter(state, state / "backends", console, platform.processes, launch_server)
        spec = GatewaySpec(
            issuer=issuer,
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            authz_endpoints=tuple(("127.0.0.1", port) for port in settings.grpc_ports()),
            routes=(),
            listen_port=options.gateway_port,
            admin_port=options.admin_port,
        )
        snapshot_http = httpx.Client(headers={"Authorization": f"Bearer {gateway_snapshot_secret}"}, timeout=2)
        platform.sync = GatewaySync(registry_url, spec, state / "gateway", public_url=gateway_url, http=snapshot_http)
        config_path = platform.sync.prepare()
        envoy_log = state / "envoy.log"
        platform.processes.append(("envoy", start_envoy(config_path, envoy_log)))
        _wait_healthy("envoy", f"http://127.0.0.1:{options.admin_port}/ready", platform.processes[-1][1], envoy_log)
        platform.sync.start()
        if platform.backends is not None:
            for server in domain_servers:
                platform.backends.start(server)
    except BaseException:
        platform.stop()
        raise
    return platform


def _spawn(command: list[str], log_path: Path, env: dict[str, str], platform: Platform) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    platform.logs.append(log)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def run_up(options: UpOptions) -> int:
    """Start the platform, print where everything runs, and wait for Ctrl-C."""
    platform = start(options)
    state = options.state_dir
    gateway = f"http://127.0.0.1:{options.gateway_port}"
    print(
        "Portcullis is up (all on 127.0.0.1):\n"
        f"  gateway        {gateway}   (Envoy admin http://127.0.0.1:{options.admin_port})\n"
        f"  registry       http://127.0.0.1:{options.registry_port}   (web UI; API /v0.1/servers)\n"
        f"  authz HTTP     http://127.0.0.1:{options.authz_http_port}   (OAuth 2.1 server, AuthZEN, JWKS, /metrics)\n"
        f"  authz gRPC     127.0.0.1:{options.authz_grpc_port}..{options.authz_grpc_port + options.workers - 1}"
        f"   (ext_authz, {options.workers} workers)\n"
        f"  demo server    {gateway}/servers/demo/mcp   (upstream 127.0.0.1:{options.demo_port})\n"
        + "".join(
            f"  {server.name + ' server':<14} {gateway}/servers/{server.name}/mcp   (upstream 127.0.0.1:{server.port}"
            + (f"; backend 127.0.0.1:{server.backend_port}" if server.backend_port else "")
            + "; starting in the background)\n"
            for server in options.domain_servers()
        )
        + f"  decision log   {state / 'decisions.jsonl'}\n"
        f"  logs           {state}/{{registry,authz,demo,<server>,envoy}}.log, {state}/backends/\n"
        "Sign in (web UI or any MCP client with OAuth): users alice, bob, carol, dana, erin, frank;"
        " password 'portcullis'\n"
        "Try it:\n"
        "  TOKEN=$(portcullis token --user alice --client claude-desktop --server demo)\n"
        f'  curl -s {gateway}/servers/demo/mcp -H "Authorization: Bearer $TOKEN" \\\n'
        "    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n"
        '    -d \'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}\'\n'
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        reported: set[str] = set()
        while not stop_requested:
            lock = platform.backends.lock if platform.backends is not None else threading.Lock()
            with lock:
                running = list(platform.processes)
            for name, process in running:
                if process.poll() is None or name in reported:
                    continue
                if name.endswith(" backend"):  # its server stays up and says the backend is unreachable
                    console(f"{name} exited with code {process.returncode} (logs in {state / 'backends'})")
                    reported.add(name)
                    continue
                print(f"portcullis: {name} exited with code {process.returncode}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        print("Stopping...", flush=True)
        platform.stop()
        print("Stopped.", flush=True)
    return 0
