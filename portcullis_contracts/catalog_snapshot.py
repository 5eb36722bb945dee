"""The catalog snapshot: what the registry publishes and every follower (decision point, gateway) polls.

    GET {registry}/v0.1/x/portcullis/catalog      Authorization: Bearer <service credential>
      -> 200 {"revision": "<r>", "servers": [<ServerEntry as JSON>, ...]}, ETag "<r>"
      If-None-Match "<r>" -> 304

The servers are `portcullis_contracts.catalog.ServerEntry` documents, sorted by name; the revision is the
registry's and every decision records it. A follower validates the whole snapshot or keeps the catalog it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portcullis_contracts.catalog import Catalog, CatalogError

__all__ = ["SNAPSHOT_PATH", "catalog_from_snapshot", "snapshot_document", "snapshot_revision", "snapshot_url"]

SNAPSHOT_PATH = "/v0.1/x/portcullis/catalog"


def snapshot_url(registry_url: str) -> str:
    """Where the registry at `registry_url` serves its catalog snapshot."""
    return registry_url.rstrip("/") + SNAPSHOT_PATH


def snapshot_document(revision: str, servers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The snapshot's JSON document for `servers` (catalog entries) at `revision`."""
    return {"revision": revision, "servers": list(servers)}


def snapshot_revision(document: Any) -> str:
    """The revision a parsed snapshot document names, read before the (costlier) validation of its servers.

    Raises:
        CatalogError: the document is not an object with a non-empty string revision.
    """
    if not isinstance(document, dict) or not isinstance(document.get("revision"), str) or not document["revision"]:
        raise CatalogError("the catalog snapshot has no revision")
    revision: str = document["revision"]
    return revision


def catalog_from_snapshot(document: Any) -> Catalog:
    """The catalog a parsed snapshot document describes, at the registry's revision.

    Raises:
        CatalogError: no revision, no servers, or servers that are not a valid catalog.
    """
    revision = snapshot_revision(document)
    if "servers" not in document:
        raise CatalogError("the catalog snapshot has no servers")
    return Catalog.from_document({"servers": document["servers"]}, revision=revision)
