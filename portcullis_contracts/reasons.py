"""The reason codes a policy decision carries, and the one sentence each means to the person refused.

The policies (`policies/*.polar`) and the decision point name why a request is denied with a string code; the
edge (ext_authz, a JSON-RPC error) and the server kit (a tool error) both tell the person what it means. The
sentence is written once here, with the things it names left as placeholders: the edge fills in names
(`server 'demo'`), the kit speaks of what the person is using (`this server`). Codes a layer makes up itself
(the edge's token failures, the kit's `authz_unavailable`) stay with that layer.
"""

from __future__ import annotations

__all__ = ["POLICY_REASONS", "policy_reason_text"]

# Placeholders: {server}, {tool}, {client} (the client application), {request} (what was asked: a request, a call).
POLICY_REASONS: dict[str, str] = {
    "server_not_approved": "{server} is not approved for use",
    "client_not_allowed": "{client} may not use {server}",
    "business_group_required": "{server} is restricted to its business group",
    "business_group_mismatch": "this tool serves business groups you are not a member of",
    "group_required": "{tool} is reserved to specific groups",
    "unknown_server": "{server} is not in the catalog",
    "unknown_tool": "{tool} is not in the catalog of {server}",
    "no_rule_allows": "no policy rule allows this {request}",
    "policy_not_loaded": "the authorization service has no policy loaded",
    "evaluation_error": "the policy could not be evaluated",
    "evaluation_timeout": "the policy evaluation timed out",
}


def policy_reason_text(reason: str, *, server: str, tool: str, client: str, request: str) -> str | None:
    """The sentence for a policy reason code, its placeholders filled in; None for a code not listed here."""
    template = POLICY_REASONS.get(reason)
    if template is None:
        return None
    return template.format(server=server, tool=tool, client=client, request=request)
