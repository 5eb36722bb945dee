"""The tickets MCP server: tickets in Redmine or Jira (on the server kit)."""

from servers.tickets.server import DEFAULT_PORT, kit, load_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]
