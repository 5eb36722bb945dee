"""The real `mcp` SDK client through the gateway, for end-to-end tests: one session per call, errors unwrapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

Body = Callable[[Client], Awaitable[Any]]


def session(
    url: str,
    token: str,
    body: Body,
    *,
    elicitation: ElicitationFnT | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Run `body` in a session of the real SDK client at `url` (a gateway route or a server itself)."""

    async def run() -> Any:
        http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}", **(headers or {})}, timeout=60)
        async with (
            http,
            Client(streamable_http_client(url, http_client=http), elicitation_callback=elicitation) as client,
        ):
            return await body(client)

    return anyio.run(run)


def call(name: str, arguments: dict[str, Any] | None = None) -> Body:
    """A body that calls one tool."""

    async def body(client: Client) -> CallToolResult:
        return await client.call_tool(name, arguments or {})

    return body


async def tool_names(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def mcp_error(url: str, token: str, body: Body) -> MCPError:
    """The MCP error the SDK client raises in a session (unwrapped from its task groups)."""
    try:
        session(url, token, body)
    except Exception as error:  # the error itself, or the task groups' exception group around it
        found = [leaf for leaf in leaves(error) if isinstance(leaf, MCPError)]
        if found:
            return found[0]
        raise
    raise AssertionError("the session succeeded")


def leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from leaves(inner)
    else:
        yield error
