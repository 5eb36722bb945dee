"""`python -m servers.tickets [--host H] [--port N]`: run the tickets server (on 127.0.0.1 unless told otherwise).

Settings come from `KIT_TICKETS_*` (server_kit/README.md) and `PORTCULLIS_TICKETS_*` (servers/tickets/settings.py);
the options win. Refused or incomplete settings end the process before anything listens, with exit code 2 and
one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from server_kit import KitError
from servers.tickets.errors import TicketError
from servers.tickets.server import DEFAULT_PORT, kit, load_settings
from servers.tickets.settings import load_settings as load_backend_settings

EXIT_REFUSED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.tickets")
    parser.add_argument("--host", help="default: KIT_TICKETS_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help=f"default: KIT_TICKETS_PORT, else {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    try:
        load_backend_settings()  # a missing or malformed backend setting is refused now, not at the first call
        kit.serve(load_settings(**overrides))
    except (KitError, TicketError) as exc:
        print(f"servers.tickets: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
