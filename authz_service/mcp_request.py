"""What an MCP request asks for, read from the `Mcp-Method`/`Mcp-Name` headers or the JSON-RPC body.

Clients of protocol 2026-07-28 send the headers on every POST; older clients (2025-06-18, 2025-11-25)
only have the body. When both are present they must agree: the edge decides on what the server will
execute, never on a header the body contradicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authz_service.errors import AuthzError
from portcullis_contracts.json_input import InvalidJson, parse_json

__all__ = ["McpCall", "McpRequestError", "read_mcp_calls"]


class McpRequestError(AuthzError, ValueError):
    """The request is not a well-formed MCP message; the edge refuses it (400)."""

    def __init__(self, reason: str, message: str, request_id: Any = None):
        super().__init__(message)
        self.reason = reason
        self.request_id = request_id


@dataclass(frozen=True)
class McpCall:
    """One JSON-RPC message: its method, the tool it calls (for `tools/call`) and its id."""

    method: str
    tool: str = ""
    request_id: Any = None


def read_mcp_calls(header_method: str | None, header_name: str | None, body: bytes) -> list[McpCall]:
    """The MCP calls a request carries; empty for a request without a message (GET stream, DELETE).

    Raises:
        McpRequestError: unparseable body, a `tools/call` without a tool name, or headers that contradict
            the body.
    """
    calls = _from_body(body) if body.strip() else []
    if header_method:
        header_call = McpCall(header_method, (header_name or "") if header_method == "tools/call" else "")
        if header_call.method == "tools/call" and not header_call.tool:
            raise McpRequestError("invalid_mcp_request", "Mcp-Method is tools/call but Mcp-Name is missing")
        if calls and (len(calls) != 1 or (calls[0].method, calls[0].tool) != (header_call.method, header_call.tool)):
            request_id = calls[0].request_id if len(calls) == 1 else None
            raise McpRequestError(
                "mcp_header_mismatch", "Mcp-Method/Mcp-Name headers do not match the request body", request_id
            )
        return calls or [header_call]
    return calls


def _from_body(body: bytes) -> list[McpCall]:
    try:
        message = parse_json(body)
    except InvalidJson:
        raise McpRequestError("invalid_json", "request body is not valid JSON") from None
    messages = message if isinstance(message, list) else [message]
    if not messages:
        raise McpRequestError("invalid_mcp_request", "empty JSON-RPC batch")
    calls = []
    for item in messages:
        if not isinstance(item, dict):
            raise McpRequestError("invalid_mcp_request", "a JSON-RPC message must be an object")
        request_id = item.get("id")
        if request_id is not None and type(request_id) not in (int, str):
            # JSON-RPC ids are strings or integers (MCP); anything else would be echoed into the denial body.
            raise McpRequestError("invalid_mcp_request", "JSON-RPC id must be a string or an integer")
        method = item.get("method")
        if method is None:
            # A JSON-RPC response (to a server-initiated request, e.g. elicitation) calls nothing new.
            if "result" in item or "error" in item:
                calls.append(McpCall("", "", request_id))
                continue
            raise McpRequestError("invalid_mcp_request", "JSON-RPC message without a method", request_id)
        if not isinstance(method, str):
            raise McpRequestError("invalid_mcp_request", "JSON-RPC method must be a string", request_id)
        tool = ""
        if method == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if not isinstance(name, str) or not name:
                raise McpRequestError("invalid_mcp_request", "tools/call without a tool name", request_id)
            tool = name
        calls.append(McpCall(method, tool, request_id))
    return calls
