"""The Spark MCP server: Spark applications from the History Server's REST API (a local History Server over
event logs of small local jobs in development, servers/spark/local.py)."""

from servers.spark.server import DEFAULT_PORT, kit, load_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]
