"""The generated Envoy config: what the issue requires of it, and that the real Envoy accepts it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from authz_service.catalog import FileCatalogSource
from authz_service.ext_authz import JWT_FAILURE_KEY as EXT_AUTHZ_FAILURE_KEY
from gateway import GatewayError, GatewaySpec, build_config, render_yaml, spec_from_catalog, validate_config
from gateway.config import JWT_FAILURE_KEY, SERVER_SCOPE, resource_metadata_url

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


def test_server_routes_stream_and_name_their_server_and_its_metadata_for_ext_authz() -> None:
    routes = {r["name"]: r for r in _routes(build_config(_spec()))}
    demo = routes["demo"]
    assert demo["match"] == {"prefix": "/servers/demo/"}
    assert demo["route"]["timeout"] == "0s"
    context = demo["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["check_settings"]["context_extensions"]
    assert context == {
        "server": "demo",
        "audience": "http://127.0.0.1:8080/servers/demo/mcp",
        "resource_metadata": "http://127.0.0.1:8080/.well-known/oauth-protected-resource/servers/demo/mcp",
        "scope": "mcp",
    }
    assert list(routes)[-1] == "not-found"


def test_each_server_has_its_metadata_routes_just_before_its_own_route() -> None:
    names = [r["name"] for r in _routes(build_config(_spec()))]
    assert names == [
        "demo/resource-metadata", "demo/resource-metadata-root", "demo",
        "finance-reports/resource-metadata", "finance-reports/resource-metadata-root", "finance-reports",
        *(f"{name}/{suffix}" if suffix else name for name in ("airflow", "spark", "sql", "tickets")
          for suffix in ("resource-metadata", "resource-metadata-root", "")),
        "resource-metadata", "not-found",
    ]  # fmt: skip


def test_metadata_routes_answer_get_and_head_in_both_forms_without_token_or_ext_authz() -> None:
    routes = {r["name"]: r for r in _routes(build_config(_spec()))}
    methods = [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}]
    assert routes["demo/resource-metadata"]["match"] == {
        "path": "/.well-known/oauth-protected-resource/servers/demo/mcp", "headers": methods,
    }  # fmt: skip
    assert routes["demo/resource-metadata-root"]["match"] == {
        "path": "/servers/demo/.well-known/oauth-protected-resource", "headers": methods,
    }  # fmt: skip
    for name in ("demo/resource-metadata", "demo/resource-metadata-root"):
        per_filter = routes[name]["typed_per_filter_config"]
        assert per_filter["envoy.filters.http.jwt_authn"]["disabled"] is True
        assert per_filter["envoy.filters.http.ext_authz"]["disabled"] is True
        assert "route" not in routes[name]
        headers = {h["header"]["key"]: h["header"]["value"] for h in routes[name]["response_headers_to_add"]}
        assert headers == {"content-type": "application/json", "access-control-allow-origin": "*",
                           "cache-control": "public, max-age=300"}  # fmt: skip


def test_metadata_names_the_server_its_canonical_uri_the_issuer_and_the_scope() -> None:
    routes = {r["name"]: r for r in _routes(build_config(_spec()))}
    response = routes["finance-reports/resource-metadata"]["direct_response"]
    assert response["status"] == 200
    assert json.loads(response["body"]["inline_string"]) == {
        "resource": "http://127.0.0.1:8080/servers/finance-reports/mcp",
        "authorization_servers": ["http://127.0.0.1:8181"],
        "scopes_supported": [SERVER_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "finance-reports",
    }
    root = routes["finance-reports/resource-metadata-root"]["direct_response"]
    assert root == response


def test_gateway_root_metadata_is_a_json_404_pointing_at_the_per_server_metadata() -> None:
    route = {r["name"]: r for r in _routes(build_config(_spec()))}["resource-metadata"]
    assert route["match"]["path_separated_prefix"] == "/.well-known/oauth-protected-resource"
    assert route["direct_response"]["status"] == 404
    body = json.loads(route["direct_response"]["body"]["inline_string"])
    assert "/.well-known/oauth-protected-resource/servers/<name>/mcp" in body["error_description"]
    assert route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True


def test_with_ext_authz_a_missing_or_failed_token_is_passed_on_with_the_failure_recorded() -> None:
    jwt = _filters(build_config(_spec()))["envoy.filters.http.jwt_authn"]
    assert jwt["requirement_map"]["demo"] == {
        "requires_any": {"requirements": [{"provider_name": "server-demo"}, {"allow_missing_or_failed": {}}]}
    }
    assert jwt["providers"]["server-demo"]["failed_status_in_metadata"] == JWT_FAILURE_KEY == EXT_AUTHZ_FAILURE_KEY


def test_without_ext_authz_a_valid_token_is_required_by_jwt_authn_itself() -> None:
    config = build_config(_spec(ext_authz=False))
    assert _filters(config)["envoy.filters.http.jwt_authn"]["requirement_map"]["demo"] == {
        "provider_name": "server-demo"
    }
    for route in _routes(config):
        assert "envoy.filters.http.ext_authz" not in route["typed_per_filter_config"]


def test_tokens_are_read_from_the_authorization_header_only() -> None:
    demo = _filters(build_config(_spec()))["envoy.filters.http.jwt_authn"]["providers"]["server-demo"]
    assert demo["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]
    assert "from_params" not in demo


@pytest.mark.parametrize(
    ("resource", "metadata"),
    [
        ("http://127.0.0.1:8080/servers/demo/mcp",
         "http://127.0.0.1:8080/.well-known/oauth-protected-resource/servers/demo/mcp"),
        ("https://mcp.example.com/", "https://mcp.example.com/.well-known/oauth-protected-resource"),
    ],
)  # fmt: skip
def test_metadata_url_inserts_the_well_known_path_between_host_and_path(resource: str, metadata: str) -> None:
    assert resource_metadata_url(resource) == metadata


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
