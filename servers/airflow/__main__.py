"""`python -m servers.airflow [--host H] [--port N]`: run the Airflow server (on 127.0.0.1 unless told otherwise).

Settings come from `KIT_AIRFLOW_*` (server_kit/README.md); the options win. Refused settings end the process
before anything listens, with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import sys

from server_kit.runner import run_server
from servers.airflow.server import DEFAULT_PORT, kit, load_settings


def main(argv: list[str] | None = None) -> int:
    return run_server(kit, argv, default_port=DEFAULT_PORT, load_settings=load_settings)


if __name__ == "__main__":
    sys.exit(main())
