"""The server kit: the SDK every Portcullis MCP server is built on.

A domain expert writes tools; the kit verifies the caller's token (defense in depth behind the gateway), asks
the policy before each guarded tool runs (AuthZEN, fail closed, short-TTL cache), lists only the tools the
caller may call, and logs and measures every call.

    from server_kit import Caller, Kit, guarded, public

    kit = Kit("demo")

    @kit.tool()
    @public(reason="Echoes the caller's own input; reads no data.")
    def echo(message: str) -> str:
        return message

    @kit.tool()
    @guarded(arguments=["region"])
    def get_revenue_metrics(caller: Caller, region: str | None = None) -> list[dict[str, object]]: ...
"""

from server_kit.authz import Verdict
from server_kit.caller import Caller
from server_kit.data import Dataset
from server_kit.errors import (
    AccessDenied,
    ConfigurationError,
    DownstreamAuthError,
    GuardError,
    IssuerUnavailable,
    KitError,
    NotConfirmed,
    Unauthenticated,
    UnguardedToolError,
)
from server_kit.guards import Guard, Public, guarded, public
from server_kit.kit import Kit
from server_kit.settings import KitSettings, env_prefix

__all__ = [
    "AccessDenied",
    "Caller",
    "ConfigurationError",
    "Dataset",
    "DownstreamAuthError",
    "Guard",
    "GuardError",
    "IssuerUnavailable",
    "Kit",
    "KitError",
    "KitSettings",
    "NotConfirmed",
    "Public",
    "Unauthenticated",
    "UnguardedToolError",
    "Verdict",
    "env_prefix",
    "guarded",
    "public",
]
