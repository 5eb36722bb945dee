"""The demo MCP server that `portcullis up` puts behind the gateway (on the server kit)."""

from servers.demo.server import DEFAULT_PORT, kit, load_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]
