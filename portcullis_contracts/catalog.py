"""The catalog of MCP servers: the facts the policies decide on, as the registry publishes them.

This is the contract every follower of the registry reads (the decision point, the gateway) and the registry
validates against (`server.json` governance): the entries (`ServerEntry`, `ToolEntry`, `DatasetLabel`), the rules
shared with the registry's validator (`check_*`, `RESERVED_NAMES`), and `Catalog`, an immutable set of entries at
one revision with the policy facts precomputed. A change produces a new `Catalog` with a new revision. Where a
catalog comes from (a file, the registry's snapshot) is the follower's business.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "RESERVED_NAMES",
    "Catalog",
    "CatalogError",
    "DatasetLabel",
    "Sensitivity",
    "ServerEntry",
    "ServerStatus",
    "ToolEntry",
    "check_not_reserved",
    "check_unique_tools",
    "check_upstream",
    "label_for",
]


class CatalogError(Exception):
    """The catalog of servers could not be read or failed validation."""


Sensitivity = Literal["public", "internal", "confidential", "restricted"]
ServerStatus = Literal["draft", "pending_review", "approved", "deprecated", "retired", "rejected"]
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# Names a server may not take: they name the platform's own AuthZEN callers (authzen.may_ask), whose service
# credentials share the name space of the servers'.
RESERVED_NAMES = frozenset({"registry"})


def check_not_reserved(name: str) -> str:
    """A server's name (its gateway route) is not one the platform reserves.

    Raises:
        ValueError: the name is reserved (pydantic reports it as a validation error).
    """
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is reserved for the platform")
    return name


def check_upstream(value: str) -> str:
    """An upstream is `host:port` (the registry's governance extension uses the same rule).

    Raises:
        ValueError: not `host:port` with a port in 1..65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("upstream must be host:port")
    return value


def check_unique_tools(tools: list[ToolEntry]) -> list[ToolEntry]:
    """Tool names are unique within a server.

    Raises:
        ValueError: a tool name appears twice.
    """
    names = [tool.name for tool in tools]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate tool names: {', '.join(duplicates)}")
    return tools


class ToolEntry(BaseModel):
    """One tool of a server, as the policies see it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    description: str = ""
    sensitivity: Sensitivity = "internal"
    read_only: bool = True
    business_groups: list[str] = Field(default_factory=list)


class DatasetLabel(BaseModel):
    """The labels of the data a server serves, reviewed with the server (its server.json governance).

    `match` is a glob over the dataset's name (`lake.ads.*`); the first label that matches wins, and data no label
    matches is decided as restricted with no business group. The decision point reads these labels from the
    catalog, never from the server that asks, so a server cannot relabel its own data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.*/:-]+$")
    business_group: str = Field(default="", max_length=100)
    sensitivity: Sensitivity = "restricted"


def label_for(labels: Iterable[DatasetLabel], dataset: str) -> DatasetLabel | None:
    """The first label whose pattern matches a dataset's name (case-insensitively, as SQL identifiers compare),
    or None: the one rule the decision point and a server showing its data's labels both use.
    """
    name = dataset.lower()
    return next((label for label in labels if fnmatch.fnmatchcase(name, label.match.lower())), None)


class ServerEntry(BaseModel):
    """One MCP server with its governance metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN)
    title: str = ""
    status: ServerStatus
    owner_team: str
    sensitivity: Sensitivity = "internal"
    business_group: str = ""
    allowed_clients: list[str] = Field(default_factory=list)
    upstream: str = Field(description="host:port of the server behind the gateway")
    tools: list[ToolEntry] = Field(default_factory=list)
    datasets: list[DatasetLabel] = Field(default_factory=list, max_length=1000)
    downstream_resources: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="resources (canonical URIs) this server may exchange its callers' tokens for (RFC 8693)",
    )

    _host_port = field_validator("upstream")(classmethod(lambda cls, value: check_upstream(value)))
    _unique_tools = field_validator("tools")(classmethod(lambda cls, tools: check_unique_tools(tools)))
    _not_reserved = field_validator("name")(classmethod(lambda cls, name: check_not_reserved(name)))


class _CatalogDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: list[ServerEntry]


class Catalog:
    """An immutable catalog with a content revision and precomputed policy facts.

    The fact dictionaries are built once here so the decision hot path never rebuilds them.
    """

    def __init__(self, servers: list[ServerEntry], revision: str):
        """Index `servers` at `revision`.

        Raises:
            CatalogError: two servers share a name.
        """
        names = [server.name for server in servers]
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        if duplicates:
            raise CatalogError(f"duplicate server names: {', '.join(duplicates)}")
        self.revision = revision
        self.servers: Mapping[str, ServerEntry] = {server.name: server for server in servers}
        self._server_facts: dict[str, dict[str, Any]] = {}
        self._tool_facts: dict[tuple[str, str], dict[str, Any]] = {}
        self._dataset_labels: dict[str, tuple[DatasetLabel, ...]] = {}
        for server in servers:
            if server.datasets:
                self._dataset_labels[server.name] = tuple(server.datasets)
            server_fact = {
                "kind": "server",
                "name": server.name,
                "status": server.status,
                "owner_team": server.owner_team,
                "sensitivity": server.sensitivity,
                "business_group": server.business_group,
                "allowed_clients": list(server.allowed_clients),
                "tools": [tool.name for tool in server.tools],
            }
            self._server_facts[server.name] = server_fact
            for tool in server.tools:
                self._tool_facts[(server.name, tool.name)] = {
                    "kind": "tool",
                    "name": tool.name,
                    "server": server_fact,
                    "sensitivity": tool.sensitivity,
                    "read_only": tool.read_only,
                    "business_groups": list(tool.business_groups),
                }

    @classmethod
    def from_document(cls, document: Any, *, revision: str | None = None) -> Catalog:
        """Build a catalog from a parsed document (`{"servers": [...]}`).

        Raises:
            CatalogError: the document does not describe a valid catalog.
        """
        try:
            parsed = _CatalogDocument.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
            )
            raise CatalogError(f"invalid catalog: {problems}") from None
        if revision is None:
            canonical = yaml.safe_dump(parsed.model_dump(mode="json"), sort_keys=True).encode()
            revision = hashlib.sha256(canonical).hexdigest()[:16]
        return cls(parsed.servers, revision)

    def server_fact(self, name: str) -> dict[str, Any] | None:
        """The policy facts of a server, or None when the catalog does not know it."""
        return self._server_facts.get(name)

    def tool_fact(self, server: str, tool: str) -> dict[str, Any] | None:
        """The policy facts of one tool of a server, or None when unknown."""
        return self._tool_facts.get((server, tool))

    def dataset_labels(self, server: str, dataset: str) -> tuple[str, str]:
        """(business group, sensitivity) of a dataset a server serves, from the server's reviewed labels.

        The first label whose pattern matches the dataset's name wins (names compare case-insensitively, as
        SQL identifiers do); data no label matches is restricted with no business group, the most guarded.
        """
        label = label_for(self._dataset_labels.get(server, ()), dataset)
        return (label.business_group, label.sensitivity) if label is not None else ("", "restricted")
