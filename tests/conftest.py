"""Real local backends shared by a whole test session: started once, used by the servers' own tests
(tests/servers/<name>/) and by the end-to-end tests through the gateway (tests/e2e/), stopped by PID."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portcullis.testing import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Backend:
    """A running local backend: its state folder, port and the server settings that point at it."""

    state_dir: Path
    port: int
    pids: tuple[int, ...]
    environment: dict[str, str]


@pytest.fixture(scope="session")
def history_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The real Spark History Server over the event logs of the two local pyspark jobs (servers/spark/local.py)."""
    from servers.spark import local

    state_dir = tmp_path_factory.mktemp("spark-backend")
    local.setup(state_dir)
    port = free_port()
    processes = local.start(state_dir, port, state_dir / "logs")
    try:
        local.wait_ready(port, timeout=90)
        yield Backend(state_dir, port, (processes[0].pid,), local.server_environment(state_dir, port))
    finally:
        for process in processes:
            stop_process(process)


REQUIRE_REDMINE = "PORTCULLIS_REQUIRE_REDMINE"


@pytest.fixture(scope="session")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The real Redmine from Debian's packages, an instance of our own (servers/tickets/local.py).

    Skipped without /usr/share/redmine unless PORTCULLIS_REQUIRE_REDMINE is set (CI sets it): then it fails,
    saying what to install.
    """
    from servers.tickets import local

    if not local.REDMINE_ROOT.is_dir() and not os.environ.get(REQUIRE_REDMINE):
        pytest.skip(
            f"Redmine is not installed ({local.REDMINE_ROOT} is missing): apt-get install -y "
            f"--no-install-recommends {' '.join(local.APT_PACKAGES)}; set {REQUIRE_REDMINE}=1 to fail instead"
        )
    state_dir = tmp_path_factory.mktemp("tickets-redmine")
    try:
        local.setup(state_dir)
        port = free_port()
        (process,) = local.start(state_dir, port, state_dir / "logs")
        try:
            local.wait_ready(port, timeout=120)
            yield Backend(state_dir, port, (process.pid,), local.server_environment(state_dir, port))
        finally:
            stop_process(process)
    finally:
        local.unregister(state_dir)


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Airflow 3 in its own virtualenv on SQLite: api-server, scheduler, dag-processor (servers/airflow/local.py).

    The virtualenv is the slow part, so it is kept between runs under `$PORTCULLIS_BACKENDS_DIR/airflow-test`
    (default `.portcullis/backends/airflow-test`; a fresh clone pays the install once). The database and task
    logs are new each session, so every run starts from the sample DAGs as shipped.
    """
    from servers.airflow import local

    state_dir = Path(os.environ.get("PORTCULLIS_BACKENDS_DIR") or ROOT / ".portcullis" / "backends") / "airflow-test"
    for stale in ("airflow.db", "home"):  # a fresh database and log folder; the virtualenv is kept
        path = state_dir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    local.setup(state_dir)
    port = free_port()
    processes = local.start(state_dir, port, tmp_path_factory.mktemp("airflow-logs"))
    try:
        local.wait_ready(port, 180.0, state_dir=state_dir)
        pids = tuple(process.pid for process in processes)
        yield Backend(state_dir, port, pids, local.server_environment(state_dir, port))
    finally:
        local.stop(processes)
