"""The generated Envoy config: what the issue requires of it, and that the real Envoy accepts it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from authz_service.catalog import FileCatalogSource
from gateway import GatewayError, GatewaySpec, build_config, render_yaml, spec_from_catalog, validate_config

CATALOG = Path(__file__).resolve().parents[2] / "config" / "catalog.yaml"


def _spec(**changes: Any) -> GatewaySpec:
    spec = spec_from_catalog(
        FileCatalogSource(CATALOG).load(),
        issuer="http://127.0.0.1:8181",
        jwks_uri="http://127.0.0.1:8181/.well-known/jwks.json",
        authz_endpoints=[("127.0.0.1", 9191), ("127.0.0.1", 9192)],
    )
    return dataclasses.replace(spec, **changes)


def _filters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return {f["name"]: f["typed_config"] for f in manager["http_filters"]}


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes: list[dict[str, Any]] = manager["route_config"]["virtual_hosts"][0]["routes"]
    return routes


@pytest.mark.parametrize("ext_authz", [True, False])
def test_generated_config_passes_envoy_validate(tmp_path: Path, ext_authz: bool) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(build_config(_spec(ext_authz=ext_authz))))
    validate_config(path)


def test_envoy_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    config = build_config(_spec())
    config["static_resources"]["clusters"][0]["lb_policy"] = "NO_SUCH_POLICY"
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(config))
    with pytest.raises(GatewayError, match="Envoy rejected"):
        validate_config(path)


def test_filters_run_jwt_authn_then_ext_authz_then_router() -> None:
    assert list(_filters(build_config(_spec()))) == [
        "envoy.filters.http.jwt_authn", "envoy.filters.http.ext_authz", "envoy.filters.http.router",
    ]  # fmt: skip


def test_ext_authz_fails_closed_with_a_distinct_503_and_bounded_body() -> None:
    ext_authz = _filters(build_config(_spec()))["envoy.filters.http.ext_authz"]
    assert ext_authz["failure_mode_allow"] is False
    assert ext_authz["status_on_error"] == {"code": 503}
    assert ext_authz["with_request_body"] == {"max_request_bytes": 65536, "allow_partial_message": False,
                                              "pack_as_bytes": True}  # fmt: skip
    assert ext_authz["metadata_context_namespaces"] == ["envoy.filters.http.jwt_authn"]
    assert ext_authz["grpc_service"]["timeout"] == "0.5s"


def test_each_server_has_its_own_audience_and_jwks() -> None:
    jwt = _filters(build_config(_spec()))["envoy.filters.http.jwt_authn"]
    demo = jwt["providers"]["server-demo"]
    assert demo["audiences"] == ["http://127.0.0.1:8080/servers/demo/mcp"]
    assert demo["issuer"] == "http://127.0.0.1:8181"
    assert demo["payload_in_metadata"] == "jwt_payload"
    assert demo["remote_jwks"]["http_uri"]["uri"] == "http://127.0.0.1:8181/.well-known/jwks.json"


def test_server_routes_stream_and_name_their_server_for_ext_authz() -> None:
    routes = {r["name"]: r for r in _routes(build_config(_spec()))}
    demo = routes["demo"]
    assert demo["match"] == {"prefix": "/servers/demo/"}
    assert demo["route"]["timeout"] == "0s"
    context = demo["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["check_settings"]["context_extensions"]
    assert context == {"server": "demo", "audience": "http://127.0.0.1:8080/servers/demo/mcp"}
    assert list(routes)[-1] == "not-found"


def test_authz_cluster_speaks_http2_to_every_worker() -> None:
    clusters = {c["name"]: c for c in build_config(_spec())["static_resources"]["clusters"]}
    authz = clusters["authz"]
    options = authz["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}
    ports = [e["endpoint"]["address"]["socket_address"]["port_value"]
             for e in authz["load_assignment"]["endpoints"][0]["lb_endpoints"]]  # fmt: skip
    assert ports == [9191, 9192]


def test_admin_and_listener_bind_loopback() -> None:
    config = build_config(_spec())
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert config["static_resources"]["listeners"][0]["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": 8080,
    }  # fmt: skip


def test_jwks_uri_must_be_http() -> None:
    with pytest.raises(ValueError, match="jwks_uri"):
        build_config(_spec(jwks_uri="file:///etc/passwd"))
