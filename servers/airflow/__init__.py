"""The Airflow MCP server (Airflow 3 REST API; a local Airflow on SQLite for development, servers/airflow/local.py)."""

from servers.airflow.server import DEFAULT_PORT, kit, load_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]
