"""A kit server with a tool that is neither guarded nor public: it must refuse to start."""

from __future__ import annotations

from server_kit import Kit, public

kit = Kit("demo")


@kit.tool()
@public(reason="Echoes its input; reads no data.")
def echo(message: str) -> str:
    """Echo a message back."""
    return message


@kit.tool()
def drop_table(table: str) -> str:
    """Forgot its guard."""
    return table
