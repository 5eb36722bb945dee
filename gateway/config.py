"""The Envoy configuration generator: one listener, jwt_authn -> ext_authz -> router, a route per server.

Input is a `GatewaySpec` (from a catalog file, or from the registry's snapshot through `gateway.sync`);
output is Envoy v3 resources as plain dicts. `build_config` puts them all in one static bootstrap;
`gateway.dynamic` puts the listener and the server clusters in files Envoy watches instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import yaml

from authz_service.catalog import Catalog

__all__ = [
    "AUTHZ_CLUSTER",
    "GatewaySpec",
    "RouteSpec",
    "admin",
    "build_config",
    "canonical_uri",
    "jwt_authn_config",
    "listener",
    "render_yaml",
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


def canonical_uri(public_url: str, server: str) -> str:
    """The canonical URI of a server behind the gateway: its token audience (one audience per server)."""
    return f"{public_url.rstrip('/')}/servers/{server}/mcp"


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
    """The jwt_authn filter's config: a provider per server (issuer, the server's audience), a requirement each."""
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
            "forward": True,  # the server verifies the token again (defense in depth)
            "payload_in_metadata": "jwt_payload",
            "clock_skew_seconds": 30,
        }
    return {
        "@type": JWT_AUTHN_TYPE,
        "providers": providers,
        "requirement_map": {route.name: {"provider_name": f"server-{route.name}"} for route in spec.routes},
    }


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
    per_filter: dict[str, Any] = {
        JWT_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
            "requirement_name": route.name,
        }
    }
    if spec.ext_authz:
        per_filter[EXT_AUTHZ_FILTER] = {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "check_settings": {"context_extensions": {"server": route.name, "audience": route.audience}},
        }
    return {
        "name": route.name,
        "match": {"prefix": f"/servers/{route.name}/"},
        "route": {"cluster": server_cluster_name(route.name), "prefix_rewrite": "/", "timeout": "0s"},  # streams
        "typed_per_filter_config": per_filter,
    }


def _not_found(spec: GatewaySpec) -> dict[str, Any]:
    body = '{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"No such MCP server on this gateway"}}'
    route: dict[str, Any] = {
        "name": "not-found",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }
    if spec.ext_authz:
        route["typed_per_filter_config"] = {
            EXT_AUTHZ_FILTER: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                "disabled": True,
            }
        }
    return route


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
    """The route table: `/servers/<name>/` to the server's cluster for each server, anything else the JSON 404."""
    return {
        "name": ROUTE_CONFIG_NAME,
        "virtual_hosts": [
            {"name": "mcp", "domains": ["*"], "routes": [*(_route(r, spec) for r in spec.routes), _not_found(spec)]}
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
