"""The local backend (servers/spark/local.py): idempotent setup, a History Server on loopback only, and a
readiness wait that says what went wrong."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from portcullis.testing import free_port
from servers.spark import local
from tests.conftest import Backend as HistoryServer

ROOT = Path(__file__).resolve().parents[3]
_LISTEN = "0A"
_LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* prints them) of the sockets listening on `port`."""
    addresses = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port and fields[3] == _LISTEN:
                addresses.add(address)
    return addresses


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_the_history_server_listens_on_loopback_only(history_server: HistoryServer) -> None:
    addresses = listening_addresses(history_server.port)
    assert addresses and addresses <= _LOOPBACK, addresses


def test_setup_again_with_the_event_logs_present_does_nothing(history_server: HistoryServer) -> None:
    events = history_server.state_dir / "events"
    before = sorted(path.name for path in events.iterdir())
    started = time.monotonic()
    local.setup(history_server.state_dir)
    assert time.monotonic() - started < 2
    assert sorted(path.name for path in events.iterdir()) == before and len(before) == len(local.APPLICATIONS)


def test_the_server_environment_points_at_the_history_server(history_server: HistoryServer) -> None:
    environment = local.server_environment(history_server.state_dir, history_server.port)
    assert environment == {"PORTCULLIS_SPARK_HISTORY_URL": f"http://127.0.0.1:{history_server.port}"}


def test_wait_ready_says_which_url_did_not_answer() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port}/api/v1/applications did not list the 2 local"):
        local.wait_ready(port, timeout=0.5)


def test_start_without_setup_says_to_run_setup(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="run `python -m servers.spark.local setup`"):
        local.start(tmp_path, free_port(), tmp_path / "logs")


def test_the_server_refuses_to_start_with_a_malformed_history_url() -> None:
    # The kit's own settings are checked first, then the resources' (the History Server's) as the app starts.
    environment = {
        "PORTCULLIS_SPARK_HISTORY_URL": "not a url",
        "KIT_SPARK_AUTHZ_CREDENTIAL": "spark-test-service-credential-0123456789",
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "servers.spark", "--port", str(free_port())]
    refused = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "servers.spark: the Spark server is misconfigured: PORTCULLIS_SPARK_HISTORY_URL" in refused.stderr
    assert "Traceback" not in refused.stderr
