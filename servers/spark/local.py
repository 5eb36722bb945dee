"""The local backend: the real Spark History Server (from the pyspark package) over event logs of two small
local Spark applications, one that succeeds and one that fails while its driver exits 0.

    python -m servers.spark.local setup [--state-dir D]          # run the two jobs once (about 10-15 s)
    python -m servers.spark.local start [--state-dir D] [--port N]  # the History Server, until Ctrl-C

`setup` writes `<state_dir>/events` (the event logs) and, once both jobs ran, `<state_dir>/jobs.done`; with
that marker present it does nothing. `start` runs `$SPARK_HOME/bin/spark-class
org.apache.spark.deploy.history.HistoryServer` with SPARK_HOME = the pyspark package folder, bound to
127.0.0.1 (SPARK_LOCAL_IP: the History Server's UI binds 0.0.0.0 without it). Java 17+ must be on the PATH
or in JAVA_HOME.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from portcullis.processes import stop_process

__all__ = [
    "APPLICATIONS",
    "DEFAULT_HISTORY_PORT",
    "server_environment",
    "setup",
    "start",
    "wait_ready",
]

DEFAULT_HISTORY_PORT = 18080
# The local applications (servers/spark/jobs.py): job name -> Spark application name.
APPLICATIONS = {"rollup": "daily-sales-rollup", "import": "nightly-customer-import"}
DEFAULT_STATE_DIR = Path(".portcullis/backends/spark")
_HOST = "127.0.0.1"
_JOB_TIMEOUT_SECONDS = 300
_DONE = "jobs.done"
_REPOSITORY = Path(__file__).resolve().parents[2]
_HISTORY_SERVER_CLASS = "org.apache.spark.deploy.history.HistoryServer"


def _say(message: str) -> None:
    print(f"spark: {message}", file=sys.stderr, flush=True)


def spark_home() -> Path:
    """The pyspark package folder, a complete SPARK_HOME (bin/spark-class, jars/).

    Raises:
        RuntimeError: pyspark is not installed or has no spark-class.
    """
    try:
        import pyspark
    except ImportError:
        raise RuntimeError("pyspark is not installed: pip install 'pyspark>=4,<5'") from None
    home = Path(pyspark.__file__).parent
    if not (home / "bin" / "spark-class").is_file():
        raise RuntimeError(f"{home} has no bin/spark-class: not a complete pyspark installation")
    return home


def _spark_environment(state_dir: Path) -> dict[str, str]:
    conf_dir = state_dir / "conf"  # empty: no spark-defaults.conf or log4j2 file from elsewhere applies
    conf_dir.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(filter(None, [str(_REPOSITORY), os.environ.get("PYTHONPATH", "")]))
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": _HOST,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": pythonpath,  # the Python workers import the UDFs of servers.spark.jobs
    }


def setup(state_dir: Path) -> None:
    """Run the two local Spark applications (in parallel subprocesses) unless their event logs are there.

    Raises:
        RuntimeError: java or pyspark is missing, or a job failed or timed out (its log is named).
    """
    state_dir = state_dir.resolve()
    events = state_dir / "events"
    if (state_dir / _DONE).is_file() and events.is_dir() and any(events.iterdir()):
        _say(f"event logs already in {events}")
        return
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise RuntimeError("no java on the PATH and no JAVA_HOME: the local Spark jobs need Java 17 or later")
    shutil.rmtree(events, ignore_errors=True)  # a half-finished earlier run
    events.mkdir(parents=True)
    environment = _spark_environment(state_dir)
    started = time.monotonic()
    _say(f"running {len(APPLICATIONS)} local Spark jobs into {events} ...")
    running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for job in APPLICATIONS:
        log = state_dir / f"job-{job}.log"
        with log.open("wb") as out:
            command = [sys.executable, "-m", "servers.spark.jobs", job, str(events)]
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment, cwd=state_dir
            )
        running.append((job, log, process))
    failures = [f"{job} (see {log})" for job, log, process in running if not _finished(process)]
    if failures:
        raise RuntimeError(f"local Spark job(s) failed: {', '.join(failures)}")
    (state_dir / _DONE).write_text(" ".join(APPLICATIONS.values()) + "\n")
    _say(f"event logs of {', '.join(APPLICATIONS.values())} written in {time.monotonic() - started:.1f} s")


def _finished(process: subprocess.Popen[bytes]) -> bool:
    try:
        return process.wait(timeout=_JOB_TIMEOUT_SECONDS) == 0
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


def _properties(state_dir: Path, port: int) -> Path:
    events = (state_dir / "events").resolve()
    lines = [
        f"spark.history.fs.logDirectory {events.as_uri()}",
        f"spark.history.ui.port {port}",
        "spark.history.fs.update.interval 2s",
        "spark.history.fs.cleaner.enabled false",
        "spark.ui.showConsoleProgress false",
    ]
    path = state_dir / "history-server.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def start(state_dir: Path, port: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start the History Server on 127.0.0.1:`port` over `<state_dir>/events` (its output in `log_dir`).

    Raises:
        RuntimeError: `setup` has not run, or pyspark is missing.
    """
    state_dir = state_dir.resolve()
    if not (state_dir / "events").is_dir():
        raise RuntimeError(f"no event logs in {state_dir / 'events'}: run `python -m servers.spark.local setup`")
    environment = _spark_environment(state_dir)
    environment.setdefault("SPARK_DAEMON_MEMORY", "512m")
    command = [
        str(spark_home() / "bin" / "spark-class"),
        _HISTORY_SERVER_CLASS,
        "--properties-file",
        str(_properties(state_dir, port)),
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "spark-history-server.log").open("ab") as out:
        # spark-class ends in `exec java ...`: this PID is the JVM's, so stopping it by PID stops the server.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment, cwd=state_dir
        )
    return [process]


def wait_ready(port: int, timeout: float, *, state_dir: Path | None = None) -> None:
    """Wait until the History Server on 127.0.0.1:`port` lists the local applications.

    Raises:
        TimeoutError: not within `timeout` seconds (what it last answered is said).
    """
    url = f"http://{_HOST}:{port}/api/v1/applications"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            listed = response.json() if response.status_code == 200 else None
            if isinstance(listed, list) and len(listed) >= len(APPLICATIONS):
                return
            last = f"HTTP {response.status_code}, {len(listed) if isinstance(listed, list) else 0} application(s)"
        except (httpx.HTTPError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise TimeoutError(
        f"the Spark History Server at {url} did not list the {len(APPLICATIONS)} local applications within "
        f"{timeout:g}s (last: {last})"
    )


def server_environment(state_dir: Path, port: int) -> dict[str, str]:
    """The settings that point the Spark server at this History Server."""
    return {"PORTCULLIS_SPARK_HISTORY_URL": f"http://{_HOST}:{port}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.spark.local")
    parser.add_argument("command", choices=["setup", "start"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_HISTORY_PORT)
    args = parser.parse_args(argv)
    try:
        setup(args.state_dir)
        if args.command == "start":
            _serve(args.state_dir, args.port)
    except (RuntimeError, TimeoutError) as exc:
        print(f"servers.spark.local: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve(state_dir: Path, port: int) -> None:
    (process,) = start(state_dir, port, state_dir / "logs")
    # Stopped by PID (SIGTERM) like Ctrl-C: the History Server is stopped with it, never left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_ready(port, timeout=60)
        _say(f"History Server on http://{_HOST}:{port} (PORTCULLIS_SPARK_HISTORY_URL); Ctrl-C stops it")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)


if __name__ == "__main__":
    sys.exit(main())
