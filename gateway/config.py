"""The Envoy configuration generator: one listener, jwt_authn -> ext_authz -> router, a route per server.

Input is a `GatewaySpec` (from a catalog file, or from the registry's snapshot through `gateway.sync`);
output is Envoy v3 resources as plain dicts. `build_config` puts them all in one static bootstrap;
`gateway.dynamic` puts the listener and the server clusters in files Envoy watches instead.

The gateway is the OAuth resource server of every MCP server behind it (MCP authorization spec):
each server's RFC 9728 protected-resource metadata is a direct response of the route table, served
without a token, and a request without a valid token for the server gets a 401 whose `WWW-Authenticate`
points at that metadata. ext_authz writes that 401 (see `jwt_authn_config` for why jwt_authn lets such a
request through to it), from the metadata URL and scope the route hands it in `context_extensions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import yaml

from portcullis_contracts.catalog import Catalog
from portcullis_contracts.resource_metadata import (
    RESOURCE_METADATA_PATH,
    SERVER_SCOPE,
    canonical_uri,
    protected_resource_metadata,
    resource_metadata_url,
)

__all__ = [
    "AUTHZ_CLUSTER",
    "JWT_FAILURE_KEY",
    "RESOURCE_METADATA_PATH",
    "SERVER_SCOPE",
    "GatewaySpec",
    "RouteSpec",
    "admin",
    "build_config",
    "canonical_uri",
    "jwt_authn_config",
    "listener",
    "render_yaml",
    "resource_metadata",
    "resource_metadata_url",
    "route_config",
    "routes_from_catalog",
    "server_cluster_name",
    "server_clusters",
    "spec_from_catalog",
    "static_clusters",
]

LISTENER_NAME = "gateway"
ROUTE_CONFIG_NAME = "mcp"
AUTHZ_CLUSTER = "authz"
JWKS_CLUSTER = "jwks"
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
_HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
_JWT_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
_EXT_AUTHZ_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
# Where jwt_authn records why a presented token failed (`failed_status_in_metadata`); ext_authz reads it
# (authz_service.ext_authz.JWT_FAILURE_KEY, the same string) to answer `error="invalid_token"`.
JWT_FAILURE_KEY = "jwt_failure"
# A DNS name Envoy can resolve (STRICT_DNS); anything else in a catalog is refused before it reaches Envoy.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_HTTP2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}


@dataclass(frozen=True)
class RouteSpec:
    """One MCP server behind the gateway."""

    name: str
    upstream_host: str
    upstream_port: int
    audience: str


@dataclass(frozen=True)
class GatewaySpec:
    """Everything the generated config depends on."""

    issuer: str
    jwks_uri: str
    authz_endpoints: tuple[tuple[str, int], ...]
    routes: tuple[RouteSpec, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    authz_timeout_ms: int = 500
    max_request_bytes: int = 64 * 1024
    jwks_cache_seconds: int = 300
    # Off only for the benchmark's baseline (jwt_authn alone); every real gateway runs ext_authz.
    ext_authz: bool = True


def resource_metadata(route: RouteSpec, issuer: str) -> dict[str, Any]:
    """A server's RFC 9728 protected-resource metadata: its canonical URI as resource, the issuer, the scope."""
    return protected_resource_metadata(resource=route.audience, issuer=issuer, scope=SERVER_SCOPE, name=route.name)


def routes_from_catalog(catalog: Catalog, public_url: str) -> tuple[RouteSpec, ...]:
    """A route for every server of the catalog, its audience the server's canonical URI under `public_url`.

    Raises:
        ValueError: an upstream host is neither an IP address nor a DNS name.
    """
    routes = []
    for server in catalog.servers.values():
        host, _, port = server.upstream.rpartition(":")
        if not (_is_ip(host) or _HOSTNAME.fullmatch(host)):
            raise ValueError(f"server {server.name}: upstream host is neither an IP address nor a DNS name")
        routes.append(RouteSpec(server.name, host, int(port), canonical_uri(public_url, server.name)))
    return tuple(routes)


def spec_from_catalog(
    catalog: Catalog,
    *,
    issuer: str,
    jwks_uri: str,
    authz_endpoints: Iterable[tuple[str, int]],
    public_url: str = "http://127.0.0.1:8080",
    listen_port: int = 8080,
    admin_port: int = 9901,
) -> GatewaySpec:
    """A gateway spec routing every server of the catalog; the policies decide who may reach which.

    Raises:
        ValueError: an upstream host is neither an IP address nor a DNS name.
    """
    return GatewaySpec(
        issuer=issuer,
        jwks_uri=jwks_uri,
        authz_endpoints=tuple(authz_endpoints),
        routes=routes_from_catalog(catalog, public_url),
        listen_port=listen_port,
        admin_port=admin_port,
    )


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _cluster(name: str, endpoints: Iterable[tuple[str, int]], *, http2: bool = False) -> dict[str, Any]:
    endpoints = list(endpoints)
    static = all(_is_ip(host) for host, _ in endpoints)
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if static else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(h, p)}} for h, p in endpoints]}],
        },
    }
    if http2:
        # Required for gRPC; `envoy --mode validate` does not catch its absence (it shows as 503 at run time).
        cluster["typed_extension_protocol_options"] = _HTTP2
    return cluster


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def jwt_authn_config(spec: GatewaySpec) -> dict[str, Any]:
    """The jwt_authn filter's config: a provider per server (issuer, the server's audience), a requirement each.

    With ext_authz, a server's requirement is its provider *or* `allow_missing_or_failed`: a request without
    a valid token still reaches ext_authz, which refuses it with a 401 carrying the RFC 9728 challenge (Envoy's
    own 401/403 cannot name the metadata). Only the provider's verifier runs (Envoy folds
    `allow_missing_or_failed` into `requires_any`), so verified claims in metadata are always this server's,
    and a failure is recorded under `JWT_FAILURE_KEY`. Without ext_authz (the benchmark's baseline) the
    provider alone is required, so that mode never lets a request through without a valid token.
    """
    providers = {}
    for route in spec.routes:
        providers[f"server-{route.name}"] = {
            "issuer": spec.issuer,
            "audiences": [route.audience],
            "remote_jwks": {
                "http_uri": {"uri": spec.jwks_uri, "cluster": JWKS_CLUSTER, "timeout": "2s"},
                "cache_duration": f"{spec.jwks_cache_seconds}s",
                "async_fetch": {},
                "retry_policy": {
                    "num_retries": 10,
                    "retry_back_off": {"base_interval": "0.2s", "max_interval": "3s"},
                },
            },
            # The header only, as the metadata says (`bearer_methods_supported`); never the default's query parameter.
            "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
            "forward": True,  # the server verifies the token again (defense in depth)
            "payload_in_metadata": "jwt_payload",
            "failed_status_in_metadata": JWT_FAILURE_KEY,
            "clock_skew_seconds": 30,
        }
    return {
        "@type": JWT_AUTHN_TYPE,
        "providers": providers,
        "requirement_map": {route.name: _requirement(route, spec) for route in spec.routes},
    }


def _requirement(route: RouteSpec, spec: GatewaySpec) -> dict[str, Any]:
    provider = {"provider_name": f"server-{route.name}"}
    if not spec.ext_authz:
        return provider
    return {"requires_any": {"requirements": [provider, {"allow_missing_or_failed": {}}]}}


def _ext_authz(spec: GatewaySpec) -> dict[str, Any]:
    return {
        "name": EXT_AUTHZ_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {
                "envoy_grpc": {"cluster_name": AUTHZ_CLUSTER},
                "timeout": f"{spec.authz_timeout_ms / 1000:g}s",
            },
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},  # an authz outage is a distinct 503, never a 200
            "with_request_body": {
                "max_request_bytes": spec.max_request_bytes,
                "allow_partial_message": False,  # a larger body is refused (413), never half-inspected
                "pack_as_bytes": True,
            },
            "metadata_context_namespaces": [JWT_FILTER],
            # Only what the decision reads: the claims arrive as jwt_authn metadata, so the bearer token itself
            # never reaches authz_service (less to parse, and no token to leak into its logs).
            "allowed_headers": {
                "patterns": [
                    {"exact": "mcp-method"},
                    {"exact": "mcp-name"},
                    {"exact": "x-request-id"},
                    {"prefix": "x-portcullis-"},
                ]
            },
            "clear_route_cache": False,
        },
    }


def _route(route: RouteSpec, spec: GatewaySpec) -> dict[str, Any]:
    per_filter: dict[str, Any] = {JWT_FILTER: {"@type": _JWT_PER_ROUTE_TYPE, "requirement_name": route.name}}
    if spec.ext_authz:
        context = {
            "server": route.name,
            "audience": route.audience,
            "resource_metadata": resource_metadata_url(route.audience),
            "scope": SERVER_SCOPE,
        }
        per_filter[EXT_AUTHZ_FILTER] = {
            "@type": _EXT_AUTHZ_PER_ROUTE_TYPE,
            "check_settings": {"context_extensions": context},
        }
    return {
        "name": route.name,
        "match": {"prefix": f"/servers/{route.name}/"},
        "route": {"cluster": server_cluster_name(route.name), "prefix_rewrite": "/", "timeout": "0s"},  # streams
        "typed_per_filter_config": per_filter,
    }


def _server_routes(route: RouteSpec, spec: GatewaySpec) -> list[dict[str, Any]]:
    """A server's metadata routes, then its own route (which would otherwise take the root form's path)."""
    body = json.dumps(resource_metadata(route, spec.issuer), separators=(",", ":"))
    headers = (("access-control-allow-origin", "*"), ("cache-control", "public, max-age=300"))
    # The path-inserted form (RFC 9728 §3.1), and the root form: what the server itself calls its root.
    inserted = _get_or_head({"path": f"{RESOURCE_METADATA_PATH}/servers/{route.name}/mcp"})
    root = _get_or_head({"path": f"/servers/{route.name}{RESOURCE_METADATA_PATH}"})
    return [
        _json_response(f"{route.name}/resource-metadata", inserted, 200, body, spec, headers),
        _json_response(f"{route.name}/resource-metadata-root", root, 200, body, spec, headers),
        _route(route, spec),
    ]


def _no_gateway_resource(spec: GatewaySpec) -> dict[str, Any]:
    """The gateway's own metadata path: a 404, since a gateway-wide resource would be an audience no server takes."""
    where = f"{RESOURCE_METADATA_PATH}/servers/<name>/mcp"
    body = {"error": "not_found", "error_description": f"Protected-resource metadata is per MCP server, at {where}"}
    match = _get_or_head({"path_separated_prefix": RESOURCE_METADATA_PATH})
    text = json.dumps(body, separators=(",", ":"))
    return _json_response("resource-metadata", match, 404, text, spec, (("access-control-allow-origin", "*"),))


def _get_or_head(match: dict[str, Any]) -> dict[str, Any]:
    """`match` for GET and HEAD only: other methods fall through to the routes below.

    A new dict on each call, so that the YAML dump has no anchors.
    """
    return {**match, "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}]}


def _not_found(spec: GatewaySpec) -> dict[str, Any]:
    body = '{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"No such MCP server on this gateway"}}'
    return _json_response("not-found", {"prefix": "/"}, 404, body, spec)


def _json_response(
    name: str, match: dict[str, Any], status: int, body: str, spec: GatewaySpec, headers: Iterable[tuple[str, str]] = ()
) -> dict[str, Any]:
    """A route Envoy answers itself with a JSON body, no token required and ext_authz not asked."""
    per_filter: dict[str, Any] = {JWT_FILTER: {"@type": _JWT_PER_ROUTE_TYPE, "disabled": True}}
    if spec.ext_authz:
        per_filter[EXT_AUTHZ_FILTER] = {"@type": _EXT_AUTHZ_PER_ROUTE_TYPE, "disabled": True}
    return {
        "name": name,
        "match": match,
        "direct_response": {"status": status, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in (("content-type", "application/json"), *headers)
        ],
        "typed_per_filter_config": per_filter,
    }


_ACCESS_LOG = {
    "name": "envoy.access_loggers.stdout",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format": {
            "json_format": {
                "time": "%START_TIME%",
                "method": "%REQ(:METHOD)%",
                "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                "status": "%RESPONSE_CODE%",
                "flags": "%RESPONSE_FLAGS%",
                "duration_ms": "%DURATION%",
                "upstream": "%UPSTREAM_CLUSTER%",
                "mcp_method": "%REQ(MCP-METHOD)%",
                "user": "%REQ(X-PORTCULLIS-USER)%",
                "decision_id": "%REQ(X-PORTCULLIS-DECISION-ID)%",
                "request_id": "%REQ(X-REQUEST-ID)%",
            }
        },
    },
}


def build_config(spec: GatewaySpec) -> dict[str, Any]:
    """The Envoy bootstrap for a gateway spec, every resource static.

    Raises:
        ValueError: the spec's `jwks_uri` is not an http(s) URL.
    """
    return {
        "admin": admin(spec),
        "static_resources": {
            "listeners": [listener(spec)],
            "clusters": [*static_clusters(spec), *server_clusters(spec)],
        },
    }


def admin(spec: GatewaySpec) -> dict[str, Any]:
    """The admin interface (loopback in every generated config: it can change Envoy's state)."""
    return {"address": _address(spec.admin_host, spec.admin_port)}


def listener(
    spec: GatewaySpec, *, rds: dict[str, Any] | None = None, jwt_authn_discovery: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The gateway listener: jwt_authn -> ext_authz -> router, a route per server, then the JSON 404.

    By default the route table and the jwt_authn config are inline. `rds` (an HCM `rds` block) takes the routes
    from RDS instead, and `jwt_authn_discovery` (an HttpFilter `config_discovery` block) the jwt_authn config
    from ECDS: then the listener itself does not depend on the servers.
    """
    jwt_filter: dict[str, Any] = {"name": JWT_FILTER}
    if jwt_authn_discovery is None:
        jwt_filter["typed_config"] = jwt_authn_config(spec)
    else:
        jwt_filter["config_discovery"] = jwt_authn_discovery
    http_filters = [
        jwt_filter,
        *([_ext_authz(spec)] if spec.ext_authz else []),
        {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
    ]  # fmt: skip
    manager: dict[str, Any] = {
        "@type": _HCM_TYPE,
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "access_log": [_ACCESS_LOG],
    }
    if rds is None:
        manager["route_config"] = route_config(spec)
    else:
        manager["rds"] = rds
    manager["http_filters"] = http_filters
    return {
        "name": LISTENER_NAME,
        "address": _address(spec.listen_host, spec.listen_port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def route_config(spec: GatewaySpec) -> dict[str, Any]:
    """The route table, first match wins.

    For each server: its protected-resource metadata (GET/HEAD, both forms), then `/servers/<name>/` to its
    cluster. Then a JSON 404 for the gateway's own metadata path, and the JSON 404 for anything else.
    """
    routes = [route for server in spec.routes for route in _server_routes(server, spec)]
    return {
        "name": ROUTE_CONFIG_NAME,
        "virtual_hosts": [
            {"name": "mcp", "domains": ["*"], "routes": [*routes, _no_gateway_resource(spec), _not_found(spec)]}
        ],
    }


def static_clusters(spec: GatewaySpec) -> list[dict[str, Any]]:
    """The clusters every gateway has whatever the catalog says: authz_service (gRPC) and the JWKS issuer.

    Raises:
        ValueError: the spec's `jwks_uri` is not an http(s) URL.
    """
    jwks = urlsplit(spec.jwks_uri)
    if jwks.scheme not in ("http", "https") or not jwks.hostname:
        raise ValueError(f"jwks_uri must be an http(s) URL, not {spec.jwks_uri!r}")
    jwks_port = jwks.port or (443 if jwks.scheme == "https" else 80)
    jwks_cluster = _cluster(JWKS_CLUSTER, [(jwks.hostname, jwks_port)])
    if jwks.scheme == "https":
        jwks_cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": jwks.hostname,
            },
        }
    return [_cluster(AUTHZ_CLUSTER, spec.authz_endpoints, http2=True), jwks_cluster]


def server_clusters(spec: GatewaySpec) -> list[dict[str, Any]]:
    """One cluster per routed server, named `server-<name>`."""
    return [_cluster(server_cluster_name(r.name), [(r.upstream_host, r.upstream_port)]) for r in spec.routes]


def server_cluster_name(server: str) -> str:
    """The cluster of a server; the prefix keeps it apart from the static clusters."""
    return f"server-{server}"


def render_yaml(config: dict[str, Any]) -> str:
    """A config as YAML, marked as generated."""
    return "# Generated by portcullis; do not edit by hand.\n" + yaml.safe_dump(config, sort_keys=False)
