"""The two servers the benchmark compares, each run in its own process: a kit server and a bare `MCPServer`
with the same tools (`python -m server_kit serve bench.kit_bench.servers:build_kit`, `uvicorn --factory
bench.kit_bench.servers:bare_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from server_kit import Kit, guarded, public
from server_kit.settings import DEFAULT_ALLOWED_HOSTS, DEFAULT_ALLOWED_ORIGINS

__all__ = ["SERVER", "bare_app", "build_kit"]

SERVER = "demo"  # a catalog server, so that the real policies decide on its tools
_INSTRUCTIONS = "Echoes messages; the kit benchmark's server."
_REVENUE = [{"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300}]


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
