"""Human in the loop: a mutating tool asks the person to confirm, through MCP elicitation, before it acts.

The question rides the SDK's resolver machinery, so it works on both transports the SDK speaks: from protocol
2026-07-28 it is an `InputRequiredResult` that the client answers by calling again (stateless, any replica; the
round's state is sealed with the server's request-state keys and bound to the caller); before that, a
server-to-client `elicitation/create` request, which needs a back channel a stateless JSON server does not have.

A client that cannot ask a person (no form-elicitation capability, or no way to send it the question) gets a
clear refusal, unless the policy waives the confirmation for this caller and tool (action `call_unconfirmed`):
an unattended agent doing what its owners set it up to do, say.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from server_kit.errors import NotConfirmed

__all__ = [
    "CONFIRMATION_REQUIRED",
    "WAIVE_ACTION",
    "Confirmation",
    "Waived",
    "can_elicit",
    "confirmation_message",
    "require_confirmed",
]

WAIVE_ACTION = "call_unconfirmed"
CONFIRMATION_REQUIRED = "confirmation_required"
_INPUT_REQUIRED_VERSION = "2026-07-28"  # the first protocol whose tools/call carries elicitation in its result
_MAX_ARGUMENTS_CHARS = 600


class Confirmation(BaseModel):
    """The form the person answers."""

    confirm: bool = Field(title="Confirm", description="Run this action now")


@dataclass(frozen=True)
class Waived:
    """The policy waived the confirmation for this call (the client could not ask)."""

    decision_id: str


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether this request's client can put a form question to a person, on this transport."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
        return True
    # Older protocols send a separate request mid-call: only possible with a back channel to the client.
    return bool(getattr(ctx.session, "can_send_request", False))


def confirmation_message(server: str, tool: str, description: str, arguments: Mapping[str, Any]) -> str:
    """What the person is asked: the server, the tool, what it does, and the arguments it will act on."""
    shown = json.dumps(dict(arguments), default=str, ensure_ascii=False, sort_keys=True)
    if len(shown) > _MAX_ARGUMENTS_CHARS:
        shown = shown[: _MAX_ARGUMENTS_CHARS - 1] + "…"
    summary = description.strip().splitlines()[0] if description.strip() else "This action changes data."
    return f"{server} wants to run {tool}: {summary}\nArguments: {shown}\nRun it?"


def require_confirmed(outcome: ElicitationResult[Confirmation] | Any, tool: str) -> str:
    """How the call was confirmed (`confirmed`, or `waived` by the policy).

    Raises:
        NotConfirmed: the person declined, cancelled, or answered without confirming.
    """
    if isinstance(outcome, AcceptedElicitation):
        data = outcome.data
        if isinstance(data, Waived):
            return "waived"
        if isinstance(data, Confirmation) and data.confirm:
            return "confirmed"
        raise NotConfirmed(f"{tool} was not run: the action was not confirmed", reason="declined")
    action = getattr(outcome, "action", "cancel")
    reason = "declined" if action == "decline" else "cancelled"
    raise NotConfirmed(f"{tool} was not run: the confirmation was {reason}", reason=reason)
