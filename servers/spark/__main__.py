"""`python -m servers.spark [--host H] [--port N]`: run the Spark server (on 127.0.0.1:8302 unless told otherwise).

Settings: `KIT_SPARK_*` for the kit, `PORTCULLIS_SPARK_*` for the History Server. Refused settings end the
process before anything listens, with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from server_kit import KitError
from servers.spark.errors import SparkError
from servers.spark.history import load_history_settings
from servers.spark.server import DEFAULT_PORT, kit, load_settings

EXIT_REFUSED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.spark")
    parser.add_argument("--host", help="default: KIT_SPARK_HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help=f"default: KIT_SPARK_PORT, else {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    try:
        load_history_settings()  # a malformed backend setting is refused now, not at the first call
        kit.serve(load_settings(**overrides))
    except (KitError, SparkError) as exc:
        print(f"servers.spark: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
