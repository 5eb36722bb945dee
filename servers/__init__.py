"""servers: the domain MCP servers, each a small server with only its own tools."""
