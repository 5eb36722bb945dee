"""The SQL server's local backend: the sample data set in an embedded DuckDB file (no process to run).

    python -m servers.sql.local setup [--state-dir .portcullis/backends/sql]

`setup` builds `<state_dir>/lake.duckdb` once (an existing file is kept: re-running is instant); the server opens
it read-only. `server_environment` points the server at it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from servers.sql.sample_data import CATALOG, build

__all__ = ["database_path", "server_environment", "setup", "start", "wait_ready"]

DEFAULT_STATE_DIR = Path(".portcullis/backends/sql")


def database_path(state_dir: Path) -> Path:
    return state_dir / f"{CATALOG}.duckdb"


def setup(state_dir: Path) -> None:
    """Build the sample database unless it is there (idempotent)."""
    path = database_path(state_dir)
    if build(path):
        print(f"sql: built the sample data set in {path}", file=sys.stderr)


def start(state_dir: Path, port: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Nothing to start: the engine is embedded in the server."""
    return []


def wait_ready(port: int, timeout: float, *, state_dir: Path | None = None) -> None:
    """Always ready (embedded)."""


def server_environment(state_dir: Path, port: int = 0) -> dict[str, str]:
    """The `PORTCULLIS_SQL_*` settings for a server reading the local database (`port` is unused)."""
    return {"PORTCULLIS_SQL_ENGINE": "duckdb", "PORTCULLIS_SQL_DATABASE": str(database_path(state_dir).resolve())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.sql.local")
    parser.add_argument("command", choices=["setup"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    setup(args.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
