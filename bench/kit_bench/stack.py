"""The benchmark's processes: authz_service, the bare server and the two kit servers (warm and cold decision
cache), on 127.0.0.1 free ports, each ready before the run and stopped by PID afterwards."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.kit_bench.servers import SERVER
from portcullis.processes import running
from portcullis.testing import authz_environment, free_port, free_port_block, wait_http

__all__ = ["GATEWAY", "RESOURCE", "SECRET", "WARM_TTL_SECONDS", "Stack", "print_log_tails", "stack"]

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8080"  # only names the audience: nothing in this run listens there
RESOURCE = f"{GATEWAY}/servers/{SERVER}/mcp"
SECRET = "kit-bench-service-credential-0123456789"
AGENT = ("internal-agent", "internal-agent-dev-secret")  # client_credentials; groups: agents
WARM_TTL_SECONDS = 60  # the settings' maximum: no warm entry expires during a run


@dataclass
class Stack:
    """The running processes' URLs, the token, and where their logs are."""

    authz: str
    bare: str
    warm: str
    cold: str
    token: str
    logs: Path

    def url(self, target: str) -> str:
        return {"bare": self.bare, "warm": self.warm, "cold": self.cold}[target]


def _agent_token(authz_url: str) -> str:
    response = httpx.post(
        f"{authz_url}/token",
        data={"grant_type": "client_credentials", "scope": "mcp", "resource": RESOURCE},
        auth=AGENT,
        timeout=10,
    )
    if response.status_code != 200:
        raise RuntimeError(f"client_credentials token: {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


@contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    """authz_service, the bare server and the two kit servers, each ready; all stopped by PID afterwards."""
    authz_port, grpc_port = free_port(), free_port_block(1)
    bare_port, warm_port, cold_port = free_port(), free_port(), free_port()
    authz = f"http://127.0.0.1:{authz_port}"
    authz_env = authz_environment(
        workdir, http_port=authz_port, grpc_port=grpc_port, gateway_url=GATEWAY, service_credentials={SERVER: SECRET}
    )
    kit_env = {
        **os.environ,
        "KIT_DEMO_ISSUER": authz,
        "KIT_DEMO_GATEWAY_URL": GATEWAY,
        "KIT_DEMO_AUTHZ_URL": authz,
        "KIT_DEMO_AUTHZ_CREDENTIAL": SECRET,
    }
    kit = [sys.executable, "-m", "server_kit", "serve", "bench.kit_bench.servers:build_kit", "--port"]
    bare = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.kit_bench.servers:bare_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(bare_port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with ExitStack() as processes:
        started = processes.enter_context(
            running([sys.executable, "-m", "authz_service"], workdir / "authz.log", env=authz_env, cwd=ROOT)
        )
        servers = {
            bare_port: processes.enter_context(running(bare, workdir / "bare.log", env=dict(os.environ), cwd=ROOT)),
            warm_port: processes.enter_context(
                running(
                    [*kit, str(warm_port)],
                    workdir / "kit-warm.log",
                    cwd=ROOT,
                    env={**kit_env, "KIT_DEMO_DECISION_CACHE_TTL_SECONDS": str(WARM_TTL_SECONDS)},
                )
            ),
            cold_port: processes.enter_context(
                running(
                    [*kit, str(cold_port)],
                    workdir / "kit-cold.log",
                    cwd=ROOT,
                    env={**kit_env, "KIT_DEMO_DECISION_CACHE_TTL_SECONDS": "0"},
                )
            ),
        }
        wait_http(f"{authz}/readyz", timeout=60, process=started)
        for port, process in servers.items():
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
        bare_url, warm_url, cold_url = (f"http://127.0.0.1:{port}" for port in (bare_port, warm_port, cold_port))
        yield Stack(authz, bare_url, warm_url, cold_url, token=_agent_token(authz), logs=workdir)


def print_log_tails(logs: Path, lines: int = 15) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)
