"""The end-to-end measurements: raw JSON-RPC POSTs over one keep-alive connection per server, then the `mcp`
SDK's `Client` over one session per server, each case interleaved round by round."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from itertools import count

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.kit_bench.cases import CASES, MESSAGE, PROTOCOL, TOOL, Case, Samples, StepFailed, request_body, schedule
from bench.kit_bench.stack import Stack

__all__ = ["RawCaller", "listed", "measure_raw", "measure_sdk"]


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
        self._list = request_body("tools/list", {})
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
            body = request_body("tools/call", {"name": TOOL, "arguments": {"message": message}})
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
