"""The file-based dynamic Envoy config: what each file holds, the order files are replaced in, and that Envoy
accepts them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import (
    GatewayError,
    GatewaySpec,
    RouteSpec,
    routes_from_catalog,
    validate_config,
    validate_dynamic_config,
    write_dynamic_bootstrap,
    write_dynamic_resources,
)
from gateway.dynamic import CDS_FILE, JWT_AUTHN_FILE, LDS_FILE, RDS_FILE, plan_writes, render_lds
from portcullis_contracts.catalog import Catalog

BASE = GatewaySpec(
    issuer="http://127.0.0.1:8181",
    jwks_uri="http://127.0.0.1:8181/.well-known/jwks.json",
    authz_endpoints=(("127.0.0.1", 9191), ("127.0.0.1", 9192)),
    routes=(),
)
ALPHA = RouteSpec("alpha", "127.0.0.1", 8301, "http://127.0.0.1:8080/servers/alpha/mcp")
BETA = RouteSpec("beta", "beta.internal", 8302, "http://127.0.0.1:8080/servers/beta/mcp")


def _spec(*routes: RouteSpec, **changes: Any) -> GatewaySpec:
    return dataclasses.replace(BASE, routes=routes, **changes)


def _resources(path: Path) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = yaml.safe_load(path.read_text())["resources"]
    return resources


def _names(resources: list[dict[str, Any]]) -> list[str]:
    return [resource["name"] for resource in resources]


def _route_names(path: Path) -> list[str]:
    return _names(_resources(path)[0]["virtual_hosts"][0]["routes"])


def _server_route_names(server: str) -> list[str]:
    """A server's routes: its protected-resource metadata (two forms), then the server itself."""
    return [f"{server}/resource-metadata", f"{server}/resource-metadata-root", server]


@pytest.mark.parametrize("ext_authz", [True, False])
@pytest.mark.parametrize("routes", [(), (ALPHA, BETA)], ids=["no-server", "two-servers"])
def test_bootstrap_and_dynamic_files_pass_envoy_validate(
    tmp_path: Path, ext_authz: bool, routes: tuple[RouteSpec, ...]
) -> None:
    bootstrap = write_dynamic_bootstrap(_spec(*routes, ext_authz=ext_authz), tmp_path, routes=True)
    validate_config(bootstrap)
    validate_dynamic_config(tmp_path)


def test_envoy_validate_on_the_bootstrap_alone_does_not_read_the_dynamic_files(tmp_path: Path) -> None:
    bootstrap = write_dynamic_bootstrap(_spec(ALPHA), tmp_path, routes=True)
    rds = tmp_path / RDS_FILE
    rds.write_text(rds.read_text().replace("prefix_rewrite", "prefix_rewrit"))
    validate_config(bootstrap)  # passes: Envoy only reads path-sourced xDS files when it runs
    with pytest.raises(GatewayError, match="Envoy rejected"):
        validate_dynamic_config(tmp_path)


def test_bootstrap_takes_listener_and_clusters_from_files_in_a_watched_directory(tmp_path: Path) -> None:
    bootstrap = yaml.safe_load(write_dynamic_bootstrap(_spec(), tmp_path).read_text())
    directory = str(tmp_path.resolve())
    for key, name in (("lds_config", LDS_FILE), ("cds_config", CDS_FILE)):
        assert bootstrap["dynamic_resources"][key] == {
            "resource_api_version": "V3",
            "path_config_source": {"path": f"{directory}/{name}", "watched_directory": {"path": directory}},
        }
    assert _names(bootstrap["static_resources"]["clusters"]) == ["authz", "jwks"]
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert "listeners" not in bootstrap["static_resources"]


def test_gateway_without_a_catalog_routes_nothing_but_the_json_404(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(ALPHA), tmp_path)
    assert _route_names(tmp_path / RDS_FILE) == ["resource-metadata", "not-found"]
    assert _resources(tmp_path / CDS_FILE) == []
    assert _resources(tmp_path / JWT_AUTHN_FILE)[0]["typed_config"]["providers"] == {}


def test_listener_does_not_change_when_servers_come_and_go(tmp_path: Path) -> None:
    # A changed listener is drained for --drain-time-s, its kept-alive connections still on the old routes.
    assert render_lds(_spec(), tmp_path, version="1") == render_lds(_spec(ALPHA, BETA), tmp_path, version="1")


def test_each_server_gets_a_route_a_cluster_and_a_jwt_provider_for_its_audience(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(), tmp_path)
    write_dynamic_resources(_spec(ALPHA, BETA), tmp_path, version="r1")
    assert _route_names(tmp_path / RDS_FILE) == [
        *_server_route_names("alpha"), *_server_route_names("beta"), "resource-metadata", "not-found",
    ]  # fmt: skip
    assert _names(_resources(tmp_path / CDS_FILE)) == ["server-alpha", "server-beta"]
    jwt_authn = _resources(tmp_path / JWT_AUTHN_FILE)[0]["typed_config"]
    assert jwt_authn["providers"]["server-beta"]["audiences"] == [BETA.audience]
    assert jwt_authn["providers"]["server-beta"]["failed_status_in_metadata"] == "jwt_failure"
    assert jwt_authn["requirement_map"] == {
        name: {"requires_any": {"requirements": [{"provider_name": f"server-{name}"}, {"allow_missing_or_failed": {}}]}}
        for name in ("alpha", "beta")
    }
    assert yaml.safe_load((tmp_path / RDS_FILE).read_text())["version_info"] == "r1"


def test_files_are_replaced_by_a_rename_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(), tmp_path)
    inodes = {name: (tmp_path / name).stat().st_ino for name in (CDS_FILE, RDS_FILE, JWT_AUTHN_FILE)}
    assert write_dynamic_resources(_spec(ALPHA), tmp_path, version="r1") is True
    assert all((tmp_path / name).stat().st_ino != inode for name, inode in inodes.items())
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["envoy.yaml", LDS_FILE, CDS_FILE, RDS_FILE, JWT_AUTHN_FILE]
    )


def test_unchanged_resources_are_not_rewritten(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(ALPHA), tmp_path, routes=True)
    inodes = {path.name: path.stat().st_ino for path in tmp_path.iterdir()}
    assert write_dynamic_resources(_spec(ALPHA), tmp_path, version="another-revision") is False
    assert {path.name: path.stat().st_ino for path in tmp_path.iterdir()} == inodes


def test_added_server_gets_its_cluster_before_its_route(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(ALPHA), tmp_path, routes=True)
    plan = plan_writes(_spec(ALPHA, BETA), tmp_path, version="r2")
    assert [name for name, _ in plan] == [CDS_FILE, JWT_AUTHN_FILE, RDS_FILE]
    assert _names(plan[0][1]["resources"]) == ["server-alpha", "server-beta"]


def test_removed_server_keeps_its_cluster_until_its_route_is_gone(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(ALPHA, BETA), tmp_path, routes=True)
    plan = plan_writes(_spec(BETA), tmp_path, version="r2")
    assert [name for name, _ in plan] == [CDS_FILE, JWT_AUTHN_FILE, RDS_FILE, CDS_FILE]
    assert _names(plan[0][1]["resources"]) == ["server-beta", "server-alpha"]
    routes = _names(plan[2][1]["resources"][0]["virtual_hosts"][0]["routes"])
    assert routes == [*_server_route_names("beta"), "resource-metadata", "not-found"]
    assert _names(plan[3][1]["resources"]) == ["server-beta"]


def test_server_moved_to_another_upstream_changes_only_its_cluster(tmp_path: Path) -> None:
    write_dynamic_bootstrap(_spec(ALPHA), tmp_path, routes=True)
    moved = dataclasses.replace(ALPHA, upstream_port=9301)
    plan = plan_writes(_spec(moved), tmp_path, version="r2")
    assert [name for name, _ in plan] == [CDS_FILE]


@pytest.mark.parametrize("upstream", ["bad host:80", "[::1]:80", "-leading-dash:80"])
def test_upstream_host_envoy_cannot_resolve_is_refused(upstream: str) -> None:
    catalog = Catalog.from_document({"servers": [{"name": "alpha", "status": "approved", "owner_team": "t",
                                                  "upstream": upstream}]})  # fmt: skip
    with pytest.raises(ValueError, match="alpha"):
        routes_from_catalog(catalog, "http://127.0.0.1:8080")
