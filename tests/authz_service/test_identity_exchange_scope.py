"""Token exchange reaches only the downstream resources a server declares in its reviewed server.json
(`downstream_resources`, carried in the catalog the decision point follows): no confused deputy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.catalog import FileCatalogSource
from tests.authz_service.identity_support import (
    GATEWAY,
    REGISTRY,
    ROOT,
    AuthServer,
    build_server,
    code_flow,
    exchange_code,
)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
DEMO_SECRET = "demo-server-dev-secret"
SQL = f"{GATEWAY}/servers/sql/mcp"


def _catalog(tmp_path: Path, downstream: list[str] | None) -> Path:
    """config/catalog.yaml with the demo server declaring `downstream` (None: the field left out)."""
    document = FileCatalogSource(ROOT / "config" / "catalog.yaml").document()
    demo = next(entry for entry in document["servers"] if entry["name"] == "demo")
    demo.pop("downstream_resources", None)
    if downstream is not None:
        demo["downstream_resources"] = downstream
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _server(tmp_path: Path, downstream: list[str] | None) -> AuthServer:
    return build_server(tmp_path, catalog_file=_catalog(tmp_path, downstream))


def _exchange(server: AuthServer, resource: str) -> Any:
    code, verifier = code_flow(server)
    token = exchange_code(server, code, verifier).json()["access_token"]
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "resource": resource,
    }
    return server.client.post("/token", data=data, auth=("server.demo", DEMO_SECRET))


def test_a_server_exchanges_for_a_resource_it_declares(tmp_path: Path) -> None:
    server = _server(tmp_path, [REGISTRY])
    response = _exchange(server, REGISTRY)
    assert response.status_code == 200, response.text
    assert server.claims(response.json()["access_token"], audience=REGISTRY)["act"] == {"sub": "server.demo"}


@pytest.mark.parametrize(
    ("declared", "requested"),
    [
        (None, REGISTRY),  # the review's finding: any server could reach the registry as its caller
        ([], REGISTRY),
        ([SQL], REGISTRY),
        ([REGISTRY], SQL),  # a known resource (another catalog server), but not declared
        (["http://127.0.0.1:8282@attacker.example"], REGISTRY),  # a declaration the strict parser refuses
    ],
)
def test_a_server_cannot_exchange_for_a_resource_it_does_not_declare(
    tmp_path: Path, declared: list[str] | None, requested: str
) -> None:
    response = _exchange(_server(tmp_path, declared), requested)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.text
    assert "access_token" not in response.json()
