"""Imports run one way: the CLI and tests -> the services -> `portcullis_contracts`.

Each import runs in a fresh interpreter, since this test process has long since loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What only the decision point may load: its package and its policy engine. (The registry's UI renders with
# jinja2 and its sign-in may use Authlib, so those are not the decision point's to forbid here.)
DECISION_POINT = ("authz_service", "oso", "polar")
# What no contract may load: a web framework, a policy engine, an OAuth library, or any service.
SERVICES = ("authz_service", "registry", "gateway", "server_kit", "servers", "portcullis")
HEAVY = ("fastapi", "oso", "polar", "authlib", "jinja2", "sqlmodel", "sqlalchemy", "grpc")

CONTRACT_MODULES = (
    "portcullis_contracts",
    "portcullis_contracts.catalog",
    "portcullis_contracts.catalog_snapshot",
    "portcullis_contracts.directory",
    "portcullis_contracts.http_input",
    "portcullis_contracts.json_input",
    "portcullis_contracts.redirects",
    "portcullis_contracts.revocations",
    "portcullis_contracts.urls",
)


def _loaded_after_import(*modules: str) -> set[str]:
    """The top-level packages in `sys.modules` after a fresh interpreter imports `modules`."""
    script = (
        f"import sys\nfor name in {list(modules)!r}:\n    __import__(name)\n"
        "print(__import__('json').dumps(sorted({name.partition('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return set(loaded)


@pytest.mark.parametrize(
    "module",
    ["registry.app", "gateway", "gateway.config", "gateway.sync", "gateway.launcher", "gateway.dynamic", "server_kit"],
)
def test_importing_a_service_loads_neither_the_decision_point_nor_its_policy_engine(module: str) -> None:
    loaded = _loaded_after_import(module)

    assert loaded.isdisjoint(DECISION_POINT), sorted(loaded & set(DECISION_POINT))


def test_importing_every_contract_loads_no_service_and_no_framework_or_policy_engine() -> None:
    loaded = _loaded_after_import(*CONTRACT_MODULES)

    assert loaded.isdisjoint(SERVICES), sorted(loaded & set(SERVICES))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
