"""`python -m servers.tickets [--host H] [--port N]`: run the tickets server (on 127.0.0.1 unless told otherwise).

Settings come from `KIT_TICKETS_*` (server_kit/README.md) and `PORTCULLIS_TICKETS_*` (servers/tickets/settings.py);
the options win. Refused or incomplete settings, or a Jira that cannot be reached, end the process before
anything listens, with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import sys

from server_kit.runner import run_server
from servers.tickets.errors import TicketError
from servers.tickets.server import DEFAULT_PORT, kit, load_settings


def main(argv: list[str] | None = None) -> int:
    return run_server(
        kit,
        argv,
        default_port=DEFAULT_PORT,
        load_settings=load_settings,
        refused=(TicketError,),
    )


if __name__ == "__main__":
    sys.exit(main())
