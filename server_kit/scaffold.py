"""`portcullis server new NAME`: a new server package that passes its own tests and `server validate` as made.

It holds one guarded sample tool and the backend it reads (a `@kit.resource`: built at start, closed at stop,
handed in by the tests), its `server.json` (the registry entry, with the governance extension the
policies read), `policy_cases.yaml` (how the policies must decide its tools) and tests that run it behind real
token verification and the real policies (`server_kit.testing.KitHarness`). The package is written to a
temporary folder beside its destination and moved into place in one rename: a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from server_kit.errors import ConfigurationError

__all__ = ["ScaffoldSpec", "scaffold"]

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_NAMESPACE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)+")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_SENSITIVITY = ("public", "internal", "confidential", "restricted")
DEFAULT_CLIENTS = ("claude-desktop", "vscode", "internal-agent", "dynamic")


@dataclass(frozen=True)
class ScaffoldSpec:
    """What `server new` asks for; everything but the name has a default."""

    name: str
    namespace: str = "com.portcullis"
    owner_team: str = "platform"
    business_group: str = ""
    sensitivity: str = "internal"
    port: int = 8310
    support_channel: str = "#mcp-platform"
    allowed_clients: tuple[str, ...] = field(default=DEFAULT_CLIENTS)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or len(self.name) > 63:
            raise ConfigurationError(
                f"server name {self.name!r}: lower-case letters, digits and single dashes, starting with a letter"
            )
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ConfigurationError(f"namespace {self.namespace!r} must be reverse-DNS, such as com.portcullis.ads")
        for label, value in (("owner team", self.owner_team), ("business group", self.business_group or "x")):
            if not _GROUP.fullmatch(value):
                raise ConfigurationError(f"{label} {value!r} is not a valid group name")
        if self.sensitivity not in _SENSITIVITY:
            raise ConfigurationError(f"sensitivity must be one of {', '.join(_SENSITIVITY)}")
        if self.sensitivity in ("confidential", "restricted") and not self.business_group:
            raise ConfigurationError(f"a {self.sensitivity} server needs its business group")
        if not 1024 <= self.port <= 65_535:
            raise ConfigurationError(f"port {self.port} must be between 1024 and 65535")

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")


def scaffold(spec: ScaffoldSpec, parent: Path) -> Path:
    """Write the package `parent/<package>` and return its folder.

    Raises:
        ConfigurationError: the folder exists already, or `parent` is not a folder.
    """
    parent = parent.resolve()
    target = parent / spec.package
    if target.exists():
        raise ConfigurationError(f"{target} exists already; choose another name or remove it")
    if parent.exists() and not parent.is_dir():
        raise ConfigurationError(f"{parent} is not a folder")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.package}-", dir=parent))
    try:
        for relative, content in _files(spec).items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _files(spec: ScaffoldSpec) -> dict[str, str]:
    values = {
        "name": spec.name,
        "package": spec.package,
        "owner": spec.owner_team,
        "business_groups": json.dumps([spec.business_group] if spec.business_group else []),
    }
    return {
        "__init__.py": f'"""The {spec.name} MCP server, on the Portcullis server kit."""\n',
        "__main__.py": _MAIN.format(**values),
        "server.py": _SERVER.format(**values),
        "server.json": json.dumps(_server_json(spec), indent=2) + "\n",
        "policy_cases.yaml": _CASES.format(**values),
        "tests/__init__.py": "",
        "tests/test_server.py": _TESTS.format(**values),
        "README.md": _README.format(**values),
    }


def _server_json(spec: ScaffoldSpec) -> dict[str, object]:
    return {
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
        "name": f"{spec.namespace}/{spec.name}",
        "title": spec.name.replace("-", " ").title(),
        "description": f"The {spec.name} MCP server (replace with what it offers).",
        "version": "0.1.0",
        "remotes": [{"type": "streamable-http", "url": f"http://127.0.0.1:8080/servers/{spec.name}/mcp"}],
        "_meta": {
            "dev.portcullis/governance": {
                "owner_team": spec.owner_team,
                "support_channel": spec.support_channel,
                "sensitivity": spec.sensitivity,
                "business_group": spec.business_group,
                "allowed_clients": list(spec.allowed_clients),
                "upstream": f"127.0.0.1:{spec.port}",
                "tools": [{"name": "lookup", "description": "Look up a topic.", "read_only": True}],
            }
        },
    }


_MAIN = '''"""`python -m <package> [--host H] [--port P]`: run the {name} server (settings: KIT_<NAME>_* variables)."""

import sys

from server_kit.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["serve", f"{{__package__}}.server:kit", *sys.argv[1:]]))
'''

_SERVER = '''"""The {name} MCP server: its tools. The kit verifies every caller's token, asks the policy before each
guarded tool runs, lists only the tools the caller may call, and logs and measures every call.

Each tool is `@guarded(...)` (the policy decides every call; name in `arguments` what the policy must read) or
`@public(reason=...)`. A tool that changes something is declared `@kit.tool(mutating=True)`: the person confirms
it first. Declare every tool in server.json too, with `read_only: false` for mutating ones.

What the tools share (a client of your backend, its settings) is a `@kit.resource`: built once when the server
starts, closed when it stops, and handed to every tool parameter of its type (tests hand in their own).
"""

from __future__ import annotations

from collections.abc import Iterator

from server_kit import Caller, Kit, guarded

kit = Kit("{name}", instructions="Replace with what this server offers and when to use it.")


class Answers:
    """The sample tool's backend: replace it with a client of yours."""

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known = dict(known or {{}})

    def lookup(self, topic: str) -> str:
        return self.known.get(topic, f"Nothing is known about {{topic!r}} yet.")

    def close(self) -> None:
        """Release what the backend holds (connections, files)."""


@kit.resource
def answers() -> Iterator[Answers]:
    """The backend, opened when the server starts (read its settings here, once) and closed when it stops."""
    backend = Answers()
    try:
        yield backend
    finally:
        backend.close()


@kit.tool()
@guarded(arguments=["topic"])
def lookup(caller: Caller, answers: Answers, topic: str) -> dict[str, str]:
    """Look up a topic (a sample tool: replace it with a call to your backend)."""
    return {{"topic": topic, "answer": answers.lookup(topic), "asked_by": caller.user}}
'''

_CASES = """# How the policies must decide this server's tools: `portcullis server validate` runs these cases
# against the platform's real policies, with this server in the catalog as server.json describes it.
actors:
  member: {{id: alice, client: claude-desktop, groups: [{owner}], business_groups: {business_groups}}}
  unlisted_client: {{id: alice, client: unlisted-client, groups: [{owner}], business_groups: {business_groups}}}

cases:
  - name: a person through an admitted client may call lookup
    actor: member
    action: call
    resource: {{type: tool, server: {name}, name: lookup}}
    expect: allow
  - name: a client application the server does not admit is denied
    actor: unlisted_client
    action: call
    resource: {{type: tool, server: {name}, name: lookup}}
    expect: deny
    reason: client_not_allowed
"""

_TESTS = '''"""The {name} server behind real token verification and the real policies, through the real MCP client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest

from server_kit.testing import KitHarness

from ..server import Answers, kit

SERVER_JSON = Path(__file__).resolve().parents[1] / "server.json"
GROUPS = ["{owner}"]
BUSINESS_GROUPS = {business_groups}


@pytest.fixture(scope="module")
def harness() -> Iterator[KitHarness]:
    with KitHarness(kit, SERVER_JSON) as running:
        yield running


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_every_tool_is_guarded_or_public() -> None:
    assert set(kit.check()) == {{"lookup"}}


def test_a_person_through_an_admitted_client_may_look_up_a_topic(harness: KitHarness) -> None:
    token = harness.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS)
    result = harness.call(token, "lookup", {{"topic": "tides"}})
    assert not result.is_error, text(result)
    assert result.structured_content == {{
        "topic": "tides",
        "answer": "Nothing is known about 'tides' yet.",
        "asked_by": "alice",
    }}


def test_the_tool_answers_from_the_backend_the_test_hands_in(harness: KitHarness) -> None:
    backend = harness.with_resources(Answers({{"tides": "Twice a day."}}))
    token = backend.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS)
    result = backend.call(token, "lookup", {{"topic": "tides"}})
    assert not result.is_error, text(result)
    assert result.structured_content is not None and result.structured_content["answer"] == "Twice a day."


def test_a_client_application_the_server_does_not_admit_is_denied_with_its_reason(harness: KitHarness) -> None:
    token = harness.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS, client_id="unlisted-client")
    result = harness.call(token, "lookup", {{"topic": "tides"}})
    assert result.is_error
    assert "reason: client_not_allowed" in text(result)


def test_tools_list_shows_only_what_the_caller_may_call(harness: KitHarness) -> None:
    admitted = harness.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS)
    unlisted = harness.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS, client_id="unlisted-client")
    assert harness.tool_names(admitted) == ["lookup"]
    assert harness.tool_names(unlisted) == []
'''

_README = """# {name}

An MCP server on the Portcullis server kit.

    pytest servers/{package}/tests              # its tests: real tokens, real policies, the real MCP client
    portcullis server validate servers/{package}   # what the platform will insist on
    portcullis server dev servers/{package}        # run it behind the local gateway (`make up` first)
    portcullis server deploy servers/{package}     # publish for review; Kubernetes and compose artifacts

Edit `server.py` (tools), `server.json` (what it is, who owns it, its tools for the policies) and
`policy_cases.yaml` (how the policies must decide its tools).
"""
