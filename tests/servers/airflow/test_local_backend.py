"""The local Airflow backend: it listens on 127.0.0.1 only, setup is cheap to re-run, and its environment is its
own (nothing inherited decides how Airflow runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from servers.airflow import local
from tests.conftest import Backend

LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def group_pids(groups: tuple[int, ...]) -> set[int]:
    """Every live process whose process group is one the backend started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in groups:
                found.add(int(entry.name))
    return found


def listening_addresses(pids: set[int]) -> list[tuple[str, int]]:
    """(hex address, port) of every TCP socket these processes listen on (from /proc, no tools needed)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            address, port = parts[1].split(":")
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                found.append((address, int(port, 16)))
    return found


def test_the_backend_listens_on_loopback_only(airflow: Backend) -> None:
    addresses = listening_addresses(group_pids(airflow.pids))
    assert (("0100007F", airflow.port)) in addresses
    assert all(address in LOOPBACK for address, _ in addresses), addresses


def test_setup_again_skips_the_install(airflow: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    local.setup(airflow.state_dir)
    assert f"apache-airflow {local.AIRFLOW_VERSION} already installed" in capsys.readouterr().err


def test_the_environment_is_the_backends_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets.json").write_text(
        json.dumps({"password": "pw", "jwt_secret": "j", "api_secret_key": "k", "fernet_key": "f"})
    )
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("PORTCULLIS_AIRFLOW_PASSWORD", "the-server's")
    env = local.airflow_environment(tmp_path, 18380)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18380/execution/"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path.resolve() / 'airflow.db'}"
    assert "PYTHONPATH" not in env and "PORTCULLIS_AIRFLOW_PASSWORD" not in env
    assert local.server_environment(tmp_path, 18380) == {
        "PORTCULLIS_AIRFLOW_API_URL": "http://127.0.0.1:18380",
        "PORTCULLIS_AIRFLOW_USERNAME": "portcullis",
        "PORTCULLIS_AIRFLOW_PASSWORD": "pw",
    }


def test_the_server_environment_before_setup_says_to_run_setup(tmp_path: Path) -> None:
    with pytest.raises(local.BackendError, match="run `python -m servers.airflow.local setup"):
        local.server_environment(tmp_path, 18380)
