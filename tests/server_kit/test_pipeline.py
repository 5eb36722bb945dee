"""`portcullis server new|validate`: a fresh scaffold passes its own tests and validation; each thing the platform
insists on is refused clearly when broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portcullis.cli import main
from portcullis.server_checks import validate_project
from server_kit.project import ServerProject

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def new(tmp_path: Path, name: str = "weather", *extra: str) -> Path:
    assert main(["server", "new", name, "--path", str(tmp_path / "servers"), *extra]) == 0
    return tmp_path / "servers" / name.replace("-", "_")


def errors(folder: Path) -> list[str]:
    findings = validate_project(ServerProject.at(folder), POLICIES)
    return [f"{f.where}: {f.message}" for f in findings if f.level == "error"]


def test_a_fresh_scaffold_passes_its_own_tests(tmp_path: Path) -> None:
    folder = new(tmp_path, "tide-tables", "--namespace", "com.portcullis.data", "--owner-team", "data-platform")
    env = {**os.environ, "PORTCULLIS_POLICY_DIR": str(POLICIES)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout


def test_a_fresh_scaffold_passes_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = new(tmp_path)
    assert main(["server", "validate", str(folder)]) == 0
    assert "ok: com.portcullis/weather 0.1.0" in capsys.readouterr().out


def test_the_scaffold_is_what_the_registry_accepts(tmp_path: Path) -> None:
    server = ServerProject.at(new(tmp_path)).validated()
    assert server.route == "weather" and server.governance.owner_team == "platform"
    assert [tool.name for tool in server.governance.tools] == ["lookup"]


def test_new_refuses_an_existing_folder_and_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new(tmp_path)
    assert main(["server", "new", "weather", "--path", str(tmp_path / "servers")]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["server", "new", "Weather_Now", "--path", str(tmp_path / "servers")]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert main(["server", "new", "vault", "--path", str(tmp_path), "--sensitivity", "restricted"]) == 2
    assert "needs its business group" in capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "servers").iterdir()) == ["weather"]  # nothing half-written


def test_validate_refuses_a_tool_that_is_neither_guarded_nor_public(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = new(tmp_path)
    with (folder / "server.py").open("a") as source:
        source.write("\n\n@kit.tool()\ndef drop_everything() -> None:\n    pass\n")
    assert main(["server", "validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "drop_everything are neither guarded nor public" in err
    assert "tool 'drop_everything' is not declared in the governance tools" in err


def test_validate_refuses_server_json_the_registry_would_refuse(tmp_path: Path) -> None:
    folder = new(tmp_path)
    document = json.loads((folder / "server.json").read_text())
    document["version"] = "latest"
    del document["_meta"]["dev.portcullis/governance"]["owner_team"]
    (folder / "server.json").write_text(json.dumps(document))
    (problem,) = errors(folder)
    assert "$.version: must be one exact version" in problem
    assert "owner_team: Field required" in problem


def test_validate_refuses_a_server_json_that_disagrees_with_the_server(tmp_path: Path) -> None:
    folder = new(tmp_path)
    document = json.loads((folder / "server.json").read_text())
    governance = document["_meta"]["dev.portcullis/governance"]
    governance["route"] = "weather-v2"
    governance["tools"] = [{"name": "lookup", "read_only": False}, {"name": "forecast"}]
    (folder / "server.json").write_text(json.dumps(document))
    # (The policy cases then fail too: they name the server by the kit's name, which is no longer its route.)
    assert errors(folder)[:3] == [
        "server.json: route 'weather-v2' differs from the kit's name 'weather' (its audience)",
        "server.json: declares tool 'forecast', which the server does not have",
        "server.json: tool 'lookup' says read_only: false but the kit declares mutating=False",
    ]


def test_validate_runs_the_policy_cases_against_the_real_policies(tmp_path: Path) -> None:
    folder = new(tmp_path)
    cases = (folder / "policy_cases.yaml").read_text()
    (folder / "policy_cases.yaml").write_text(cases.replace("reason: client_not_allowed", "reason: group_required"))
    (problem,) = errors(folder)
    assert "a client application the server does not admit is denied" in problem
    assert "expected deny (group_required), the policies said deny (client_not_allowed)" in problem


def test_validate_refuses_a_folder_that_is_not_a_server_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server", "validate", str(tmp_path)]) == 2
    assert "is not a server package: missing __init__.py, server.py, server.json" in capsys.readouterr().err
