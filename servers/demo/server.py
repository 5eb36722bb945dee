"""A small demo MCP server (the `mcp` SDK's `MCPServer`, stateless streamable HTTP).

It shows what a server behind the gateway receives: the identity headers set by the edge decision.
Until the server kit exists it trusts those headers because it listens on 127.0.0.1 only, behind Envoy;
the kit adds its own JWT verification and per-tool AuthZEN checks (layer 2).
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["DEFAULT_PORT", "build_server", "create_app"]

DEFAULT_PORT = 8300
IDENTITY_HEADERS = ("user", "email", "groups", "business-groups", "client", "decision-id")
_REVENUE = [
    {"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300},
    {"date": "2026-11-20", "region": "amer", "revenue_usd": 2_871_950},
    {"date": "2026-11-20", "region": "apac", "revenue_usd": 943_120},
]


def _identity(ctx: Context) -> dict[str, str]:
    headers = ctx.headers or {}
    return {name: headers.get(f"x-portcullis-{name}", "") for name in IDENTITY_HEADERS}


def build_server() -> MCPServer:
    """The demo server with its three tools."""
    server = MCPServer("demo", instructions="A demo server behind the Portcullis gateway.")

    @server.tool()
    def whoami(ctx: Context) -> dict[str, str]:
        """The identity the gateway passed to this server for this call."""
        return _identity(ctx)

    @server.tool()
    def echo(message: str) -> str:
        """Echo a message back."""
        return message

    @server.tool()
    def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]:
        """Daily ad revenue by region (sample data). Reserved to the ads-eng group."""
        return [row for row in _REVENUE if region is None or row["region"] == region]

    @server.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return server


def create_app(allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app: stateless streamable HTTP at `/mcp`, health at `/healthz`."""
    security = TransportSecuritySettings(allowed_hosts=allowed_hosts or ["127.0.0.1:*", "localhost:*"])
    return build_server().streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
