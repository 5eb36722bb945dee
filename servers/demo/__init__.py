"""The demo MCP server that `portcullis up` puts behind the gateway."""

from servers.demo.server import DEFAULT_PORT, build_server, create_app

__all__ = ["DEFAULT_PORT", "build_server", "create_app"]
