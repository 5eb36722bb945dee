"""The server kit's per-call overhead against a bare `MCPServer` with the same tools, measured in the same run.

    python -m bench.kit_bench [--rounds 10] [--per-round 150] [--warmup 150]

Four processes on 127.0.0.1 free ports, stopped by PID at the end (also on failure): the real authz_service
(one worker, the repository's policies and catalog, this run's service credential for `demo`), the bare server
(`bare_app`: `MCPServer`, stateless streamable HTTP, JSON responses, under uvicorn), and two kit servers
(`build_kit`: the same tools, `echo` guarded on its `message`, served by `python -m server_kit serve`), one with
the decision cache on for the whole run (warm) and one with it off (cold: every call asks AuthZEN). The token
is a real one: `internal-agent`'s client credentials for the kit's canonical URI; the bare server gets the same
`Authorization` header and ignores it.

The benchmark's process is the only client, one connection per server, sequential: raw JSON-RPC POSTs over a
keep-alive `httpx.Client` (the floor of an MCP client), then the `mcp` SDK's `Client` over one session per server.
Cases of one method are interleaved round by round, in a rotating order, so that every ratio compares samples
taken at the same moments of a noisy machine. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import Message

from bench.decision_bench import percentile
from portcullis.processes import running
from portcullis.testing import authz_environment, free_port, free_port_block, wait_http
from server_kit import Caller, Kit, guarded, public
from server_kit.auth import TokenVerifier
from server_kit.authz import Authorizer, Check
from server_kit.observability import JsonFormatter
from server_kit.settings import DEFAULT_ALLOWED_HOSTS, DEFAULT_ALLOWED_ORIGINS, KitSettings

__all__ = ["bare_app", "build_kit", "main"]

ROOT = Path(__file__).resolve().parents[1]
SERVER = "demo"  # a catalog server, so that the real policies decide on its tools
GATEWAY = "http://127.0.0.1:8080"  # only names the audience: nothing in this run listens there
RESOURCE = f"{GATEWAY}/servers/{SERVER}/mcp"
SECRET = "kit-bench-service-credential-0123456789"
AGENT = ("internal-agent", "internal-agent-dev-secret")  # client_credentials; groups: agents
TOOL = "echo"
MESSAGE = "hello, portcullis"
WARM_TTL_SECONDS = 60  # the settings' maximum: no warm entry expires during a run
TARGET = 0.10  # warm-cache overhead, a share of the bare call's p50
PROTOCOL = "2026-07-28"
_INSTRUCTIONS = "Echoes messages; the kit benchmark's server."
_META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "kit-bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
_REVENUE = [{"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300}]


# --- the servers (each runs in its own process) ----------------------------------------------------------------


def _tools() -> tuple[Callable[..., Awaitable[Any]], ...]:
    """Fresh function objects of the tools both servers serve (the kit's markers are set on the function)."""

    async def echo(message: str) -> str:
        """Echo a message back."""
        return message

    async def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]:
        """Daily ad revenue by region (sample data). Reserved to the ads-eng group."""
        return [row for row in _REVENUE if region is None or row["region"] == region]

    async def server_version() -> str:
        """The server's version."""
        return "1.0.0"

    return echo, get_revenue_metrics, server_version


def build_kit() -> Kit:
    """The kit server: `echo` and `get_revenue_metrics` guarded, `server_version` public."""
    echo, revenue, version = _tools()
    kit = Kit(SERVER, instructions=_INSTRUCTIONS)
    kit.tool()(guarded(arguments=["message"])(echo))
    kit.tool()(guarded(arguments=["region"])(revenue))
    kit.tool()(public(reason="Reports the server's version; reads no data.")(version))
    return kit


def bare_app() -> Starlette:
    """The bare server: the same tools on a plain `MCPServer`, and the kit's app layout without the kit."""
    server = MCPServer(SERVER, instructions=_INSTRUCTIONS)
    for tool in _tools():
        server.add_tool(tool)
    security = TransportSecuritySettings(
        allowed_hosts=list(DEFAULT_ALLOWED_HOSTS), allowed_origins=list(DEFAULT_ALLOWED_ORIGINS)
    )
    mcp_app = server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "server": SERVER})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), Mount("/", app=mcp_app)], lifespan=lifespan)


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
    kit = [sys.executable, "-m", "server_kit", "serve", "bench.kit_bench:build_kit", "--port"]
    bare = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.kit_bench:bare_app",
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


def _print_log_tails(logs: Path, lines: int = 15) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)


# --- the cases ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One thing timed: an MCP method on one server, with the call's message fixed or new each time."""

    label: str
    method: str  # "tools/call" or "tools/list"
    target: str  # "bare", "warm" or "cold"
    fresh_arguments: bool = False  # a new message each call: a miss in authz_service's own decision cache too


CASES = (
    Case("tools/call bare MCPServer", "tools/call", "bare"),
    Case("tools/call kit, warm cache", "tools/call", "warm"),
    Case("tools/call kit, cold: cache off", "tools/call", "cold"),
    Case("tools/call kit, cold + new argument", "tools/call", "cold", fresh_arguments=True),
    Case("tools/list bare MCPServer", "tools/list", "bare"),
    Case("tools/list kit, warm: batch cached", "tools/list", "warm"),
    Case("tools/list kit, cold: batch of 2 asked", "tools/list", "cold"),
)


def schedule(cases: tuple[Case, ...], rounds: int) -> list[Case]:
    """Every round runs each method's cases once, in an order that rotates from round to round."""
    order: list[Case] = []
    for method in dict.fromkeys(case.method for case in cases):
        group = [case for case in cases if case.method == method]
        for r in range(rounds):
            shift = r % len(group)
            order += group[shift:] + group[:shift]
    return order


@dataclass
class Samples:
    """Latencies of one case, in ms."""

    case: Case
    samples: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # each round's p50, for the spread of the ratios

    @property
    def ordered(self) -> list[float]:
        return sorted(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.ordered, 50)

    @property
    def p99(self) -> float:
        return percentile(self.ordered, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def add_round(self, latencies: list[float]) -> None:
        self.samples += latencies
        self.rounds.append(percentile(sorted(latencies), 50))


class StepFailed(RuntimeError):
    """A server answered something other than a successful result."""


# --- raw JSON-RPC over one keep-alive connection per server ------------------------------------------------------


def _body(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": _META}}).encode()


class RawCaller:
    """The requests the SDK client sends (same headers, same `_meta`), posted with a keep-alive `httpx.Client`."""

    def __init__(self, url: str, token: str, prefix: str):
        self._client = httpx.Client(
            base_url=url,
            timeout=15,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "Mcp-Protocol-Version": PROTOCOL,
            },
        )
        self._list = _body("tools/list", {})
        self._fresh = (f"{prefix}-{n}" for n in count())

    def close(self) -> None:
        self._client.close()

    def tool_names(self) -> list[str]:
        response = self._client.post("/mcp", content=self._list, headers={"Mcp-Method": "tools/list"})
        return sorted(tool["name"] for tool in response.json()["result"]["tools"])

    def run(self, case: Case) -> None:
        if case.method == "tools/list":
            response = self._client.post("/mcp", content=self._list, headers={"Mcp-Method": "tools/list"})
        else:
            message = f"{MESSAGE} {next(self._fresh)}" if case.fresh_arguments else MESSAGE
            body = _body("tools/call", {"name": TOOL, "arguments": {"message": message}})
            response = self._client.post("/mcp", content=body, headers={"Mcp-Method": "tools/call", "Mcp-Name": TOOL})
        if response.status_code != 200 or b'"result"' not in response.content or b'"isError":true' in response.content:
            raise StepFailed(f"{case.label}: {response.status_code} {response.text[:300]}")


def listed(run: Stack) -> dict[str, list[str]]:
    """The tools each server lists to the benchmark's caller."""
    callers = {target: RawCaller(run.url(target), run.token, "list") for target in ("bare", "warm", "cold")}
    try:
        return {target: caller.tool_names() for target, caller in callers.items()}
    finally:
        for caller in callers.values():
            caller.close()


def measure_raw(run: Stack, *, rounds: int, per_round: int, warmup: int) -> dict[Case, Samples]:
    """Each case `warmup` times, then `rounds` interleaved rounds of `per_round` timed requests."""
    callers = {target: RawCaller(run.url(target), run.token, "raw") for target in ("bare", "warm", "cold")}
    clock = time.perf_counter_ns
    results = {case: Samples(case) for case in CASES}
    try:
        for case in CASES:
            for _ in range(warmup):
                callers[case.target].run(case)
        for case in schedule(CASES, rounds):
            caller, latencies = callers[case.target], []
            for _ in range(per_round):
                started = clock()
                caller.run(case)
                latencies.append((clock() - started) / 1e6)
            results[case].add_round(latencies)
    finally:
        for caller in callers.values():
            caller.close()
    return results


# --- the mcp SDK client, one session per server ------------------------------------------------------------------


async def _sdk_run(client: Client, case: Case, fresh: Iterator[str]) -> None:
    if case.method == "tools/list":
        listed = await client.list_tools()
        if not listed.tools:
            raise StepFailed(f"{case.label}: no tools listed")
        return
    message = f"{MESSAGE} {next(fresh)}" if case.fresh_arguments else MESSAGE
    result = await client.call_tool(TOOL, {"message": message})
    if result.is_error:
        raise StepFailed(f"{case.label}: {result.content}")


async def _measure_sdk(run: Stack, *, rounds: int, per_round: int, warmup: int) -> dict[Case, Samples]:
    clock = time.perf_counter_ns
    results = {case: Samples(case) for case in CASES}
    fresh = (f"sdk-{n}" for n in count())  # messages no other phase sent: authz_service has not decided them
    async with AsyncExitStack() as sessions:
        clients: dict[str, Client] = {}
        for target in ("bare", "warm", "cold"):
            http = await sessions.enter_async_context(
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {run.token}"}, timeout=15)
            )
            # cache=None: the SDK would otherwise answer tools/list from its response cache.
            transport = streamable_http_client(f"{run.url(target)}/mcp", http_client=http)
            clients[target] = await sessions.enter_async_context(Client(transport, cache=None))
        for case in CASES:
            for _ in range(warmup):
                await _sdk_run(clients[case.target], case, fresh)
        for case in schedule(CASES, rounds):
            client, latencies = clients[case.target], []
            for _ in range(per_round):
                started = clock()
                await _sdk_run(client, case, fresh)
                latencies.append((clock() - started) / 1e6)
            results[case].add_round(latencies)
    return results


def measure_sdk(run: Stack, *, rounds: int, per_round: int, warmup: int) -> dict[Case, Samples]:
    """As `measure_raw`, through the `mcp` SDK's `Client` (streamable HTTP, one session per server)."""

    async def measure() -> dict[Case, Samples]:
        return await _measure_sdk(run, rounds=rounds, per_round=per_round, warmup=warmup)

    return anyio.run(measure)


# --- where the kit's time goes -----------------------------------------------------------------------------------


@dataclass
class Parts:
    """The kit's parts timed in this process (us unless named ms), and what the kit servers counted themselves."""

    bare_app_us: float = 0.0  # the bare ASGI app called directly: no HTTP, no client
    kit_app_us: float = 0.0  # the kit's ASGI app, warm cache, logging its line per call
    kit_quiet_us: float = 0.0  # the same app with the kit's loggers at WARNING (no line per call)
    jwt_us: float = 0.0
    cache_hit_us: float = 0.0
    authzen_ms: float = 0.0
    authzen_fresh_ms: float = 0.0
    authz_healthz_ms: float = 0.0
    wrapper_ms: dict[str, float] = field(default_factory=dict)  # target -> mean time inside the tool wrapper
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)  # target -> {"hit"/"miss": n}


async def _timed_async(call: Callable[[], Awaitable[object]], n: int, *, warmup: int | None = None) -> list[float]:
    """`n` timed awaits of `call` (us, ascending) after a warm-up (a tenth of them, at least 10)."""
    clock = time.perf_counter_ns
    for _ in range(max(10, n // 10) if warmup is None else warmup):
        await call()
    samples = []
    for _ in range(n):
        started = clock()
        await call()
        samples.append((clock() - started) / 1e3)
    samples.sort()
    return samples


def _asgi_call(app: Starlette, token: str) -> Callable[[], Awaitable[None]]:
    """One `tools/call` of echo straight into an ASGI app, as uvicorn would pass it; checks the answer."""
    body = _body("tools/call", {"name": TOOL, "arguments": {"message": MESSAGE}})
    headers = [
        (b"host", b"127.0.0.1:8300"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-protocol-version", PROTOCOL.encode()),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", TOOL.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8300),
    }

    async def call() -> None:
        request: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            if request:
                return request.pop()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        answer = b"".join(message.get("body", b"") for message in sent[1:])
        if sent[0].get("status") != 200 or b'"isError":false' not in answer:
            raise StepFailed(f"in-process tools/call: {sent[0].get('status')} {answer[:300]!r}")

    return call


@contextmanager
def _kit_log_lines() -> Iterator[logging.Logger]:
    """The kit's loggers writing JSON lines to /dev/null, as `serve` writes them to stderr; restored afterwards."""
    kit_logger = logging.getLogger("portcullis.kit")
    saved = (kit_logger.level, kit_logger.propagate, list(kit_logger.handlers))
    with open(os.devnull, "w") as devnull:
        handler = logging.StreamHandler(devnull)
        handler.setFormatter(JsonFormatter())
        kit_logger.handlers, kit_logger.propagate = [handler], False
        kit_logger.setLevel(logging.INFO)
        try:
            yield kit_logger
        finally:
            kit_logger.setLevel(saved[0])
            kit_logger.propagate, kit_logger.handlers = saved[1], saved[2]


async def _server_side(run: Stack, parts: Parts, *, rounds: int, n: int) -> None:
    """The bare and the kit apps called directly, interleaved: the servers' own time, without HTTP or a client."""
    settings = KitSettings(
        server=SERVER,
        issuer=run.authz,
        gateway_url=GATEWAY,
        authz_url=run.authz,
        authz_credential=SecretStr(SECRET),
        decision_cache_ttl_seconds=WARM_TTL_SECONDS,
    )
    bare, kit = bare_app(), build_kit().create_app(settings)
    samples: dict[str, list[float]] = {"bare": [], "kit": [], "quiet": []}
    async with bare.router.lifespan_context(bare), kit.router.lifespan_context(kit):
        with _kit_log_lines() as kit_logger:
            calls = {"bare": _asgi_call(bare, run.token), "kit": _asgi_call(kit, run.token)}
            for name in ("bare", "kit"):
                await _timed_async(calls[name], 0, warmup=200)
            for r in range(rounds):
                for name in ("bare", "kit", "quiet")[r % 3 :] + ("bare", "kit", "quiet")[: r % 3]:
                    kit_logger.setLevel(logging.WARNING if name == "quiet" else logging.INFO)
                    samples[name] += await _timed_async(calls["bare" if name == "bare" else "kit"], n, warmup=20)
    parts.bare_app_us, parts.kit_app_us, parts.kit_quiet_us = (
        percentile(sorted(samples[name]), 50) for name in ("bare", "kit", "quiet")
    )


async def _kit_parts(run: Stack, parts: Parts, n: int) -> None:
    """JWT verification, a decision cache hit and AuthZEN round trips, each with the kit's own classes."""
    verifier = TokenVerifier(
        issuer=run.authz,
        audience=RESOURCE,
        jwks_url=f"{run.authz}/.well-known/jwks.json",
        revoked=frozenset,  # the kit's hot path: a membership test in the followed feed's set
        required_scope="mcp",
    )
    caller: Caller = await verifier.verify(run.token, {})  # fetches the JWKS once
    parts.jwt_us = percentile(await _timed_async(lambda: verifier.verify(run.token, {}), n), 50)
    check = Check(TOOL, "call", {"message": MESSAGE})
    warm = Authorizer(
        server=SERVER, url=run.authz, credential=SECRET, timeout_seconds=2, cache_ttl_seconds=WARM_TTL_SECONDS
    )
    cold = Authorizer(server=SERVER, url=run.authz, credential=SECRET, timeout_seconds=2, cache_ttl_seconds=0)
    fresh = (f"parts-{n}" for n in count())
    try:
        if not (await warm.check(caller, check)).allowed:
            raise StepFailed("the policy denies internal-agent a call of echo")
        parts.cache_hit_us = percentile(await _timed_async(lambda: warm.check(caller, check), n), 50)
        parts.authzen_ms = percentile(await _timed_async(lambda: cold.check(caller, check), n // 4), 50) / 1000
        parts.authzen_fresh_ms = (
            percentile(
                await _timed_async(lambda: cold.check(caller, Check(TOOL, "call", {"message": next(fresh)})), n // 4),
                50,
            )
            / 1000
        )
    finally:
        await warm.aclose()
        await cold.aclose()
    async with httpx.AsyncClient(base_url=run.authz, timeout=5) as client:  # the Authorizer's kind of client
        healthz = await _timed_async(lambda: client.get("/healthz"), n // 4)
    parts.authz_healthz_ms = percentile(healthz, 50) / 1000


_SAMPLE = re.compile(r"^(portcullis_kit_\w+)\{([^}]*)\} (\S+)$", re.MULTILINE)


def _kit_counters(url: str) -> tuple[float, dict[str, int]]:
    """The kit's mean time inside the echo wrapper (ms) and its decisions by cache hit/miss, from `/metrics`."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    sums: dict[str, float] = {}
    decisions: dict[str, int] = {"hit": 0, "miss": 0}
    for name, labels, value in _SAMPLE.findall(text):
        if name.startswith("portcullis_kit_tool_seconds_") and f'tool="{TOOL}"' in labels:
            sums[name.rsplit("_", 1)[1]] = float(value)
        elif name == "portcullis_kit_decisions_total":
            cache = re.search(r'cache="(\w+)"', labels)
            if cache:
                decisions[cache.group(1)] = decisions.get(cache.group(1), 0) + int(float(value))
    mean = sums.get("sum", 0.0) / sums["count"] * 1000 if sums.get("count") else float("nan")
    return mean, decisions


def kit_parts(run: Stack, *, rounds: int, samples: int) -> Parts:
    """The kit servers' own counters, then the apps and the kit's parts timed in this process."""
    parts = Parts()
    for target in ("warm", "cold"):
        parts.wrapper_ms[target], parts.decisions[target] = _kit_counters(run.url(target))

    async def measure() -> None:
        await _server_side(run, parts, rounds=rounds, n=samples // rounds)
        await _kit_parts(run, parts, samples)

    anyio.run(measure)
    return parts


# --- report ------------------------------------------------------------------------------------------------------


def _table(title: str, results: dict[Case, Samples]) -> None:
    print(f"\n{title}")
    print(
        f"{'request':<38} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'calls/s':>8} {'p50 x':>6} "
        f"{'p99 x':>6} {'round p50 x':>12}"
    )
    for method in ("tools/call", "tools/list"):
        rows = [samples for case, samples in results.items() if case.method == method]
        base = rows[0]
        for s in rows:
            spread = [mine / theirs for mine, theirs in zip(s.rounds, base.rounds, strict=True)]
            print(
                f"{s.case.label:<38} {len(s.samples):>5} {s.p50:>8.2f} {s.p99:>8.2f} {s.mean:>8.2f} "
                f"{1000 / s.mean:>8,.0f} {s.p50 / base.p50:>6.2f} {s.p99 / base.p99:>6.2f} "
                f"{f'{min(spread):.2f}-{max(spread):.2f}':>12}"
            )
    by_label = {case.label: samples for case, samples in results.items()}
    bare, warm = by_label[CASES[0].label], by_label[CASES[1].label]
    cold, fresh = by_label[CASES[2].label], by_label[CASES[3].label]
    overhead = warm.p50 / bare.p50 - 1
    verdict = "met" if overhead < TARGET else "missed"
    print(
        f"warm-cache overhead: {overhead:+.1%} p50 ({warm.p50 - bare.p50:+.2f} ms), "
        f"{warm.p99 / bare.p99 - 1:+.1%} p99; target < {TARGET:.0%} of the bare call: {verdict}"
    )
    print(
        f"cold overhead: {cold.p50 / bare.p50 - 1:+.1%} p50 ({cold.p50 - bare.p50:+.2f} ms) with authz_service's "
        f"own cache hit; {fresh.p50 / bare.p50 - 1:+.1%} p50 ({fresh.p50 - bare.p50:+.2f} ms) with a policy "
        "evaluation"
    )


def report(
    raw: dict[Case, Samples],
    sdk: dict[Case, Samples],
    parts: Parts,
    tools: dict[str, list[str]],
    *,
    rounds: int,
    per_round: int,
) -> None:
    """Print both clients' tables, the verdicts and where the kit's time goes."""
    print(
        f"\nkit overhead: bare MCPServer vs kit (JWT + guard + AuthZEN) servers, each its own uvicorn process; "
        f"authz_service 1 worker; {os.cpu_count()} cores shared by all with the client"
    )
    print(
        f"{rounds} interleaved rounds x {per_round} requests per case; x = against the bare server in the same "
        "run; round p50 x = the range of the per-round p50 ratios"
    )
    print(
        f"tools/list to internal-agent: bare {', '.join(tools['bare'])}; kit {', '.join(tools['warm'])} "
        f"(cold: {', '.join(tools['cold'])})"
    )
    _table("raw JSON-RPC POSTs (httpx.Client, keep-alive, the SDK's headers and _meta)", raw)
    _table("mcp SDK Client (streamable HTTP, one session per server, response cache off)", sdk)
    print("\nwhere the kit's time goes")
    for target in ("warm", "cold"):
        decisions = parts.decisions[target]
        print(
            f"  kit {target} server: mean {parts.wrapper_ms[target]:.3f} ms per echo inside the tool wrapper (guard, "
            f"decision, tool; its log line is written after); decisions over the run: {decisions['hit']:,} cache "
            f"hits, {decisions['miss']:,} misses"
        )
    extra = parts.kit_app_us - parts.bare_app_us
    log_line = parts.kit_app_us - parts.kit_quiet_us
    rest = extra - parts.jwt_us - log_line
    print(
        f"  server side only, in this process (ASGI apps called directly: no HTTP, no client), p50: bare "
        f"{parts.bare_app_us:.0f} us, kit warm {parts.kit_app_us:.0f} us (+{extra:.0f} us, x"
        f"{parts.kit_app_us / parts.bare_app_us:.2f}), kit without its log line {parts.kit_quiet_us:.0f} us"
    )
    print(
        f"    the kit's +{extra:.0f} us: JWT verification {parts.jwt_us:.0f} us ({parts.jwt_us / extra:.0%}), "
        f"JSON log line {log_line:.0f} us ({log_line / extra:.0%}), the rest {rest:.0f} us ({rest / extra:.0%}: "
        f"guard wrapper, Caller, decision cache hit {parts.cache_hit_us:.0f} us, metrics, middleware)"
    )
    print(
        f"  AuthZEN from this process with the kit's Authorizer (cache off), p50: {parts.authzen_ms:.2f} ms "
        f"(authz_service's cache hit), {parts.authzen_fresh_ms:.2f} ms (policy evaluated); authz_service "
        f"GET /healthz on the same kind of client: {parts.authz_healthz_ms:.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 when a step failed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.kit_bench",
        description="The server kit's per-call overhead against a bare MCPServer, in the same run; prints figures.",
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per client")
    parser.add_argument("--per-round", type=int, default=150, help="timed requests per case and round")
    parser.add_argument("--warmup", type=int, default=150, help="untimed requests per case before the rounds")
    args = parser.parse_args(argv)
    # This process's logging, set before anything builds an `MCPServer` (its constructor would set the root
    # logger to INFO, and httpx would then write a line per AuthZEN request inside the timed parts).
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portcullis-kit-bench-") as tmp:
        try:
            with stack(Path(tmp)) as run:
                try:
                    tools = listed(run)
                    print(f"raw JSON-RPC: {len(CASES)} cases x {args.rounds} rounds x {args.per_round} ...", flush=True)
                    raw = measure_raw(run, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup)
                    print(
                        f"mcp SDK client: {len(CASES)} cases x {args.rounds} rounds x {args.per_round} ...", flush=True
                    )
                    sdk = measure_sdk(run, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup)
                    parts = kit_parts(run, rounds=args.rounds, samples=3000)
                except (StepFailed, httpx.HTTPError, httpx2.HTTPError, ExceptionGroup):
                    _print_log_tails(run.logs)
                    raise
        except (StepFailed, httpx.HTTPError, httpx2.HTTPError, ExceptionGroup, RuntimeError, TimeoutError) as exc:
            print(f"kit_bench: {exc!r}", file=sys.stderr)
            return 1
    report(raw, sdk, parts, tools, rounds=args.rounds, per_round=args.per_round)
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
