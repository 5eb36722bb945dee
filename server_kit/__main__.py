"""`python -m server_kit serve|check MODULE:ATTR`: run a kit server, or check that every tool is governed.

`serve` reads the server's `KIT_<NAME>_*` settings (`--host`/`--port` win) and refuses to start, with exit code 2
and one clear line on stderr, when a tool is neither guarded nor public or the settings are refused.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from server_kit.errors import KitError
from server_kit.guards import Public
from server_kit.kit import Kit
from server_kit.settings import KitSettings

EXIT_REFUSED = 2


def load_kit(target: str) -> Kit:
    """The `Kit` at `module:attribute` (an attribute that is a `Kit`, or a function returning one).

    Raises:
        KitError: the target is malformed, cannot be imported, or is not a kit.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise KitError(f"expected MODULE:ATTRIBUTE, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KitError(f"cannot import {module_name!r}: {exc}") from None
    value: Any = getattr(module, attribute, None)
    if callable(value) and not isinstance(value, Kit):
        value = value()
    if not isinstance(value, Kit):
        raise KitError(f"{target} is not a server_kit.Kit")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server_kit")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a kit server")
    serve.add_argument("target", help="MODULE:ATTRIBUTE of the Kit")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    check = commands.add_parser("check", help="check that every tool is guarded or public")
    check.add_argument("target", help="MODULE:ATTRIBUTE of the Kit")
    args = parser.parse_args(argv)
    try:
        kit = load_kit(args.target)
        if args.command == "check":
            for name, access in sorted(kit.check().items()):
                how = f"public: {access.reason}" if isinstance(access, Public) else f"guarded: {access.action}"
                confirmed = "\tmutating: asks the person to confirm" if name in kit.mutating_tools else ""
                print(f"{name}\t{how}{confirmed}")
            return 0
        overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
        kit.serve(KitSettings.behind_gateway(kit.name, **overrides))
    except KitError as exc:
        print(f"server_kit: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
