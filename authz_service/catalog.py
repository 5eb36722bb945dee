"""Where the decision point reads the catalog from: the registry's snapshot, or a YAML file.

The catalog itself (its entries, `Catalog`, `CatalogError`) is the contract in `portcullis_contracts.catalog`;
the sources stay here because only the decision point follows them this way (the gateway follows the snapshot
with its own poller). A source returns a new `Catalog` when the catalog changes, the same one otherwise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

import httpx
import yaml

from portcullis_contracts.catalog import Catalog, CatalogError
from portcullis_contracts.catalog_snapshot import catalog_from_snapshot, snapshot_url

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
    """A catalog read from a YAML file; its revision is the hash of the file's content."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> Catalog:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {self.path}: {exc.strerror}") from None
        try:
            document = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise CatalogError(f"catalog {self.path} is not valid YAML: {exc}") from None
        return Catalog.from_document(document, revision=hashlib.sha256(raw).hexdigest()[:16])

    def watched_paths(self) -> list[Path]:
        return [self.path]

    @property
    def poll_seconds(self) -> float | None:
        return None


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
