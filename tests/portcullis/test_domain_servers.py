"""The domain servers as the platform runs them: each package passes `portcullis server validate`, and the
policy test table's catalog (config/catalog.yaml) says what each server.json says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from portcullis.domain import DOMAIN_SERVERS, DomainServer, domain_server
from portcullis.server_checks import validate_project
from server_kit.project import ServerProject

ROOT = Path(__file__).resolve().parents[2]
GOVERNANCE = "dev.portcullis/governance"


@pytest.mark.parametrize("server", DOMAIN_SERVERS, ids=lambda server: server.name)
def test_each_domain_server_passes_the_pipelines_validation(server: DomainServer) -> None:
    findings = validate_project(ServerProject.at(ROOT / "servers" / server.name), ROOT / "policies")
    assert [finding for finding in findings if finding.level == "error"] == []


@pytest.mark.parametrize("server", DOMAIN_SERVERS, ids=lambda server: server.name)
def test_the_policy_catalog_agrees_with_each_server_json(server: DomainServer) -> None:
    governance = json.loads(server.server_json.read_text())["_meta"][GOVERNANCE]
    catalog = {
        entry["name"]: entry for entry in yaml.safe_load((ROOT / "config" / "catalog.yaml").read_text())["servers"]
    }
    entry = catalog[server.name]
    for field in ("owner_team", "sensitivity", "business_group", "allowed_clients", "upstream"):
        assert entry[field] == governance[field], field
    assert governance["upstream"] == f"127.0.0.1:{server.port}"

    def labels(tools: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
        return {tool["name"]: (tool.get("sensitivity"), tool.get("business_groups")) for tool in tools}

    assert labels(entry["tools"]) == labels(governance["tools"])
    assert entry.get("datasets", []) == governance.get("datasets", [])  # the labels the decision reads


def test_an_unknown_domain_server_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="no domain server 'presto'; known: sql, spark, airflow, tickets"):
        domain_server("presto")
