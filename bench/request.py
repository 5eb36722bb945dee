"""The one request every benchmark sends: a `tools/call` of the demo server's `whoami` tool by alice."""

from __future__ import annotations

import json
from typing import Any

from gateway.config import canonical_uri

__all__ = ["BODY", "CLIENT", "ISSUER", "PUBLIC_URL", "SERVER", "TOOL", "audience", "mcp_headers", "user_claims"]

SERVER = "demo"
TOOL = "whoami"
CLIENT = "claude-desktop"
ISSUER = "https://issuer.bench.portcullis"
# The audience's base: every gateway of a run shares it, so one token is valid at all of them.
PUBLIC_URL = "http://gateway.bench"
BODY = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": TOOL, "arguments": {}}},
    separators=(",", ":"),
)


def audience() -> str:
    """The token audience of the benchmarked server."""
    return canonical_uri(PUBLIC_URL, SERVER)


def user_claims(user: str) -> dict[str, Any]:
    """The identity claims of a token for `user` (besides iss, sub, aud, client_id and the times)."""
    return {"email": f"{user}@example.com", "groups": ["eng"], "business_groups": ["platform"]}


def mcp_headers(token: str) -> dict[str, str]:
    """The headers of the request: a 2026-07-28 client names the method and tool in headers too."""
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Mcp-Method": "tools/call",
        "Mcp-Name": TOOL,
    }
