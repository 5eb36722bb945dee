"""`python -m servers.<name>`: the command line every kit server shares.

    def main(argv: list[str] | None = None) -> int:
        return run_server(kit, argv, default_port=DEFAULT_PORT, load_settings=load_settings,
                          refused=(BackendError,))

`--host`/`--port` win over `KIT_<NAME>_HOST`/`KIT_<NAME>_PORT`, which win over the server's default port
(its `load_settings` applies it: `KitSettings.behind_gateway(name, default_port=...)`). The server's resources
(`@kit.resource`: its backend's settings and clients) are built before anything listens. A refused setting,
from the kit or from a resource factory (its errors listed in `refused`), ends the process with exit code 2 and
one line on stderr, never a trace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from server_kit.errors import KitError
from server_kit.kit import Kit
from server_kit.settings import KitSettings, env_prefix

__all__ = ["EXIT_REFUSED", "run_server"]

EXIT_REFUSED = 2


def run_server(
    kit: Kit,
    argv: list[str] | None,
    *,
    default_port: int,
    load_settings: Callable[..., KitSettings],
    refused: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse the options, check the settings, serve until stopped; the process's exit code."""
    prog = f"python -m servers.{kit.name}"
    prefix = env_prefix(kit.name)
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--host", help=f"default: {prefix}HOST, else 127.0.0.1")
    parser.add_argument("--port", type=int, help=f"default: {prefix}PORT, else {default_port}")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    errors: tuple[type[BaseException], ...] = (KitError, *refused)
    try:
        kit.serve(load_settings(**overrides))
    except errors as exc:
        print(f"servers.{kit.name}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0
