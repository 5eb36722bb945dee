"""The domain servers as the platform runs them: each package passes `portcullis server validate`, and the
policy test table's catalog (config/catalog.yaml) is built from each server.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from authz_service.catalog import FileCatalogSource
from portcullis.domain import DOMAIN_SERVERS, DomainServer, domain_server
from portcullis.server_checks import validate_project
from server_kit.project import ServerProject

ROOT = Path(__file__).resolve().parents[2]
GOVERNANCE = "dev.portcullis/governance"


@pytest.mark.parametrize("server", DOMAIN_SERVERS, ids=lambda server: server.name)
def test_each_domain_server_passes_the_pipelines_validation(server: DomainServer) -> None:
    findings = validate_project(ServerProject.at(ROOT / "servers" / server.name), ROOT / "policies")
    assert [finding for finding in findings if finding.level == "error"] == []


def test_the_policy_catalog_holds_no_server_facts_of_its_own() -> None:
    # One source: the policy table's catalog names the server.json files the registry is seeded with.
    document = yaml.safe_load((ROOT / "config" / "catalog.yaml").read_text())
    assert "servers" not in document
    seeds = sorted((ROOT / "config" / "servers").glob("*.json")) + [server.server_json for server in DOMAIN_SERVERS]
    source = FileCatalogSource(ROOT / "config" / "catalog.yaml")
    catalog = source.load()
    assert sorted(source.watched_paths()[1:]) == sorted(seeds)
    assert sorted(catalog.servers) == sorted(
        json.loads(path.read_text())["_meta"][GOVERNANCE].get("route") or path.parent.name
        if path.name == "server.json"
        else path.stem
        for path in seeds
    )


@pytest.mark.parametrize("server", DOMAIN_SERVERS, ids=lambda server: server.name)
def test_each_domain_server_is_decided_on_what_its_server_json_says(server: DomainServer) -> None:
    governance = json.loads(server.server_json.read_text())["_meta"][GOVERNANCE]
    entry = FileCatalogSource(ROOT / "config" / "catalog.yaml").load().servers[server.name]
    assert governance["upstream"] == f"127.0.0.1:{server.port}"
    assert entry.upstream == governance["upstream"]
    assert [tool.name for tool in entry.tools] == [tool["name"] for tool in governance["tools"]]
    assert [label.model_dump() for label in entry.datasets] == governance.get("datasets", [])


def test_an_unknown_domain_server_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="no domain server 'presto'; known: sql, spark, airflow, tickets"):
        domain_server("presto")
