"""Where the decision point reads the catalog from: the registry's snapshot, or a YAML file (whose servers may be
built from server.json files).

The catalog itself (its entries, `Catalog`, `CatalogError`) is the contract in `portcullis_contracts.catalog`;
the sources stay here because only the decision point follows them this way (the gateway follows the snapshot
with its own poller). A source returns a new `Catalog` when the catalog changes, the same one otherwise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml
from pydantic import ValidationError

from portcullis_contracts.catalog import Catalog, CatalogError
from portcullis_contracts.catalog_snapshot import catalog_from_snapshot, snapshot_url
from portcullis_contracts.governance import GOVERNANCE_KEY, Governance, catalog_entry
from portcullis_contracts.json_input import InvalidJson, parse_json
from portcullis_contracts.problems import validation_problems

__all__ = ["EMPTY_REVISION", "CatalogSource", "FileCatalogSource", "RegistryCatalogSource"]


class CatalogSource(Protocol):
    """Where the catalog comes from: the registry's snapshot, or a file (policy tests, offline use)."""

    def load(self) -> Catalog:
        """Read the current catalog.

        Raises:
            CatalogError: the catalog cannot be read or is invalid.
        """
        ...

    def watched_paths(self) -> list[Path]:
        """Files whose change means the catalog should be loaded again."""
        ...

    @property
    def poll_seconds(self) -> float | None:
        """How often to poll for a new catalog, or None when changes are watched as files."""
        ...


class FileCatalogSource:
    """A catalog read from a YAML file; its revision is the hash of everything it was built from.

    The file lists servers as catalog entries (`servers:`, for offline use), or names the server.json files to
    build them from (`server_json:`, globs relative to the file): the policy test table reads the same
    governance the registry is seeded with, so a server's facts live in one place. A change to any of those
    files is a change of the catalog.
    """

    def __init__(self, path: Path):
        self.path = path
        self._included: list[Path] = []

    def load(self) -> Catalog:
        raw = self._read(self.path)
        try:
            document = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise CatalogError(f"catalog {self.path} is not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            raise CatalogError(f"catalog {self.path} must be a mapping with `servers` or `server_json`")
        digest = hashlib.sha256(raw)
        servers = list(document.get("servers") or [])
        included = self._included_files(document.get("server_json") or [])
        for path in included:
            content = self._read(path)
            digest.update(content)
            servers.append(_entry_of(path, content))
        self._included = included
        return Catalog.from_document({"servers": servers}, revision=digest.hexdigest()[:16])

    def document(self) -> dict[str, list[dict[str, Any]]]:
        """The catalog's entries as one document (`{"servers": [...]}`), with every server.json resolved.

        Raises:
            CatalogError: the catalog cannot be read or is invalid.
        """
        catalog = self.load()
        return {"servers": [server.model_dump(mode="json") for server in catalog.servers.values()]}

    def watched_paths(self) -> list[Path]:
        return [self.path, *self._included]

    @property
    def poll_seconds(self) -> float | None:
        return None

    def _included_files(self, patterns: object) -> list[Path]:
        if not isinstance(patterns, list) or not all(isinstance(pattern, str) for pattern in patterns):
            raise CatalogError(f"catalog {self.path}: `server_json` must be a list of glob patterns")
        files: list[Path] = []
        for pattern in patterns:
            matched = sorted(path.resolve() for path in self.path.parent.glob(pattern))
            if not matched:
                raise CatalogError(f"catalog {self.path}: `server_json` pattern {pattern!r} matches no file")
            files.extend(path for path in matched if path not in files)
        return files

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None


def _entry_of(path: Path, content: bytes) -> dict[str, Any]:
    """The catalog entry of one server.json: its governance, validated by the contract's model."""
    try:
        document = parse_json(content, max_depth=64)
    except InvalidJson as exc:
        raise CatalogError(f"{path}: {exc}") from None
    meta = document.get("_meta") if isinstance(document, dict) else None
    raw = meta.get(GOVERNANCE_KEY) if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: no governance extension (_meta[{GOVERNANCE_KEY!r}])")
    try:
        governance = Governance.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc.errors(), limit=10)
        raise CatalogError(f"{path}: invalid governance: {problems}") from None
    assert isinstance(document, dict)  # checked with the governance above
    return catalog_entry(document, governance)


EMPTY_REVISION = "none"


class RegistryCatalogSource:
    """The registry's catalog snapshot, polled with `If-None-Match` so an unchanged catalog costs a 304.

    The revision of each catalog is the registry's; every decision records it.
    """

    def __init__(self, url: str, *, credential: str, poll_seconds: float = 1.0, timeout: float = 2.0):
        self.url = snapshot_url(url)
        self._headers = {"Authorization": f"Bearer {credential}"}
        self._poll = poll_seconds
        self._http = httpx.Client(timeout=timeout)
        self._last: Catalog | None = None

    def load(self) -> Catalog:
        headers = dict(self._headers)
        if self._last is not None:
            headers["If-None-Match"] = f'"{self._last.revision}"'
        try:
            response = self._http.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            raise CatalogError(f"registry unreachable at {self.url}: {type(exc).__name__}") from None
        if response.status_code == 304 and self._last is not None:
            return self._last
        if response.status_code != 200:
            raise CatalogError(f"registry answered {response.status_code} for the catalog snapshot")
        try:
            document = response.json()
        except json.JSONDecodeError:
            raise CatalogError("the registry's catalog snapshot is not JSON") from None
        catalog = catalog_from_snapshot(document)
        self._last = catalog
        return catalog

    def watched_paths(self) -> list[Path]:
        return []

    @property
    def poll_seconds(self) -> float | None:
        return self._poll
