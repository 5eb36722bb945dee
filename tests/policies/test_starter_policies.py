"""The starter policies, loaded into a real Oso engine, against their table of cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.catalog import FileCatalogSource
from authz_service.policy_tools import check_references, load_decider, run_cases
from portcullis.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
CASES = POLICIES / "cases.yaml"
CATALOG = ROOT / "config" / "catalog.yaml"
_CASE_NAMES = [case["name"] for case in yaml.safe_load(CASES.read_text())["cases"]]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return {result.name: result for result in run_cases(POLICIES, CASES)}


@pytest.mark.parametrize("name", _CASE_NAMES)
def test_policy_case(results: dict[str, Any], name: str) -> None:
    result = results[name]
    assert result.passed, f"expected {result.expected}, got {result.decision.result} ({result.decision.reason})"


def test_only_ads_eng_may_call_get_revenue_metrics(results: dict[str, Any]) -> None:
    callers = {
        name: result.decision.allowed
        for name, result in results.items()
        if result.decision.allowed and "get_revenue_metrics" in name
    }
    assert list(callers) == ["a member of ads-eng with the ads business group may call get_revenue_metrics"]


def test_every_policy_reference_resolves_in_the_catalog() -> None:
    catalog = FileCatalogSource(CATALOG).load()
    _, policy = load_decider(POLICIES, catalog)
    assert check_references(policy, catalog) == []


def test_policy_check_reports_a_tool_the_catalog_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for path in POLICIES.glob("*.polar"):
        (policies / path.name).write_text(path.read_text())
    (policies / "extra.polar").write_text('tool_group("demo", "drop_tables", "dba");\ntool_group("ghost", "x", "y");\n')
    code = main(["policy", "check", "--policies", str(policies), "--catalog", str(CATALOG)])
    err = capsys.readouterr().err
    assert code == 1
    assert "server 'demo' has no tool 'drop_tables'" in err
    assert "server 'ghost' is not in the catalog" in err


def test_policy_check_reports_syntax_error_with_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bad.polar").write_text('allow(actor, "connect", server) if\n  actor.id = ;\n')
    code = main(["policy", "check", "--policies", str(policies), "--catalog", str(CATALOG)])
    assert code == 2
    assert f"{policies / 'bad.polar'}:2:" in capsys.readouterr().err


def test_policy_test_fails_with_the_failing_case_and_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = yaml.safe_load(CASES.read_text())
    table["catalog"] = str(CATALOG)
    table["cases"] = [
        {"name": "bob may call revenue (wrong on purpose)", "actor": "bob", "action": "call",
         "resource": {"type": "tool", "server": "demo", "name": "get_revenue_metrics"}, "expect": "allow"},
    ]  # fmt: skip
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump(table))
    code = main(["policy", "test", "--policies", str(POLICIES), "--cases", str(cases)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  bob may call revenue (wrong on purpose)" in out
    assert "expected allow, got deny (group_required)" in out


def test_policy_explain_prints_decision_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "explain", "--user", "dave", "--client", "cursor", "--server", "demo"])
    out = capsys.readouterr().out
    assert code == 3
    assert '"decision": "deny"' in out and '"reason": "client_not_allowed"' in out
