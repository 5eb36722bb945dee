from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authz_service.errors import PolicyLoadError
from authz_service.policy import PolicyEngine, load_policy_set, policy_files
from tests.authz_service.helpers import POLICIES


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def test_revision_is_a_content_hash(tmp_path: Path) -> None:
    first = load_policy_set(policy_files(POLICIES), timeout_ms=50)
    again = load_policy_set(policy_files(_copy_policies(tmp_path)), timeout_ms=50)
    assert first.revision == again.revision
    (tmp_path / "policies" / "common.polar").write_text((POLICIES / "common.polar").read_text() + "\n# note\n")
    changed = load_policy_set(policy_files(tmp_path / "policies"), timeout_ms=50)
    assert changed.revision != first.revision


def test_failed_reload_keeps_previous_revision_and_reports_file_line_column(tmp_path: Path) -> None:
    policies = _copy_policies(tmp_path)
    engine = PolicyEngine(policies, timeout_ms=50)
    good = engine.reload()
    (policies / "broken.polar").write_text('deny(a, "x", r, "y") if\n  a.id = ;\n')
    with pytest.raises(PolicyLoadError) as raised:
        engine.reload()
    assert raised.value.file == str(policies / "broken.polar")
    assert (raised.value.line, raised.value.column) == (2, 10)
    assert str(raised.value).startswith(f"{policies / 'broken.polar'}:2:10:")
    assert engine.current is good
    assert engine.last_error is raised.value
    (policies / "broken.polar").unlink()
    assert engine.reload().revision == good.revision
    assert engine.last_error is None


def test_policy_set_without_a_deny_rule_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "only_allow.polar").write_text("allow(_, _, _);\n")
    with pytest.raises(PolicyLoadError, match="defines no `deny` rule"):
        load_policy_set(policy_files(tmp_path), timeout_ms=50)


def test_empty_policy_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no \\*.polar files"):
        load_policy_set(policy_files(tmp_path), timeout_ms=50)


def test_engine_is_not_ready_until_a_policy_loads(tmp_path: Path) -> None:
    engine = PolicyEngine(tmp_path, timeout_ms=50)
    with pytest.raises(PolicyLoadError):
        engine.reload()
    assert not engine.ready and engine.current is None
