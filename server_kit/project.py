"""A kit server's package on disk, as the pipeline sees it: `server.py` (the `Kit` named `kit`), `server.json`
(its registry entry with the governance extension), `policy_cases.yaml` (how the policies must decide its tools)
and `tests/`.

    servers/weather/
        __init__.py  __main__.py  server.py  server.json  policy_cases.yaml  tests/

The import path comes from the folders: walking up while a folder holds `__init__.py` gives the package's
dotted name and the folder that must be on `sys.path` (the repository root for `servers/weather`).
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from portcullis_contracts.governance import catalog_entry as contract_catalog_entry
from registry.errors import RegistryError
from registry.validation import ValidServer, validate_server_json
from server_kit.errors import KitError
from server_kit.kit import Kit

__all__ = ["SERVER_JSON", "ServerProject", "catalog_entry"]

SERVER_JSON = "server.json"
SERVER_MODULE = "server"
POLICY_CASES = "policy_cases.yaml"
_SEED_KEY = "dev.portcullis/seed"


@dataclass(frozen=True)
class ServerProject:
    """One server package."""

    directory: Path

    @classmethod
    def at(cls, directory: Path) -> ServerProject:
        """The server package in `directory`.

        Raises:
            KitError: the folder is not a server package (no `server.py`, `server.json` or `__init__.py`).
        """
        directory = directory.resolve()
        missing = [
            name for name in ("__init__.py", f"{SERVER_MODULE}.py", SERVER_JSON) if not (directory / name).is_file()
        ]
        if missing:
            raise KitError(f"{directory} is not a server package: missing {', '.join(missing)}")
        return cls(directory)

    @cached_property
    def import_root(self) -> Path:
        """The folder to put on `sys.path` so the package imports by its dotted name."""
        root = self.directory
        while (root.parent / "__init__.py").is_file():
            root = root.parent
        return root.parent

    @property
    def package(self) -> str:
        return ".".join(self.directory.relative_to(self.import_root).parts)

    @property
    def target(self) -> str:
        """`module:attribute` of the kit, for `python -m server_kit serve`."""
        return f"{self.package}.{SERVER_MODULE}:kit"

    @property
    def server_json(self) -> Path:
        return self.directory / SERVER_JSON

    @property
    def policy_cases(self) -> Path:
        return self.directory / POLICY_CASES

    def document(self) -> dict[str, Any]:
        """The parsed server.json (the seed marker of config/servers is not part of it).

        Raises:
            KitError: unreadable or not JSON.
        """
        try:
            document = json.loads(self.server_json.read_text())
        except (OSError, ValueError) as exc:
            raise KitError(f"{self.server_json}: {exc}") from None
        if isinstance(document, dict) and isinstance(document.get("_meta"), dict):
            document["_meta"].pop(_SEED_KEY, None)
        return document if isinstance(document, dict) else {"_invalid": document}

    def validated(self) -> ValidServer:
        """server.json checked exactly as the registry checks a publication.

        Raises:
            KitError: unreadable, or invalid (the message lists every error with its JSON path).
        """
        try:
            return validate_server_json(self.document())
        except RegistryError as exc:
            details = "".join(f"\n  {error['path']}: {error['message']}" for error in getattr(exc, "errors", []))
            raise KitError(f"{self.server_json}: {exc}{details}") from None

    def load_kit(self) -> Kit:
        """Import the package's `server.kit`.

        Raises:
            KitError: the module cannot be imported or has no `kit`.
        """
        if str(self.import_root) not in sys.path:
            sys.path.insert(0, str(self.import_root))
        module_name = f"{self.package}.{SERVER_MODULE}"
        top = self.package.split(".", 1)[0]
        loaded = sys.modules.get(top)
        if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(self.import_root)):
            # Another package of the same name was imported first (another checkout, an earlier scaffold).
            for name in [name for name in sys.modules if name == top or name.startswith(f"{top}.")]:
                del sys.modules[name]
        try:
            module = importlib.import_module(module_name)
        except KitError:
            raise
        except Exception as exc:
            raise KitError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
        kit = getattr(module, "kit", None)
        if not isinstance(kit, Kit):
            raise KitError(f"{module_name} has no server_kit.Kit named `kit`")
        return kit


def catalog_entry(server: ValidServer, *, status: str = "approved") -> dict[str, Any]:
    """The catalog entry the policies see for a server.json (what the registry's snapshot serves once approved)."""
    return contract_catalog_entry(server.document, server.governance, status=status)
