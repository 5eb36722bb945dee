"""`python -m server_kit check|serve MODULE:ATTR`: governance check and clear refusals (exit code 2)."""

from __future__ import annotations

import pytest

from server_kit.__main__ import EXIT_REFUSED, main


def test_check_lists_every_tool_with_its_guard_or_public_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.server_kit.sample_server:kit"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "downstream_claims\tguarded: call",
        "echo\tguarded: call",
        "get_revenue_metrics\tguarded: call",
        "revenue_by_business_group\tguarded: call",
        "server_version\tpublic: Reports the server's version; reads no data.",
        "whoami\tguarded: call",
    ]


def test_check_refuses_a_server_with_a_guardless_tool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.server_kit.unguarded_server:kit"]) == EXIT_REFUSED
    assert "drop_table are neither guarded nor public" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.server_kit.sample_server", "expected MODULE:ATTRIBUTE"),
        ("tests.server_kit.no_such_module:kit", "cannot import"),
        ("tests.server_kit.sample_server:_REVENUE", "is not a server_kit.Kit"),
    ],
)
def test_a_bad_target_is_a_clear_error(target: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", target]) == EXIT_REFUSED
    assert message in capsys.readouterr().err


def test_serve_refuses_to_start_without_a_service_credential(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KIT_DEMO_AUTHZ_CREDENTIAL", raising=False)
    assert main(["serve", "tests.server_kit.sample_server:kit"]) == EXIT_REFUSED
    assert "KIT_DEMO_AUTHZ_CREDENTIAL is required" in capsys.readouterr().err
