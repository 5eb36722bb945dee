"""The SQL MCP server (Presto/Trino in production, DuckDB with the Trino dialect locally)."""

from servers.sql.server import DEFAULT_PORT, kit, load_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]
