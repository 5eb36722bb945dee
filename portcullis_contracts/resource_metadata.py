"""An MCP server as an OAuth protected resource: its canonical URI, its RFC 9728 metadata, the 401 challenge.

The gateway serves the metadata (an Envoy direct response) and the decision point writes the challenge at the
edge; the server kit serves and writes the same ones behind it. Both follow these definitions, so a client sees
one document and one challenge whichever layer refuses it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "RESOURCE_METADATA_PATH",
    "SERVER_SCOPE",
    "canonical_uri",
    "challenge",
    "protected_resource_metadata",
    "resource_metadata_url",
]

# The one scope a token needs for an MCP server behind the gateway (the audience names the server).
SERVER_SCOPE = "mcp"
# RFC 9728 §3: the well-known URI of protected-resource metadata, inserted before the resource's path.
RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource"


def canonical_uri(gateway_url: str, server: str) -> str:
    """The canonical URI of a server behind the gateway: its token audience (one audience per server)."""
    return f"{gateway_url.rstrip('/')}/servers/{server}/mcp"


def resource_metadata_url(resource: str) -> str:
    """The URL of a resource's RFC 9728 metadata: the well-known path inserted between host and path (§3.1)."""
    parts = urlsplit(resource)
    return urlunsplit((parts.scheme, parts.netloc, RESOURCE_METADATA_PATH + parts.path.rstrip("/"), "", ""))


def protected_resource_metadata(*, resource: str, issuer: str, scope: str, name: str) -> dict[str, Any]:
    """A server's RFC 9728 protected-resource metadata: its canonical URI as resource, the issuer, the scope."""
    return {
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": [scope] if scope else [],
        "bearer_methods_supported": ["header"],
        "resource_name": name,
    }


def _quoted(value: str) -> str:
    """`value` fit for an RFC 9110 quoted-string without escapes."""
    return value.replace("\\", "").replace('"', "'")


def challenge(*, resource_metadata_url: str = "", scope: str = "", error: str = "", description: str = "") -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750 §3, RFC 9728 §5.1): where the metadata is, the scope to
    ask for, and, only when a token was presented, the error code and its description.
    """
    params = [
        f'{key}="{_quoted(value)}"'
        for key, value in (("resource_metadata", resource_metadata_url), ("scope", scope))
        if value
    ]
    if error:
        params.append(f'error="{error}"')
        if description:
            params.append(f'error_description="{_quoted(description)}"')
    return "Bearer " + ", ".join(params) if params else "Bearer"
