"""The local Airflow backend: Airflow 3 in its own virtualenv, on SQLite, bound to 127.0.0.1.

    python -m servers.airflow.local setup [--state-dir D]
    python -m servers.airflow.local start [--state-dir D] [--port N]

`setup` creates `<state>/venv` (apache-airflow pinned; skipped when its marker says that version is installed),
generates the secrets once (`<state>/secrets.json`, mode 0600: the service account's password, the JWT secret
shared by the API server and the scheduler, the API secret key, the Fernet key), writes the simple auth
manager's password file itself (so Airflow generates and prints none), and runs `airflow db migrate`
(idempotent). `start` runs `airflow api-server`, `airflow scheduler` and `airflow dag-processor` (never
`airflow standalone`, which listens on every interface). The scheduler's log server is skipped
(`--skip-serve-logs`): it would bind every interface, and the API server reads the task logs straight from
`<state>/home/logs` on this machine. Tasks run under the LocalExecutor, which Airflow 3 allows on SQLite.

The sample DAGs are servers/airflow/dags/ (owners `ads-eng` and `platform`; `ads_campaign_sync` fails).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servers.airflow.settings import DEFAULT_API_PORT, DEFAULT_USERNAME

__all__ = [
    "AIRFLOW_VERSION",
    "DAGS_DIR",
    "DEFAULT_STATE_DIR",
    "BackendError",
    "airflow_environment",
    "server_environment",
    "setup",
    "start",
    "stop",
    "wait_ready",
]

AIRFLOW_VERSION = "3.3.2"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
DEFAULT_STATE_DIR = Path(".portcullis/backends/airflow")
DAGS_DIR = Path(__file__).resolve().with_name("dags")
LOCAL_CONSTRAINTS = Path(__file__).resolve().with_name(f"constraints-{AIRFLOW_VERSION}-py{PYTHON}.txt")
OFFICIAL_CONSTRAINTS = (
    f"https://raw.githubusercontent.com/apache/airflow/constraints-{AIRFLOW_VERSION}/constraints-{PYTHON}.txt"
)
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
MARKER = ".portcullis-airflow"
PROCESSES = ("api-server", "scheduler", "dag-processor")
_STRIPPED_ENV_PREFIXES = ("AIRFLOW", "PORTCULLIS_", "KIT_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


class BackendError(RuntimeError):
    """The local Airflow cannot be set up, started or reached; the message says what to do."""


def _say(message: str) -> None:
    print(f"airflow-local: {message}", file=sys.stderr, flush=True)


# -- setup -------------------------------------------------------------------------------------------------------


def setup(state_dir: Path) -> None:
    """Install Airflow into `<state_dir>/venv` and migrate its database; cheap and safe to run again.

    Raises:
        BackendError: the virtualenv, the install or the migration failed.
    """
    state = state_dir.resolve()
    (state / "home").mkdir(parents=True, exist_ok=True)
    _install(state)
    values = _secrets(state)
    passwords = state / "passwords.json"
    passwords.write_text(json.dumps({DEFAULT_USERNAME: values["password"]}) + "\n")
    passwords.chmod(0o600)
    started = time.monotonic()
    _run([str(_airflow(state)), "db", "migrate"], airflow_environment(state, DEFAULT_API_PORT), state / "setup.log")
    _say(f"airflow db migrate: {time.monotonic() - started:.1f}s")


def _install(state: Path) -> None:
    venv = state / "venv"
    wanted = f"apache-airflow=={AIRFLOW_VERSION} python{PYTHON}\n"
    marker = venv / MARKER
    if marker.is_file() and marker.read_text() == wanted and _airflow(state).is_file():
        _say(f"apache-airflow {AIRFLOW_VERSION} already installed in {venv}")
        return
    started = time.monotonic()
    if not (venv / "bin" / "python").is_file():
        _say(f"creating virtualenv {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], None, state / "setup.log")
    constraints = _constraints(state)
    _say(f"installing apache-airflow {AIRFLOW_VERSION} (constraints: {constraints.name}); this takes a minute or two")
    _run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"apache-airflow=={AIRFLOW_VERSION}", "-c", str(constraints)],
        None,
        state / "setup.log",
    )
    marker.write_text(wanted)
    _say(f"venv install: {time.monotonic() - started:.1f}s")


def _constraints(state: Path) -> Path:
    """Airflow's official constraints file when it can be fetched, else the one verified here (in the repo)."""
    try:
        response = httpx.get(OFFICIAL_CONSTRAINTS, timeout=5.0, follow_redirects=True)
    except httpx.HTTPError:
        return LOCAL_CONSTRAINTS
    if response.status_code != 200 or "==" not in response.text:
        return LOCAL_CONSTRAINTS
    official = state / f"constraints-{AIRFLOW_VERSION}-py{PYTHON}.official.txt"
    official.write_text(response.text)
    return official


def _secrets(state: Path) -> dict[str, str]:
    """The backend's secrets, generated on the first setup and kept (mode 0600) so restarts agree."""
    path = state / "secrets.json"
    if path.is_file():
        values: dict[str, str] = json.loads(path.read_text())
        return values
    values = {
        "password": secrets.token_urlsafe(24),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def _run(command: list[str], env: dict[str, str] | None, log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if done.returncode != 0:
        raise BackendError(f"{' '.join(command[:3])} ... failed with exit code {done.returncode}; see {log}")


def _airflow(state: Path) -> Path:
    return state / "venv" / "bin" / "airflow"


# -- environment -------------------------------------------------------------------------------------------------


def airflow_environment(state_dir: Path, port: int) -> dict[str, str]:
    """The environment of every Airflow process of this backend (holds its secrets: never log it).

    Raises:
        BackendError: `setup` has not run (no secrets yet).
    """
    state = state_dir.resolve()
    values = _read_secrets(state)
    base = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED_ENV_PREFIXES)}
    api = f"http://127.0.0.1:{port}"
    return {
        **base,
        "PATH": f"{state / 'venv' / 'bin'}{os.pathsep}{base.get('PATH', '')}",
        "AIRFLOW_HOME": str(state / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEFAULT_USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state / "passwords.json"),
        "AIRFLOW__CORE__FERNET_KEY": values["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{state / 'airflow.db'}",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": values["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": values["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }


def server_environment(state_dir: Path, port: int) -> dict[str, str]:
    """The `PORTCULLIS_AIRFLOW_*` values pointing the MCP server at this backend.

    Raises:
        BackendError: `setup` has not run (no service account password yet).
    """
    return {
        "PORTCULLIS_AIRFLOW_API_URL": f"http://127.0.0.1:{port}",
        "PORTCULLIS_AIRFLOW_USERNAME": DEFAULT_USERNAME,
        "PORTCULLIS_AIRFLOW_PASSWORD": _read_secrets(state_dir.resolve())["password"],
    }


def _read_secrets(state: Path) -> dict[str, str]:
    path = state / "secrets.json"
    if not path.is_file():
        raise BackendError(f"no {path}: run `python -m servers.airflow.local setup --state-dir {state}` first")
    values: dict[str, str] = json.loads(path.read_text())
    return values


# -- start, wait, stop -------------------------------------------------------------------------------------------


def start(state_dir: Path, port: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start the API server (on 127.0.0.1:`port`), the scheduler and the DAG processor; logs go to `log_dir`.

    Each runs in its own process group, so `stop` ends the workers it forked with it.

    Raises:
        BackendError: `setup` has not run.
    """
    state = state_dir.resolve()
    if not _airflow(state).is_file():
        raise BackendError(f"Airflow is not installed in {state / 'venv'}: run setup first")
    env = airflow_environment(state, port)
    log_dir.mkdir(parents=True, exist_ok=True)
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in PROCESSES:
            with (log_dir / f"airflow-{name}.log").open("ab") as out:
                processes.append(
                    subprocess.Popen(
                        [str(_airflow(state)), *commands[name]],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        cwd=state,
                        start_new_session=True,
                    )
                )
    except BaseException:
        stop(processes)
        raise
    return processes


def wait_ready(port: int, timeout: float, *, state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Wait until the API, the scheduler and the DAG processor are healthy and every sample DAG is parsed.

    Raises:
        BackendError: not ready within `timeout` (the message says what was missing), or a DAG fails to import.
    """
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    missing = "the API server"
    expected = {path.stem for path in DAGS_DIR.glob("*.py")}
    token = ""
    with httpx.Client(base_url=api, timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                missing = _not_ready(http, token, len(expected))
                if missing == "a token":
                    token = _login(http, state_dir.resolve())
                    missing = _not_ready(http, token, len(expected))
            except httpx.HTTPError:
                missing = "the API server"
            if not missing:
                return
            time.sleep(0.25)
    raise BackendError(f"Airflow at {api} not ready within {timeout:g}s: waiting for {missing}")


def _not_ready(http: httpx.Client, token: str, dag_count: int) -> str:
    """What is not ready yet ("" when all is)."""
    health = http.get("/api/v2/monitor/health")
    if health.status_code != 200:
        return "the API server"
    status = health.json()
    for part in ("metadatabase", "scheduler", "dag_processor"):
        if (status.get(part) or {}).get("status") != "healthy":
            return f"the {part.replace('_', ' ')}"
    if not token:
        return "a token"
    headers = {"Authorization": f"Bearer {token}"}
    errors = http.get("/api/v2/importErrors", headers=headers).json()
    if errors.get("total_entries"):
        first = errors["import_errors"][0]
        raise BackendError(f"DAG file {first.get('filename')} failed to import: {first.get('stack_trace', '')[-300:]}")
    dags = http.get("/api/v2/dags", headers=headers, params={"limit": 1}).json()
    if int(dags.get("total_entries", 0)) < dag_count:
        return f"the sample DAGs to be parsed ({dags.get('total_entries', 0)} of {dag_count})"
    return ""


def _login(http: httpx.Client, state: Path) -> str:
    password = _read_secrets(state)["password"]
    response = http.post("/auth/token", json={"username": DEFAULT_USERNAME, "password": password})
    if response.status_code != 201:
        raise BackendError(f"the local service account cannot log in ({response.status_code}); rerun setup")
    return str(response.json()["access_token"])


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """Stop the processes `start` returned, by PID: SIGTERM, then SIGKILL to their own process groups."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its group: workers it forked; the group's id is its PID
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()


# -- CLI ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.airflow.local")
    parser.add_argument("command", choices=["setup", "start"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_API_PORT)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    try:
        setup(args.state_dir)
        if args.command == "setup":
            return 0
        started = time.monotonic()
        processes = start(args.state_dir, args.port, args.state_dir / "logs")
        try:
            wait_ready(args.port, args.timeout, state_dir=args.state_dir)
            _say(f"ready at http://127.0.0.1:{args.port} in {time.monotonic() - started:.1f}s; Ctrl-C stops it")
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while all(process.poll() is None for process in processes):
                time.sleep(1)
            _say("an Airflow process exited; stopping the others")
            return 1
        finally:
            stop(processes)
    except BackendError as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
