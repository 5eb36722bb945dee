"""The local Redmine as the launcher uses it: set up once (a second setup only checks), bound to loopback, and
the environment that points the tickets server at it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from portcullis.testing import free_port
from servers.tickets import local
from tests.conftest import Backend


def test_a_second_setup_finds_the_instance_ready_and_changes_nothing(redmine: Backend) -> None:
    key = (redmine.state_dir / "api-key").read_text()
    log = (redmine.state_dir / "setup.log").read_text()
    local.setup(redmine.state_dir)
    assert (redmine.state_dir / "api-key").read_text() == key
    assert (redmine.state_dir / "setup.log").read_text() == log  # no Redmine command ran again


def test_secrets_are_readable_by_their_owner_only(redmine: Backend) -> None:
    for secret in ("api-key", "instance/config/secret_key.txt", "instance/config/database.yml"):
        assert (redmine.state_dir / secret).stat().st_mode & 0o777 == 0o600, secret


def test_redmine_listens_on_loopback_only(redmine: Backend) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    listing = subprocess.run(
        ["ss", "-Hltn", f"sport = :{redmine.port}"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    addresses = [line.split()[3] for line in listing if line.strip()]
    assert addresses == [f"127.0.0.1:{redmine.port}"]


def test_the_server_environment_points_at_redmine_with_a_working_key(redmine: Backend) -> None:
    environment = local.server_environment(redmine.state_dir, redmine.port)
    assert environment["PORTCULLIS_TICKETS_BACKEND"] == "redmine"
    url = environment["PORTCULLIS_TICKETS_REDMINE_URL"]
    assert url == f"http://127.0.0.1:{redmine.port}"
    headers = {"X-Redmine-API-Key": environment["PORTCULLIS_TICKETS_REDMINE_API_KEY"]}
    projects = httpx.get(f"{url}/projects.json", headers=headers).json()["projects"]
    assert sorted(project["identifier"] for project in projects) == ["ads", "platform"]


def test_nothing_is_readable_without_an_api_key(redmine: Backend) -> None:
    assert httpx.get(f"http://127.0.0.1:{redmine.port}/issues.json").status_code == 401


def test_the_instance_is_registered_where_debian_looks_for_it(redmine: Backend) -> None:
    link = local.instance_link(redmine.state_dir)
    assert link.parent == local.REDMINE_ROOT / "instances"
    assert link.resolve() == (redmine.state_dir / "instance").resolve()


def test_start_refuses_a_state_dir_that_is_not_set_up(redmine: Backend, tmp_path: Path) -> None:
    with pytest.raises(local.LocalBackendError, match="is not set up: run `python -m servers.tickets.local setup`"):
        local.start(tmp_path, free_port(), tmp_path)


def test_wait_ready_gives_up_with_a_clear_message() -> None:
    port = free_port()
    with pytest.raises(local.LocalBackendError, match=f"Redmine did not answer on http://127.0.0.1:{port}/login"):
        local.wait_ready(port, timeout=0.3)
