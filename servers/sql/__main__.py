"""`python -m servers.sql [--host H] [--port N]`: run the SQL server (on 127.0.0.1:8301 unless told otherwise).

Settings: `KIT_SQL_*` for the kit, `PORTCULLIS_SQL_*` for the engine. The engine is opened before anything
listens: a missing local database or an incomplete Trino configuration ends the process with exit code 2 and
one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from server_kit import KitError
from servers.sql.errors import SqlError
from servers.sql.server import DEFAULT_PORT, SqlService, SqlSettings, configure, kit, load_settings

EXIT_REFUSED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.sql")
    parser.add_argument("--host", help="default: KIT_SQL_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help=f"default: KIT_SQL_PORT, else {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else (None if "KIT_SQL_PORT" in os.environ else DEFAULT_PORT)
    overrides = {key: value for key, value in (("host", args.host), ("port", port)) if value is not None}
    try:
        settings = load_settings(**overrides)
        configure(SqlService.from_settings(SqlSettings()))
        kit.serve(settings)
    except (KitError, SqlError) as exc:
        print(f"servers.sql: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
