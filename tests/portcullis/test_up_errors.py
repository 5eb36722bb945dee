"""`portcullis up` refuses to start with a clear one-line error, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "policies", root / "policies")
    shutil.copytree(ROOT / "config", root / "config")
    return root


def _up(root: Path, *env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `portcullis up` in its own process group, so a start that unexpectedly succeeds leaves nothing behind."""
    environment = {"PORTCULLIS_ROOT": str(root), "PATH": "/usr/bin:/bin", **dict(env)}
    process = subprocess.Popen(
        [sys.executable, "-m", "portcullis.cli", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("portcullis up did not fail fast") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _assert_one_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("portcullis: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_port_already_taken_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8181))
        except OSError:
            pytest.skip("port 8181 is used by something else on this machine")
        taken.listen()
        result = _up(_project_copy(tmp_path))
    _assert_one_line(result, "port 8181 on 127.0.0.1 is already in use")


def test_missing_envoy_binary_is_a_one_line_error(tmp_path: Path) -> None:
    result = _up(_project_copy(tmp_path), ("PORTCULLIS_ENVOY_BIN", str(tmp_path / "no-envoy")))
    _assert_one_line(result, "no executable Envoy binary found")


def test_broken_policy_is_a_one_line_error_with_its_location(tmp_path: Path) -> None:
    root = _project_copy(tmp_path)
    (root / "policies" / "edge.polar").write_text('allow(actor, "connect", server) if\n  actor.id = ;\n')
    result = _up(root)
    _assert_one_line(result, "edge.polar:2:")


def test_invalid_seed_server_is_a_one_line_error(tmp_path: Path) -> None:
    root = _project_copy(tmp_path)
    (root / "config" / "servers" / "broken.json").write_text('{"name": "com.portcullis/broken", "version": "1"}')
    result = _up(root)
    _assert_one_line(result, "broken.json")
