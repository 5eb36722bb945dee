"""Stopping authz_service with SIGTERM runs every worker's clean-up: decisions already answered are in the log,
and the identity store is closed (SQLite leaves no write-ahead log behind)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from portcullis.testing import authz_environment, free_port, free_port_block, wait_http

SECRET = "shutdown-test-credential-0123456789"


def test_sigterm_flushes_the_decision_log_and_closes_the_identity_store(tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port_block(2)
    env = authz_environment(
        tmp_path,
        http_port=http_port,
        grpc_port=grpc_port,
        workers=2,
        service_credentials={"demo": SECRET},
    )
    process = subprocess.Popen([sys.executable, "-m", "authz_service"], env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{http_port}"
        wait_http(f"{base}/readyz", process=process)
        token = httpx.post(
            f"{base}/token",
            data={"grant_type": "client_credentials"},
            auth=("internal-agent", "internal-agent-dev-secret"),
        )
        assert token.status_code == 200
        evaluation = {
            "subject": {"type": "user", "id": "alice", "properties": {"client_id": "claude-desktop"}},
            "action": {"name": "call"},
            "resource": {"type": "tool", "id": "echo", "properties": {"server": "demo"}},
        }
        with httpx.Client(headers={"authorization": f"Bearer {SECRET}"}) as client:
            answers = [client.post(f"{base}/access/v1/evaluation", json=evaluation) for _ in range(50)]
        assert all(answer.status_code == 200 for answer in answers)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert len(lines) >= 50
    assert not (tmp_path / "identity.db-wal").exists()
