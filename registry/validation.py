"""Validation of a published `server.json`: the official schema, then our governance extension.

A document is accepted when it is valid under the 2025-12-01 draft schema or the released 2025-09-29 one
(clients in the field publish either). Errors are reported with the JSON path of each, all at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portcullis_contracts.catalog import (
    RESERVED_NAMES,
    DatasetLabel,
    Sensitivity,
    ToolEntry,
    check_unique_tools,
    check_upstream,
)
from portcullis_contracts.urls import absolute_url_problem
from registry.errors import InvalidRequest, SchemaViolation

__all__ = ["GOVERNANCE_KEY", "Governance", "ValidServer", "validate_server_json"]

GOVERNANCE_KEY = "dev.portcullis/governance"
_SCHEMAS = Path(__file__).parent / "schemas"
_SCHEMA_FILES = ("server.schema.draft-145c2ec.json", "server.schema.2025-09-29.json")
# Reverse-DNS namespace: at least two dot-separated labels (com.acme, com.acme.ads), then one slash and a name.
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_ROUTE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_MAX_ERRORS = 50
_VERSION_RANGE = re.compile(r"^[\^~<>=]|\.[x*](\.|$)|\s|\|\|")


class Governance(BaseModel):
    """Our extension under `_meta["dev.portcullis/governance"]`: what the policies decide on."""

    model_config = ConfigDict(extra="forbid")

    owner_team: str = Field(min_length=1, max_length=100)
    support_channel: str = Field(default="", max_length=200)
    business_group: str = Field(default="", max_length=100)
    sensitivity: Sensitivity = "internal"
    allowed_clients: list[str] = Field(default_factory=list)
    route: str | None = Field(default=None, description="gateway path segment; defaults to the name's last part")
    upstream: str = Field(description="host:port of the server behind the gateway")
    tools: list[ToolEntry] = Field(default_factory=list)
    datasets: list[DatasetLabel] = Field(
        default_factory=list, max_length=1000, description="labels of the data the server serves; first match wins"
    )
    downstream_resources: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="resources (canonical http(s) URIs) the server may exchange its callers' tokens for",
    )

    _host_port = field_validator("upstream")(classmethod(lambda cls, value: check_upstream(value)))
    _unique_tools = field_validator("tools")(classmethod(lambda cls, tools: check_unique_tools(tools)))

    @field_validator("downstream_resources")
    @classmethod
    def _downstream(cls, value: list[str]) -> list[str]:
        # What the identity server lets this server exchange tokens for: only canonical absolute http(s) URIs,
        # parsed by the same strict parser the identity server uses (no userinfo, fragment or spelling tricks).
        for uri in value:
            problem = absolute_url_problem(uri)
            if problem is not None:
                raise ValueError(f"downstream resource {uri[:200]!r}: {problem}")
        if len({uri.rstrip("/") for uri in value}) != len(value):
            raise ValueError("downstream_resources lists a resource twice")
        return value

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and not _ROUTE.match(value):
            raise ValueError("route must be lowercase letters, digits, '_', '.', '-' (max 63)")
        return value


@dataclass(frozen=True)
class ValidServer:
    """A server.json that passed every check."""

    document: dict[str, Any]
    name: str
    namespace: str
    version: str
    route: str
    governance: Governance


@cache
def _validators() -> tuple[Draft7Validator, ...]:
    validators = []
    for file in _SCHEMA_FILES:
        schema = json.loads((_SCHEMAS / file).read_text())
        validators.append(Draft7Validator(schema, format_checker=FormatChecker()))
    return tuple(validators)


def _path(error: SchemaError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _schema_errors(document: Any) -> list[dict[str, str]]:
    """No errors when valid under any accepted schema; otherwise the newest schema's errors."""
    reports = []
    for validator in _validators():
        errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        if not errors:
            return []
        reports.append([{"path": _path(e), "message": e.message} for e in errors[:_MAX_ERRORS]])
    return reports[0]


def route_for(name: str) -> str:
    """The default gateway route of a server name: its part after the slash, lowercased."""
    return name.rpartition("/")[2].lower()


def validate_server_json(document: Any) -> ValidServer:
    """Check a parsed server.json completely.

    Raises:
        InvalidRequest: not an object, or the name is not `reverse.dns.namespace/name` (400).
        SchemaViolation: the official schema or the governance extension is violated (422, every error's path).
    """
    if not isinstance(document, dict):
        raise InvalidRequest("server.json must be a JSON object")
    name = document.get("name")
    if isinstance(name, str):
        namespace, slash, short = name.partition("/")
        if not slash or "/" in short or not short or not _NAMESPACE.match(namespace):
            raise InvalidRequest(
                f"invalid namespace in name {name[:200]!r}: expected reverse-DNS form such as 'com.example/server'",
                path="$.name",
            )
    errors = _schema_errors(document)
    version = document.get("version")
    if isinstance(version, str) and (version == "latest" or _VERSION_RANGE.search(version)):
        errors.append({"path": "$.version", "message": "must be one exact version, not 'latest' or a range"})
    meta = document.get("_meta")
    raw = meta.get(GOVERNANCE_KEY) if isinstance(meta, dict) else None
    governance: Governance | None = None
    base = f"$._meta['{GOVERNANCE_KEY}']"
    if raw is None:
        errors.append({"path": base, "message": "the governance extension is required"})
    else:
        try:
            governance = Governance.model_validate(raw)
        except ValidationError as exc:
            for problem in exc.errors()[:_MAX_ERRORS]:
                path = base + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"])
                errors.append({"path": path, "message": problem["msg"]})
    if errors or governance is None:
        raise SchemaViolation(f"server.json is invalid ({len(errors)} error(s))", errors)
    assert isinstance(name, str)
    route = governance.route or route_for(name)
    if not _ROUTE.match(route):
        raise SchemaViolation(
            "server.json is invalid (1 error(s))",
            [{"path": f"{base}.route", "message": f"derived route {route!r} is not a valid gateway path segment"}],
        )
    if route in RESERVED_NAMES:
        raise SchemaViolation(
            "server.json is invalid (1 error(s))",
            [{"path": f"{base}.route", "message": f"route {route!r} is reserved for the platform: choose another"}],
        )
    return ValidServer(
        document=document,
        name=name,
        namespace=name.partition("/")[0],
        version=str(document["version"]),
        route=route,
        governance=governance,
    )
