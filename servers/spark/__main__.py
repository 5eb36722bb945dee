"""`python -m servers.spark [--host H] [--port N]`: run the Spark server (on 127.0.0.1:8302 unless told otherwise).

Settings: `KIT_SPARK_*` for the kit, `PORTCULLIS_SPARK_*` for the History Server. Refused settings end the
process before anything listens, with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import sys

from server_kit.runner import run_server
from servers.spark.errors import SparkError
from servers.spark.server import DEFAULT_PORT, kit, load_settings


def main(argv: list[str] | None = None) -> int:
    return run_server(
        kit,
        argv,
        default_port=DEFAULT_PORT,
        load_settings=load_settings,
        refused=(SparkError,),
    )


if __name__ == "__main__":
    sys.exit(main())
