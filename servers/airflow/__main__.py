"""`python -m servers.airflow [--host H] [--port N]`: run the Airflow server (on 127.0.0.1 unless told otherwise).

Settings come from `KIT_AIRFLOW_*` (server_kit/README.md); the options win. Refused settings end the process
before anything listens, with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from server_kit import KitError
from servers.airflow.server import DEFAULT_PORT, kit, load_settings

EXIT_REFUSED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.airflow")
    parser.add_argument("--host", help="default: KIT_AIRFLOW_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help=f"default: KIT_AIRFLOW_PORT, else {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    try:
        kit.serve(load_settings(**overrides))
    except KitError as exc:
        print(f"servers.airflow: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
