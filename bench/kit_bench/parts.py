"""Where the kit's time goes: the apps called in-process without HTTP, the kit's parts (JWT verification, a
decision cache hit, AuthZEN round trips) timed one by one, and what the kit servers counted themselves."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count

import anyio
import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.types import Message

from bench.decision_bench import percentile
from bench.kit_bench.cases import MESSAGE, PROTOCOL, TOOL, StepFailed, request_body
from bench.kit_bench.servers import SERVER, bare_app, build_kit
from bench.kit_bench.stack import GATEWAY, RESOURCE, SECRET, WARM_TTL_SECONDS, Stack
from server_kit import Caller
from server_kit.auth import TokenVerifier
from server_kit.authz import Authorizer, Check
from server_kit.observability import JsonFormatter
from server_kit.settings import KitSettings

__all__ = ["Parts", "kit_parts"]


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
    body = request_body("tools/call", {"name": TOOL, "arguments": {"message": MESSAGE}})
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
