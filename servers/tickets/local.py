"""The local ticket tracker: Debian's Redmine 5, run as our own instance with SQLite under the state directory.

    apt-get install -y --no-install-recommends redmine redmine-sqlite ruby-webrick   # once, as root
    python -m servers.tickets.local setup [--state-dir D]
    python -m servers.tickets.local start [--state-dir D] [--port N]

Debian installs Redmine's code in /usr/share/redmine and runs one Rails app per *instance*: the instance named
by `REDMINE_INSTANCE` lives in /usr/share/redmine/instances/<name> (a symlink to /var/lib/redmine/<name>) and
holds its own config/database.yml, secret, log, tmp and files. The system-wide `default` instance is left alone:
`setup` builds an instance in <state_dir>/instance and registers it with one symlink,
/var/lib/redmine/portcullis-<hash of the state dir> -> <state_dir>/instance (the only write outside the state
dir; it needs root once, and is idempotent). Debian's Redmine has no web server gem, so our own Gemfile (in the
state dir, `BUNDLE_GEMFILE`) adds Debian's webrick to Redmine's.

`setup` migrates the database, loads Redmine's default data (trackers, statuses, workflows, roles), enables the
REST API, requires a login for everything, and creates the projects `ads` and `platform` and a non-admin service
account (`portcullis-bot`, role Developer in both) whose API key goes to <state_dir>/api-key (mode 0600). A
second `setup` finds the ready marker and returns at once. `start` runs `rails server` (WEBrick) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from portcullis.processes import stop_process
from servers.tickets.settings import DEFAULT_REDMINE_PORT, ENV_PREFIX

__all__ = [
    "APT_PACKAGES",
    "DEFAULT_PORT",
    "DEFAULT_STATE_DIR",
    "LocalBackendError",
    "instance_link",
    "main",
    "server_environment",
    "setup",
    "start",
    "unregister",
    "wait_ready",
]

REDMINE_ROOT = Path("/usr/share/redmine")
APT_PACKAGES = ("redmine", "redmine-sqlite", "ruby-webrick")
DEFAULT_PORT = DEFAULT_REDMINE_PORT
DEFAULT_STATE_DIR = Path(".portcullis/backends/tickets")
SETUP_SCRIPT = Path(__file__).with_name("redmine_setup.rb")
_INSTANCE_DIRS = ("config", "log", "files", "public/plugin_assets", "tmp/pids", "tmp/cache", "tmp/sessions")
_STEP_TIMEOUT = 600.0


class LocalBackendError(RuntimeError):
    """The local Redmine cannot be set up, started or reached; the message says what to do."""


def _say(message: str) -> None:
    print(f"tickets/redmine: {message}", file=sys.stderr, flush=True)


def instance_name(state_dir: Path) -> str:
    """The Redmine instance name of a state directory (stable, unique per directory)."""
    return "portcullis-" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


def instance_link(state_dir: Path) -> Path:
    """Where Debian's Redmine looks for the state directory's instance."""
    return REDMINE_ROOT / "instances" / instance_name(state_dir)


def _instance(state_dir: Path) -> Path:
    return state_dir.resolve() / "instance"


def _environment(state_dir: Path) -> dict[str, str]:
    """The environment Redmine's commands run with: our instance, our Gemfile, production."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BUNDLE_", "RUBY", "GEM_"))}
    env.update(
        REDMINE_INSTANCE=instance_name(state_dir),
        BUNDLE_GEMFILE=str(state_dir.resolve() / "Gemfile"),
        RAILS_ENV="production",
    )
    return env


def _write_if_changed(path: Path, content: str, *, mode: int = 0o644) -> None:
    if not path.is_file() or path.read_text() != content:
        path.write_text(content)
    path.chmod(mode)


def _stamp() -> str:
    """What a ready instance was built from: Redmine's package version and our setup script."""
    try:
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "redmine"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        version = ""
    script = hashlib.sha256(SETUP_SCRIPT.read_bytes()).hexdigest()
    return json.dumps({"redmine": version or "unknown", "setup_script": script}, sort_keys=True)


def _is_ready(state_dir: Path) -> bool:
    marker = state_dir / "ready"
    return (
        marker.is_file()
        and marker.read_text() == _stamp()
        and (state_dir / "api-key").is_file()
        and (_instance(state_dir) / "db" / "redmine.sqlite3").is_file()
        and instance_link(state_dir).resolve() == _instance(state_dir)
    )


def _check_installed() -> None:
    if not (REDMINE_ROOT / "bin" / "rails").is_file():
        packages = " ".join(APT_PACKAGES)
        raise LocalBackendError(
            f"Redmine is not installed ({REDMINE_ROOT} is missing): as root, run "
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages}"
        )


def _layout(state_dir: Path) -> None:
    """The instance's folders and files, and Debian's symlink to them (the only write outside `state_dir`)."""
    instance = _instance(state_dir)
    for folder in (*_INSTANCE_DIRS, "db"):
        (instance / folder).mkdir(parents=True, exist_ok=True)
    database = instance / "db" / "redmine.sqlite3"
    _write_if_changed(
        instance / "config" / "database.yml",
        f"production:\n  adapter: sqlite3\n  database: {database}\n  timeout: 5000\n",
        mode=0o600,
    )
    secret = instance / "config" / "secret_key.txt"
    if not secret.is_file():
        descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(64))
    secret.chmod(0o600)
    # Redmine's Gemfile finds Gemfile.local and plugins next to itself: it is evaluated from where it is.
    _write_if_changed(
        state_dir.resolve() / "Gemfile",
        f'eval_gemfile "{REDMINE_ROOT / "Gemfile"}"\ngem "webrick"\n',
    )
    link = instance_link(state_dir)
    if link.is_symlink() and Path(os.readlink(link)) == instance:
        return
    try:
        if link.is_symlink():
            link.unlink()
        link.symlink_to(instance)
    except OSError as exc:
        raise LocalBackendError(
            f"cannot register the Redmine instance at {link} ({exc.strerror}): run setup once as root"
        ) from None


def _run(step: str, command: list[str], state_dir: Path, log: Path) -> None:
    """One Redmine command in our instance, its output appended to `log`.

    Raises:
        LocalBackendError: it failed or timed out (the message ends with the log's last lines).
    """
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        try:
            result = subprocess.run(
                command,
                cwd=REDMINE_ROOT,
                env=_environment(state_dir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_STEP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalBackendError(f"{step} took more than {_STEP_TIMEOUT:g}s; see {log}") from None
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise LocalBackendError(f"{step} failed (exit {result.returncode}); see {log}:\n{tail}")
    _say(f"{step}: {time.monotonic() - started:.1f}s")


def setup(state_dir: Path) -> None:
    """Prepare the local Redmine in `state_dir` (see the module docstring). Cheap when already done.

    Raises:
        LocalBackendError: Redmine is not installed, the instance cannot be registered, or a step failed.
    """
    _check_installed()
    state_dir.mkdir(parents=True, exist_ok=True)
    if _is_ready(state_dir):
        _say(f"ready in {state_dir}")
        return
    started = time.monotonic()
    _say(f"setting up in {state_dir}")
    (state_dir / "ready").unlink(missing_ok=True)
    # A lock resolved against another set of Debian gems would refuse to load: resolve again.
    (state_dir / "Gemfile.lock").unlink(missing_ok=True)
    _layout(state_dir)
    log = state_dir / "setup.log"
    _run("database migration", ["bin/rake", "db:migrate"], state_dir, log)
    key_file = state_dir.resolve() / "api-key"
    _run(
        "default data, REST API, projects, service account",
        ["bin/rails", "runner", str(SETUP_SCRIPT), str(key_file)],
        state_dir,
        log,
    )
    key_file.chmod(0o600)
    (state_dir / "ready").write_text(_stamp())
    _say(f"set up in {time.monotonic() - started:.1f}s")


def start(state_dir: Path, port: int = DEFAULT_PORT, log_dir: Path | None = None) -> list[subprocess.Popen[bytes]]:
    """Run Redmine (WEBrick) on 127.0.0.1:`port`, its output in <log_dir>/redmine.log. Stop it by its PID.

    Raises:
        LocalBackendError: `setup` has not completed in `state_dir`.
    """
    _check_installed()
    if not _is_ready(state_dir):
        raise LocalBackendError(
            f"the local Redmine in {state_dir} is not set up: run `python -m servers.tickets.local setup`"
        )
    log_dir = log_dir or state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pid_file = _instance(state_dir) / "tmp" / "pids" / f"server-{port}.pid"
    pid_file.unlink(missing_ok=True)  # Rails refuses to start over a pid file a killed server left behind
    command = ["bin/rails", "server", "-u", "webrick", "-b", "127.0.0.1", "-p", str(port), "-P", str(pid_file)]
    with (log_dir / "redmine.log").open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REDMINE_ROOT, env=_environment(state_dir), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    _say(f"starting on http://127.0.0.1:{port} (pid {process.pid}, log {log_dir / 'redmine.log'})")
    return [process]


def wait_ready(port: int, timeout: float = 60.0, *, state_dir: Path | None = None) -> None:
    """Return once Redmine answers on 127.0.0.1:`port` (its login page), polling with a deadline.

    Raises:
        LocalBackendError: no answer within `timeout` seconds.
    """
    url = f"http://127.0.0.1:{port}/login"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise LocalBackendError(f"Redmine did not answer on {url} within {timeout:g}s; see its log (redmine.log)")


def server_environment(state_dir: Path, port: int = DEFAULT_PORT) -> dict[str, str]:
    """The `PORTCULLIS_TICKETS_*` values pointing the tickets server at this local Redmine.

    Raises:
        LocalBackendError: `setup` has not written the API key yet.
    """
    key_file = state_dir / "api-key"
    if not key_file.is_file():
        raise LocalBackendError(f"no API key in {state_dir}: run `python -m servers.tickets.local setup`")
    return {
        f"{ENV_PREFIX}BACKEND": "redmine",
        f"{ENV_PREFIX}REDMINE_URL": f"http://127.0.0.1:{port}",
        f"{ENV_PREFIX}REDMINE_API_KEY": key_file.read_text().strip(),
    }


def unregister(state_dir: Path) -> None:
    """Remove Debian's symlink to the state directory's instance (a throw-away state directory's, in tests)."""
    link = instance_link(state_dir)
    if link.is_symlink():
        link.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.tickets.local")
    parser.add_argument("command", choices=["setup", "start"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        setup(args.state_dir)
        if args.command == "start":
            _serve(args.state_dir, args.port)
    except LocalBackendError as exc:
        print(f"servers.tickets.local: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve(state_dir: Path, port: int) -> None:
    (process,) = start(state_dir, port, state_dir / "logs")
    try:
        wait_ready(port)
        _say(f"ready on http://127.0.0.1:{port}; API key in {state_dir / 'api-key'}; Ctrl-C stops it")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)


if __name__ == "__main__":
    sys.exit(main())
