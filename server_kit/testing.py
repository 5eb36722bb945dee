"""Testing a kit server as the platform will run it: real tokens, the real policies, the real MCP SDK client.

`KitHarness` serves the server's app in-process with a fresh signing key (its JWKS on a real HTTP port of
127.0.0.1), authz_service's real AuthZEN app deciding with the repository's Polar policies and a catalog that
holds this server as its `server.json` describes it (approved), and hands out tokens for any person:

    from server_kit.testing import KitHarness
    from weather.server import kit

    def test_a_member_of_the_business_group_gets_a_forecast() -> None:
        with KitHarness(kit, Path(__file__).parents[1] / "server.json") as harness:
            token = harness.token("alice", groups=["weather-eng"], business_groups=["weather"])
            result = harness.call(token, "forecast", {"city": "Lisbon"})
            assert not result.is_error

A server with resources (`@kit.resource`) builds them from its settings at each client's start, as it would in
production; a test hands in its own instead (a settings object, a backend, a fake), per harness or for a few
calls:

    with KitHarness(kit, server_json, resources=[WarehouseSettings(url=local_url)]) as harness:
        broken = harness.with_resources(WarehouseSettings(url="http://127.0.0.1:9"))

The policies are found in `policy_dir`, else `$PORTCULLIS_POLICY_DIR`, else the nearest `policies/` folder
holding `common.polar` above the current directory (the repository's, when tests run from its root).
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import yaml
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from server_kit.errors import KitError
from server_kit.kit import Kit
from server_kit.project import catalog_entry
from server_kit.settings import KitSettings

__all__ = ["KitHarness", "find_policy_dir"]

_ISSUER = "http://127.0.0.1:8181"
_GATEWAY = "http://127.0.0.1:8080"
_BASE = "http://127.0.0.1:8300"
_CREDENTIAL = "kit-harness-service-credential-0123456789"


def find_policy_dir(start: Path | None = None) -> Path:
    """`$PORTCULLIS_POLICY_DIR`, else the nearest `policies/` (with `common.polar`) above `start` (the cwd).

    Raises:
        KitError: none found.
    """
    configured = os.environ.get("PORTCULLIS_POLICY_DIR")
    if configured:
        return Path(configured)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "policies" / "common.polar").is_file():
            return folder / "policies"
    raise KitError("no policies/ folder found: run from the repository or set PORTCULLIS_POLICY_DIR")


class KitHarness:
    """A kit server in-process behind real token verification and real policy decisions (a context manager)."""

    def __init__(
        self,
        kit: Kit,
        server_json: Path,
        *,
        policy_dir: Path | None = None,
        resources: Iterable[object] = (),
        **settings: Any,
    ):
        """Describe the harness; entering it starts the decision point and checks the server starts.

        Args:
            resources: ready instances of the server's resource types, used instead of its factories.
            settings: `KitSettings` fields to set (the harness sets the issuer, the keys and the AuthZEN API).
        """
        from server_kit.project import ServerProject

        self.kit = kit
        self._server = ServerProject(server_json.parent).validated()
        self._policy_dir = policy_dir or find_policy_dir()
        self._resources = list(resources)
        self._settings = settings
        self._stack = ExitStack()
        self._entered = False

    @property
    def allowed_clients(self) -> list[str]:
        """The client applications the server admits (server.json)."""
        return list(self._server.governance.allowed_clients)

    def __enter__(self) -> KitHarness:
        from authz_service.http_app import create_app as create_authz_app
        from authz_service.keys import SigningKey
        from authz_service.runtime import Runtime
        from authz_service.settings import Settings as AuthzSettings
        from portcullis.testing import JwksServer

        try:
            workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="kit-harness-")))
            catalog = workdir / "catalog.yaml"
            catalog.write_text(yaml.safe_dump({"servers": [catalog_entry(self._server)]}))
            self._key = SigningKey.generate()
            jwks = JwksServer(self._key.jwks())
            self._stack.callback(jwks.close)
            authz = AuthzSettings(
                policy_dir=self._policy_dir,
                catalog_file=catalog,
                decision_log=workdir / "decisions.jsonl",
                key_dir=workdir / "keys",
                service_credentials={self.kit.name: SecretStr(_CREDENTIAL)},
                identity=False,
                watch=False,
            )
            runtime = Runtime(authz)
            self._stack.callback(runtime.close)
            self._authz_app = create_authz_app(runtime)
            values: dict[str, Any] = {
                "issuer": _ISSUER,
                "jwks_url": jwks.url,
                "revocation_url": jwks.revocation_url,
                "gateway_url": _GATEWAY,
                "authz_url": _ISSUER,
                "authz_credential": SecretStr(_CREDENTIAL),
                **self._settings,
            }
            self._kit_settings = KitSettings(server=self.kit.name, **values)
            self._check_start()
            self._entered = True
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.close()

    def _check_start(self) -> None:
        """Refuse now what the server would refuse at start-up: its settings, its tools, its resources."""
        app = self.kit.create_app(self._kit_settings, resources=self._resources)

        async def start_and_stop() -> None:
            async with app.router.lifespan_context(app):
                pass

        anyio.run(start_and_stop)

    def with_resources(self, *resources: object) -> KitHarness:
        """This running harness (the same keys, policies and decision point) serving the server with `resources`
        instead of the instances it was given for those types; the original stays as it was.

        Raises:
            KitError: the harness is not entered.
            Exception: whatever the server's start refuses with these resources (a factory's error).
        """
        if not self._entered:
            raise KitError("use KitHarness as a context manager")
        replaced = {type(instance) for instance in resources}
        derived = copy.copy(self)
        derived._resources = [item for item in self._resources if type(item) not in replaced] + list(resources)
        derived._stack = ExitStack()  # the original owns the decision point: closing the copy closes nothing
        derived._check_start()
        return derived

    def token(
        self,
        user: str = "alice",
        *,
        groups: Sequence[str] = (),
        business_groups: Sequence[str] = (),
        client_id: str | None = None,
        scope: str = "mcp",
        email: str = "",
    ) -> str:
        """A signed access token for this server: `user` with these groups, through `client_id` (default: the
        first client application the server admits)."""
        clients = self.allowed_clients
        return self._key.mint(
            issuer=_ISSUER,
            subject=user,
            audience=f"{_GATEWAY}/servers/{self.kit.name}/mcp",
            client_id=client_id or (clients[0] if clients else "claude-desktop"),
            claims={
                "groups": list(groups),
                "business_groups": list(business_groups),
                "email": email or f"{user}@example.com",
                "scope": scope,
            },
            ttl_seconds=600,
        )

    @asynccontextmanager
    async def client(self, token: str, *, elicitation: ElicitationFnT | None = None) -> AsyncIterator[Client]:
        """The real MCP SDK client over streamable HTTP to the server (answering elicitation when given)."""
        if not self._entered:
            raise KitError("use KitHarness as a context manager")
        # A fresh app per client: the SDK's session manager runs once per app.
        authz_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._authz_app), base_url=_ISSUER)
        app = self.kit.create_app(self._kit_settings, authz_http=authz_http, resources=self._resources)
        headers = {"Authorization": f"Bearer {token}"}
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=_BASE, headers=headers)
        async with authz_http, app.router.lifespan_context(app), http:
            async with Client(
                streamable_http_client(f"{_BASE}/mcp", http_client=http), elicitation_callback=elicitation
            ) as client:
                yield client

    def call(
        self,
        token: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        elicitation: ElicitationFnT | None = None,
    ) -> types.CallToolResult:
        """Call one tool as the token's person (synchronously)."""

        async def run() -> types.CallToolResult:
            async with self.client(token, elicitation=elicitation) as client:
                return await client.call_tool(tool, arguments or {})

        return anyio.run(run)

    def tool_names(self, token: str) -> list[str]:
        """The tools `tools/list` shows the token's person, sorted."""

        async def run() -> list[str]:
            async with self.client(token) as client:
                return sorted(tool.name for tool in (await client.list_tools()).tools)

        return anyio.run(run)
