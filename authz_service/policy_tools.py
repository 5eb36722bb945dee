"""Tools for security engineers: run the policies' test table, check references, explain a decision.

They use the same engine and decision function as the live service, with a decision log that keeps
nothing (these decisions are not real requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from authz_service.catalog import FileCatalogSource
from authz_service.decision import Actor, Decider, Decision, DecisionRequest, ResourceRef
from authz_service.decision_log import NullDecisionLog
from authz_service.errors import AuthzError
from authz_service.metrics import Metrics
from authz_service.policy import PolicyEngine, PolicySet
from portcullis_contracts.catalog import Catalog

__all__ = ["CaseResult", "CasesError", "check_references", "explain", "load_decider", "run_cases"]

# Fact predicates that name catalog entries: predicate -> (arity, position of server, position of tool).
REFERENCE_PREDICATES: dict[str, tuple[int, int, int | None]] = {"tool_group": (3, 0, 1)}


class CasesError(AuthzError):
    """The test table itself is malformed."""


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    expected: str
    decision: Decision


def load_decider(policy_dir: Path, catalog: Catalog, *, timeout_ms: int = 1000) -> tuple[Decider, PolicySet]:
    """A decider over freshly loaded policies (raises PolicyLoadError when they do not load)."""
    engine = PolicyEngine(policy_dir, timeout_ms=timeout_ms)
    policy = engine.reload()
    decider = Decider(engine=engine, catalog=lambda: catalog, log=NullDecisionLog(), metrics=Metrics(), cache_size=0)
    return decider, policy


def actor_from(spec: Any, actors: dict[str, Any]) -> Actor:
    """An actor from a name in `actors`, or an inline mapping (`use:` a named actor, then override)."""
    if isinstance(spec, str):
        spec = {"use": spec}
    if not isinstance(spec, dict):
        raise CasesError(f"an actor must be a name or a mapping, not {spec!r}")
    base = dict(actors.get(spec["use"], {})) if "use" in spec else {}
    if "use" in spec and not base:
        raise CasesError(f"unknown actor {spec['use']!r}")
    fields = {**base, **{k: v for k, v in spec.items() if k != "use"}}
    unknown = set(fields) - {"id", "client", "email", "groups", "business_groups"}
    if unknown or "id" not in fields:
        raise CasesError(f"actor needs an id and only id/client/email/groups/business_groups: {spec!r}")
    return Actor(
        id=str(fields["id"]),
        client=str(fields.get("client", "")),
        email=str(fields.get("email", "")),
        groups=tuple(sorted(fields.get("groups", []))),
        business_groups=tuple(sorted(fields.get("business_groups", []))),
    )


_TYPES = ("server", "tool", "dataset", "registry_entry")


def resource_from(spec: Any) -> ResourceRef:
    """A resource reference from `{type, server, name?, properties?}`."""
    if not isinstance(spec, dict) or spec.get("type") not in _TYPES or "server" not in spec:
        raise CasesError(f"a resource needs type ({', '.join(_TYPES)}) and server: {spec!r}")
    return ResourceRef.of(spec["type"], str(spec["server"]), str(spec.get("name", "")), spec.get("properties"))


def run_cases(policy_dir: Path, cases_file: Path, catalog: Catalog | None = None) -> list[CaseResult]:
    """Run the test table; the catalog defaults to the one the table names (relative to the table).

    Raises:
        CasesError: the table is malformed.
        PolicyLoadError: the policies do not load.
        CatalogError: the catalog does not load.
    """
    try:
        table = yaml.safe_load(cases_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CasesError(f"cannot read {cases_file}: {exc}") from None
    if not isinstance(table, dict) or not isinstance(table.get("cases"), list):
        raise CasesError(f"{cases_file}: expected a mapping with a `cases` list")
    if catalog is None:
        if "catalog" not in table:
            raise CasesError(f"{cases_file}: name the `catalog` file the cases run against")
        catalog = FileCatalogSource((cases_file.parent / table["catalog"]).resolve()).load()
    decider, _ = load_decider(policy_dir, catalog)
    actors = table.get("actors") or {}
    results = []
    for number, case in enumerate(table["cases"], start=1):
        name = case.get("name") or f"case {number}"
        expect = case.get("expect")
        if expect not in ("allow", "deny"):
            raise CasesError(f"{name}: expect must be allow or deny")
        request = DecisionRequest(
            "cli", actor_from(case.get("actor"), actors), str(case.get("action")), resource_from(case.get("resource"))
        )
        decision = decider.decide(request)
        passed = decision.allowed == (expect == "allow") and ("reason" not in case or decision.reason == case["reason"])
        expected = expect + (f" ({case['reason']})" if "reason" in case else "")
        results.append(CaseResult(name, passed, expected, decision))
    return results


def check_references(policy: PolicySet, catalog: Catalog) -> list[str]:
    """Problems with the servers and tools the policies name; empty when every reference resolves."""
    problems = []
    for predicate, (arity, server_at, tool_at) in REFERENCE_PREDICATES.items():
        for fact in policy.facts(predicate, arity):
            server = fact[server_at]
            if not isinstance(server, str):
                continue  # a rule, not a fact: it names no server
            entry = catalog.servers.get(server)
            if entry is None:
                problems.append(f"{predicate}{fact}: server {server!r} is not in the catalog")
                continue
            if tool_at is not None:
                tool = fact[tool_at]
                if isinstance(tool, str) and tool not in {t.name for t in entry.tools}:
                    problems.append(f"{predicate}{fact}: server {server!r} has no tool {tool!r}")
    return problems


def explain(decider: Decider, actor: Actor, action: str, resource: ResourceRef) -> Decision:
    """The decision and its reason for one input."""
    return decider.decide(DecisionRequest("cli", actor, action, resource))
