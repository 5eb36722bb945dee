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
from pydantic import ValidationError

from portcullis_contracts.catalog import RESERVED_NAMES
from portcullis_contracts.governance import GOVERNANCE_KEY, ROUTE_PATTERN, Governance, route_for
from registry.errors import InvalidRequest, SchemaViolation

__all__ = ["ValidServer", "validate_server_json"]

_SCHEMAS = Path(__file__).parent / "schemas"
_SCHEMA_FILES = ("server.schema.draft-145c2ec.json", "server.schema.2025-09-29.json")
# Reverse-DNS namespace: at least two dot-separated labels (com.acme, com.acme.ads), then one slash and a name.
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_MAX_ERRORS = 50
_VERSION_RANGE = re.compile(r"^[\^~<>=]|\.[x*](\.|$)|\s|\|\|")


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
    if not ROUTE_PATTERN.match(route):
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
