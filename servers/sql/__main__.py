"""`python -m servers.sql [--host H] [--port N]`: run the SQL server (on 127.0.0.1:8301 unless told otherwise).

Settings: `KIT_SQL_*` for the kit, `PORTCULLIS_SQL_*` for the engine. The engine is opened before anything
listens: a missing local database or an incomplete Trino configuration ends the process with exit code 2 and
one line on stderr.
"""

from __future__ import annotations

import sys

from server_kit.runner import run_server
from servers.sql.errors import SqlError
from servers.sql.server import DEFAULT_PORT, kit, load_settings


def main(argv: list[str] | None = None) -> int:
    return run_server(kit, argv, default_port=DEFAULT_PORT, load_settings=load_settings, refused=(SqlError,))


if __name__ == "__main__":
    sys.exit(main())
