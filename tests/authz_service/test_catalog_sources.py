"""The file catalog: entries listed, or built from server.json files (one source for a server's facts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authz_service.catalog import FileCatalogSource
from portcullis_contracts.catalog import CatalogError

GOVERNANCE = "dev.portcullis/governance"


def _server_json(name: str, *, lifecycle: str | None = None, **governance: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        GOVERNANCE: {
            "owner_team": "ads-eng",
            "upstream": "127.0.0.1:8400",
            "allowed_clients": ["vscode"],
            "tools": [{"name": "report", "sensitivity": "confidential", "business_groups": ["ads"]}],
            **governance,
        }
    }
    if lifecycle:
        meta["dev.portcullis/seed"] = {"lifecycle": lifecycle}
    return {"name": f"com.portcullis.ads/{name}", "title": name.title(), "version": "1.0.0", "_meta": meta}


def _write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def test_servers_are_built_from_the_server_json_files_the_catalog_names(tmp_path: Path) -> None:
    _write(tmp_path / "servers" / "insights" / "server.json", _server_json("insights"))
    _write(tmp_path / "seed" / "ledger.json", _server_json("ledger", lifecycle="pending_review", route="ledger-v2"))
    catalog_file = tmp_path / "config" / "catalog.yaml"
    catalog_file.parent.mkdir()
    catalog_file.write_text("server_json:\n  - ../servers/*/server.json\n  - ../seed/*.json\n")
    catalog = FileCatalogSource(catalog_file).load()
    assert sorted(catalog.servers) == ["insights", "ledger-v2"]
    insights = catalog.servers["insights"]
    assert insights.status == "approved" and insights.title == "Insights" and insights.allowed_clients == ["vscode"]
    assert insights.tools[0].business_groups == ["ads"]
    assert catalog.servers["ledger-v2"].status == "pending_review"  # the seed marker's lifecycle


def test_a_change_to_a_named_server_json_is_a_new_catalog_revision(tmp_path: Path) -> None:
    server_json = _write(tmp_path / "servers" / "insights" / "server.json", _server_json("insights"))
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text("server_json: [servers/*/server.json]\n")
    source = FileCatalogSource(catalog_file)
    first = source.load()
    assert source.watched_paths() == [catalog_file, server_json.resolve()]  # reloaded when the file changes
    _write(server_json, _server_json("insights", allowed_clients=["cursor"]))
    second = source.load()
    assert second.revision != first.revision
    assert second.servers["insights"].allowed_clients == ["cursor"]


@pytest.mark.parametrize(
    ("content", "files", "message"),
    [
        ("server_json: [servers/*/server.json]\n", {}, "matches no file"),
        ("server_json: servers/*.json\n", {}, "must be a list of glob patterns"),
        ("server_json: [s.json]\n", {"s.json": "{not json"}, "s.json"),
        ("server_json: [s.json]\n", {"s.json": json.dumps({"name": "com.x/s"})}, "no governance extension"),
        (
            "server_json: [s.json]\n",
            {"s.json": json.dumps(_server_json("s", sensitivity="top-secret"))},
            "invalid governance: sensitivity",
        ),
        ("- just a list\n", {}, "must be a mapping"),
    ],
    ids=["no-match", "not-a-list", "not-json", "no-governance", "bad-governance", "not-a-mapping"],
)
def test_a_catalog_that_cannot_be_built_is_a_clear_error(
    tmp_path: Path, content: str, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(content)
    with pytest.raises(CatalogError, match=message):
        FileCatalogSource(catalog_file).load()


def test_listed_entries_still_work_for_offline_catalogs(tmp_path: Path) -> None:
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(
        "servers:\n  - {name: demo, status: approved, owner_team: platform, upstream: '127.0.0.1:8300'}\n"
    )
    assert list(FileCatalogSource(catalog_file).load().servers) == ["demo"]
