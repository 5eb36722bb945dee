"""`portcullis token` and `portcullis keys rotate|list` over a signing-key ring."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from authz_service.keys import RETIREMENT_SKEW_SECONDS, KeyRing
from portcullis.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "config" / "directory.yaml"


@pytest.fixture(autouse=True)
def _embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the CLI reads from `AUTHZ_*`: their defaults, whatever the caller's environment holds."""
    for name in ("AUTHZ_UPSTREAM_ISSUER", "AUTHZ_KEY_ACTIVATION_SECONDS", "AUTHZ_ACCESS_TOKEN_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def _token(key_dir: Path, *extra: str) -> list[str]:
    return ["token", "--user", "alice", "--client", "claude-desktop", "--server", "demo",
            "--directory", str(DIRECTORY), "--key-dir", str(key_dir), *extra]  # fmt: skip


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("portcullis: ")
    return lines[0]


def test_token_is_signed_by_the_current_key_of_the_ring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_token(tmp_path)) == 0
    token = capsys.readouterr().out.strip()
    ring = KeyRing(tmp_path)
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid == ring.current().kid
    public_key = ring.public_key(kid)
    assert public_key is not None
    claims = jwt.decode(token, public_key, algorithms=["RS256"], audience="http://127.0.0.1:8080/servers/demo/mcp")
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 600


def test_token_is_refused_when_login_is_federated_upstream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHZ_UPSTREAM_ISSUER", "https://login.example.com")
    assert main(_token(tmp_path / "keys")) == 2
    line = _one_line_error(capsys)
    assert "federated to https://login.example.com" in line and "embedded directory" in line
    assert not (tmp_path / "keys").exists()


def test_token_outliving_an_access_token_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_token(tmp_path, "--ttl", "3600")) == 2
    assert "--ttl must be between 1 and 600" in _one_line_error(capsys)


def test_keys_rotate_publishes_a_pending_key_and_list_shows_each_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = KeyRing.load_or_create(tmp_path, activation_seconds=330).current()
    before = time.time()
    assert main(["keys", "rotate", "--key-dir", str(tmp_path), "--activate-in", "600"]) == 0
    rotated = capsys.readouterr().out.splitlines()
    old, new = KeyRing(tmp_path).entries()
    assert rotated == [
        f"key {first.kid}: active, published until {_iso(old.retire_at)}",
        f"new key {new.kid}: published now, signs from {_iso(new.active_from)} (in 600 s)",
    ]
    assert before + 600 <= new.active_from <= time.time() + 600
    assert old.retire_at == new.active_from + 600 + RETIREMENT_SKEW_SECONDS

    assert main(["keys", "list", "--key-dir", str(tmp_path)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["KID", "CREATED", "ACTIVE", "FROM", "RETIRE", "AT", "STATE"]
    assert [row.split() for row in rows] == [
        [first.kid, _iso(old.created_at), _iso(old.active_from), _iso(old.retire_at), "active"],
        [new.kid, _iso(new.created_at), _iso(new.active_from), "-", "pending"],
    ]


def test_keys_rotate_takes_its_defaults_from_the_service_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    KeyRing.load_or_create(tmp_path, activation_seconds=330)
    monkeypatch.setenv("AUTHZ_KEY_ACTIVATION_SECONDS", "400")
    monkeypatch.setenv("AUTHZ_ACCESS_TOKEN_TTL_SECONDS", "900")
    assert main(["keys", "rotate", "--key-dir", str(tmp_path)]) == 0
    assert "(in 400 s)" in capsys.readouterr().out
    old, new = KeyRing(tmp_path).entries()
    assert new.active_from - new.created_at == 400
    assert old.retire_at == new.active_from + 900 + RETIREMENT_SKEW_SECONDS


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "rotate"]])
def test_keys_commands_without_a_ring_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main([*command, "--key-dir", str(tmp_path)]) == 2
    assert "no signing-key ring" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_rotation_by_the_cli_reaches_a_running_ring_without_restart(tmp_path: Path) -> None:
    clock = [time.time()]
    running = KeyRing.load_or_create(tmp_path, activation_seconds=330, now=lambda: clock[0])
    result = subprocess.run(
        [sys.executable, "-m", "portcullis.cli", "keys", "rotate", "--key-dir", str(tmp_path), "--activate-in", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    new_kid = result.stdout.split("new key ", 1)[1].split(":", 1)[0]
    clock[0] = time.time() + 1  # the running ring's next check of the manifest
    assert running.current().kid == new_kid
    assert new_kid in [key["kid"] for key in running.jwks()["keys"]]


def _iso(timestamp: float | None) -> str:
    assert timestamp is not None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
