"""`portcullis server validate`: everything the platform will insist on, checked before anything is published.

It lives with the CLI, not in the kit, because its policy check loads the decision point's engine: importing
`server_kit` loads no policy engine.

- the server: every tool guarded or public, and each guard fits its tool (the server would refuse to start);
- `server.json`: valid exactly as the registry validates a publication (official schema + governance);
- the two agree: the route is the kit's name (its audience and policy name), every tool is declared (the
  policies decide only on declared tools), `read_only` matches `mutating`;
- the policies know its tools: they load, what they name on this server exists, and the package's
  `policy_cases.yaml` passes against the real policies with this server in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from authz_service.errors import AuthzError
from authz_service.policy_tools import check_references, load_decider, run_cases
from portcullis_contracts.catalog import Catalog, CatalogError
from registry.validation import ValidServer
from server_kit.errors import KitError
from server_kit.project import ServerProject, catalog_entry
from server_kit.settings import KitSettings

__all__ = ["Finding", "validate_project"]

_SENSITIVE = ("confidential", "restricted")


@dataclass(frozen=True)
class Finding:
    """One problem: an error blocks deployment, a warning does not."""

    level: Literal["error", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def validate_project(project: ServerProject, policy_dir: Path) -> list[Finding]:
    """Every finding about the server package; no errors means it may be deployed."""
    findings: list[Finding] = []

    def error(where: str, message: str) -> None:
        findings.append(Finding("error", where, message))

    try:
        kit = project.load_kit()
    except KitError as exc:
        return [Finding("error", "server.py", str(exc))]
    try:
        kit.check()
        # Building the app checks every guard against its tool's signature, as start-up would.
        kit.create_app(KitSettings(server=kit.name, authz_credential=SecretStr("validate-only-credential")))
    except KitError as exc:  # unguarded tools, a guard that does not fit its tool
        error("server.py", str(exc))
    try:
        server = project.validated()
    except KitError as exc:
        error("server.json", str(exc))
        return findings
    if server.route != kit.name:
        error("server.json", f"route {server.route!r} differs from the kit's name {kit.name!r} (its audience)")
    declared = {tool.name: tool for tool in server.governance.tools}
    for name in sorted(set(kit.tools) - set(declared)):
        error("server.json", f"tool {name!r} is not declared in the governance tools: the policies cannot decide it")
    for name in sorted(set(declared) - set(kit.tools)):
        error("server.json", f"declares tool {name!r}, which the server does not have")
    for name in sorted(set(declared) & set(kit.tools)):
        mutating = name in kit.mutating_tools
        if declared[name].read_only == mutating:
            said = "read_only: true" if declared[name].read_only else "read_only: false"
            error("server.json", f"tool {name!r} says {said} but the kit declares mutating={mutating}")
        if declared[name].sensitivity in _SENSITIVE and not declared[name].business_groups:
            nobody = (
                f"tool {name!r} is {declared[name].sensitivity} with no business groups: the policies deny it to all"
            )
            findings.append(Finding("warning", "server.json", nobody))
    findings += _policy_findings(project, server, policy_dir)
    return findings


def _policy_findings(project: ServerProject, server: ValidServer, policy_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    try:
        catalog = Catalog.from_document({"servers": [catalog_entry(server)]}, revision="validate")
        _, policy = load_decider(policy_dir, catalog)
    except (AuthzError, CatalogError) as exc:
        return [Finding("error", "policies", f"{policy_dir}: {exc}")]
    for problem in check_references(policy, catalog):
        if f"server {server.route!r}" in problem and "is not in the catalog" not in problem:
            findings.append(Finding("error", "policies", problem))
    if not project.policy_cases.is_file():
        message = f"no {project.policy_cases.name}: nothing shows how the policies decide this server's tools"
        return [*findings, Finding("warning", "policies", message)]
    try:
        results = run_cases(policy_dir, project.policy_cases, catalog)
    except (AuthzError, CatalogError) as exc:
        return [*findings, Finding("error", project.policy_cases.name, str(exc))]
    for result in results:
        if not result.passed:
            got = ("allow" if result.decision.allowed else "deny") + f" ({result.decision.reason})"
            message = f"case {result.name!r}: expected {result.expected}, the policies said {got}"
            findings.append(Finding("error", project.policy_cases.name, message))
    return findings
