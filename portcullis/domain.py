"""The domain MCP servers `portcullis up` runs (servers/sql, spark, airflow, tickets) and their local backends.

Each server's package has a `local` module, the one place that knows how to run its backend on this machine:

    setup(state_dir)                        prepare it, idempotent (a second run is quick and changes nothing)
    start(state_dir, port, log_dir)         start its processes on 127.0.0.1, return them (none for DuckDB)
    wait_ready(port, timeout, state_dir=)   return when it serves, else raise with a clear message
    server_environment(state_dir, port)     the server's `PORTCULLIS_<NAME>_*` settings pointing at it

`portcullis up` does not wait for them: each is set up, then its server started (it needs the credentials the
set-up wrote), then its backend started, in a background thread (`BackendStarter`), with a line on the console
at each step, because some take minutes on a first run (Airflow installs itself into its own virtual
environment). Until a backend is up, its server's tools answer with a clear "unreachable" error, never a hang;
until its server is up, the gateway answers 503 on its route.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["DOMAIN_SERVERS", "BackendStarter", "DomainServer", "domain_server"]


@dataclass(frozen=True)
class DomainServer:
    """A domain server: its route name, its port, its backend's port (0: an embedded engine) and first-run note."""

    name: str
    port: int
    backend_port: int
    first_run: str

    @property
    def module(self) -> str:
        return f"servers.{self.name}"

    def local(self) -> ModuleType:
        """The server's `local` module (its backend on this machine)."""
        return importlib.import_module(f"{self.module}.local")

    @property
    def server_json(self) -> Path:
        return Path(__file__).resolve().parents[1] / "servers" / self.name / "server.json"


DOMAIN_SERVERS: tuple[DomainServer, ...] = (
    DomainServer("sql", 8301, 0, "builds the sample data set in DuckDB (a second)"),
    DomainServer("spark", 8302, 18080, "runs two pyspark jobs for their event logs (about a minute)"),
    DomainServer("airflow", 8303, 8380, "installs Airflow 3 into its own virtual environment (several minutes)"),
    DomainServer("tickets", 8304, 8390, "creates a Redmine database from Debian's redmine package (a minute)"),
)


def domain_server(name: str) -> DomainServer:
    """The domain server named `name`.

    Raises:
        KeyError: no such domain server.
    """
    for server in DOMAIN_SERVERS:
        if server.name == name:
            return server
    raise KeyError(f"no domain server {name!r}; known: {', '.join(s.name for s in DOMAIN_SERVERS)}")


@dataclass
class BackendStarter:
    """Sets up and starts backends in background threads, reporting each step through `say`.

    The processes it starts are appended to `processes` (under `lock`) so the platform stops them by PID.
    """

    state_dir: Path
    log_dir: Path
    say: Callable[[str], None]
    processes: list[tuple[str, subprocess.Popen[bytes]]]
    # Starts the server itself with its backend settings and returns once it is healthy (raises otherwise).
    launch_server: Callable[[DomainServer, dict[str, str]], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: dict[str, bool] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def backend_dir(self, server: DomainServer) -> Path:
        return self.state_dir / "backends" / server.name

    def environment(self, server: DomainServer) -> dict[str, str]:
        """The server's settings for its local backend (nothing needs to be running yet)."""
        values: dict[str, Any] = server.local().server_environment(self.backend_dir(server), server.backend_port)
        return {key: str(value) for key, value in values.items()}

    def start(self, server: DomainServer) -> None:
        """Set up and start `server`'s backend in a background thread."""
        thread = threading.Thread(target=self._run, args=(server,), name=f"backend-{server.name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, server: DomainServer) -> None:
        name = server.name
        self.ready[name] = False
        started = time.monotonic()
        try:
            local = server.local()
            state = self.backend_dir(server)
            state.mkdir(parents=True, exist_ok=True)
            self.say(f"{name}: setting up the local backend (first run {server.first_run})")
            local.setup(state)
            if self._stopping.is_set():
                return
            self.launch_server(server, self.environment(server))
            self.say(f"{name}: server up on 127.0.0.1:{server.port}")
            if server.backend_port and not self._stopping.is_set():
                self.say(f"{name}: starting the backend on 127.0.0.1:{server.backend_port}")
                started_processes = local.start(state, server.backend_port, self.log_dir)
                with self.lock:
                    self.processes.extend((f"{name} backend", process) for process in started_processes)
                local.wait_ready(server.backend_port, 300.0, state_dir=state)
            self.ready[name] = True
            self.say(f"{name}: backend ready ({time.monotonic() - started:.0f} s)")
        except Exception as exc:  # the rest of the platform runs on; this server's tools say what is missing
            self.say(f"{name}: the backend did not start: {exc} (logs in {self.log_dir})")

    def stop(self) -> None:
        """Stop starting anything further (running processes are stopped by the platform)."""
        self._stopping.set()


def console(line: str) -> None:
    print(f"portcullis: {line}", file=sys.stderr, flush=True)
