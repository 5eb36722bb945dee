"""The registry: the central catalog of MCP servers, its approval workflow, and the snapshot that feeds the
policies and the gateway."""

from registry.app import create_app
from registry.settings import RegistrySettings

__all__ = ["RegistrySettings", "create_app"]
