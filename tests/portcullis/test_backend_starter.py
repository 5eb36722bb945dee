"""`portcullis up` sets up each domain server's backend, starts the server, then the backend, in the background, and
says what happens, step by step."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from portcullis.domain import BackendStarter, DomainServer
from portcullis.testing import free_port, stop_process
from tests.conftest import Backend


def _wait(starter: BackendStarter, name: str, lines: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.startswith(f"{name}: backend ready") or "did not start" in line for line in lines):
            return
        time.sleep(0.1)
    raise AssertionError(f"no outcome for {name}: {lines}")


def test_a_backend_is_set_up_started_and_announced_ready(tmp_path: Path, history_server: Backend) -> None:
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "spark").symlink_to(history_server.state_dir)  # set up already: setup is a no-op
    lines: list[str] = []
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    launched: list[tuple[str, dict[str, str]]] = []
    starter = BackendStarter(
        tmp_path, tmp_path, lines.append, processes, lambda s, env: launched.append((s.name, env)), threading.Lock()
    )
    port = free_port()
    server = DomainServer("spark", free_port(), port, "runs two pyspark jobs")
    try:
        assert starter.environment(server) == {"PORTCULLIS_SPARK_HISTORY_URL": f"http://127.0.0.1:{port}"}
        starter.start(server)
        _wait(starter, "spark", lines)
    finally:
        for _, process in processes:
            stop_process(process)
    assert lines[0] == "spark: setting up the local backend (first run runs two pyspark jobs)"
    assert lines[1] == f"spark: server up on 127.0.0.1:{server.port}"
    assert lines[2] == f"spark: starting the backend on 127.0.0.1:{port}"
    assert lines[3].startswith("spark: backend ready (")
    assert launched == [("spark", {"PORTCULLIS_SPARK_HISTORY_URL": f"http://127.0.0.1:{port}"})]
    assert [name for name, _ in processes] == ["spark backend"] and starter.ready == {"spark": True}


def test_a_backend_that_cannot_start_is_reported_and_leaves_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "backends").write_text("not a folder")  # its state folder cannot be made
    lines: list[str] = []
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    launched: list[str] = []
    starter = BackendStarter(tmp_path, tmp_path, lines.append, processes, lambda s, env: launched.append(s.name))
    starter.start(DomainServer("spark", free_port(), free_port(), "runs two pyspark jobs"))
    _wait(starter, "spark", lines)
    assert lines[-1].startswith("spark: the backend did not start: ")
    assert lines[-1].endswith(f"(logs in {tmp_path})")
    assert processes == [] and launched == [] and starter.ready == {"spark": False}
