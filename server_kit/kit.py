"""`Kit`: a governed MCP server on the SDK's `MCPServer`, declared at import and built by `create_app(settings)`.

    kit = Kit("demo")

    @kit.tool()
    @guarded(arguments=["region"])
    def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]: ...

    app = kit.create_app(KitSettings.from_env("demo"))   # or: python -m server_kit serve mymodule:kit

The app serves stateless streamable HTTP at `/mcp` behind `BearerAuth`, and without a token: `/healthz`,
`/metrics` and the RFC 9728 metadata at `/.well-known/oauth-protected-resource` (the gateway maps
`/servers/<name>/` to `/`). Nothing is built at import time; building refuses a tool that is neither guarded
nor public. What the tools share (an engine, a backend's client) is declared with `@kit.resource`, built when
the app starts and closed when it stops (server_kit.resources).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer, RequestStateSecurity
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from portcullis_contracts.resource_metadata import RESOURCE_METADATA_PATH, protected_resource_metadata
from portcullis_contracts.revocations import RevocationFollower
from server_kit.auth import BearerAuth, TokenVerifier
from server_kit.authz import Authorizer
from server_kit.caller import CallerServices
from server_kit.downstream import TokenExchanger
from server_kit.errors import ConfigurationError, GuardError, UnguardedToolError
from server_kit.guards import Guard, Public, access_of, tool_parameters
from server_kit.observability import KitMetrics
from server_kit.resources import ResourceSpec, match_provided, open_resources, resource_spec, tool_resources
from server_kit.settings import KitSettings, env_prefix
from server_kit.tools import ToolListFilter, ToolRuntime, ToolSpec, build_tool, caller_of_request, denial

if TYPE_CHECKING:
    import uvicorn

__all__ = ["Kit"]

_F = TypeVar("_F", bound=Callable[..., Any])
_CONFIRMATION_SECONDS = 600.0  # how long a person may take to answer a confirmation
# Start-up waits this long for the first revocation list, so a fresh server does not answer its first calls 503.
_FIRST_REVOCATIONS_SECONDS = 3.0
_SERVER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a route segment and a DNS label


class Kit:
    """A governed MCP server: tools declared with `tool()`, each `@guarded(...)` or `@public(reason=...)`."""

    def __init__(self, name: str, *, title: str | None = None, instructions: str | None = None, version: str = ""):
        """Declare a server.

        Raises:
            ConfigurationError: `name` is not a lower-case DNS label (it names the route, audience and policies).
        """
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
            raise ConfigurationError(f"server name {name!r} must be a lower-case DNS label (a-z, 0-9, '-')")
        self.name = name
        self.title = title
        self.instructions = instructions
        self.version = version
        self._tools: dict[str, ToolSpec] = {}
        self._resources: dict[type, ResourceSpec] = {}

    def tool(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        structured_output: bool | None = None,
        mutating: bool = False,
    ) -> Callable[[_F], _F]:
        """Declare a tool (the SDK's `MCPServer.tool` options). Stack `@guarded(...)` or `@public(...)` with it.

        A parameter annotated `Caller` receives the verified caller, and one annotated with a type a
        `@kit.resource` provides receives that resource; neither is part of the input schema.
        A `mutating` tool (one that changes something) runs only once the person confirms it through MCP
        elicitation, or the policy waives the confirmation for a client that cannot ask (server_kit.confirm).
        Its annotations say `readOnlyHint: false`; other tools' say `readOnlyHint: true` unless given.

        Raises:
            GuardError: used without parentheses, on a non-function, or a second tool with the same name.
        """
        if callable(name):
            raise GuardError("use @kit.tool() with parentheses")

        def decorate(fn: _F) -> _F:
            tool_parameters(fn, "@kit.tool()")
            tool_name = name or fn.__name__
            if tool_name in self._tools:
                raise GuardError(f"server {self.name!r} already has a tool named {tool_name!r}")
            if not isinstance(mutating, bool):
                raise GuardError(f"@kit.tool(mutating=...) on {tool_name!r} takes True or False")
            hints = annotations or ToolAnnotations()
            if hints.read_only_hint is None:
                hints = hints.model_copy(update={"read_only_hint": not mutating})
            elif hints.read_only_hint == mutating:
                raise GuardError(f"tool {tool_name!r}: readOnlyHint={hints.read_only_hint} contradicts mutating")
            self._tools[tool_name] = ToolSpec(fn, tool_name, title, description, hints, structured_output, mutating)
            return fn

        return decorate

    def resource(self, factory: _F | None = None) -> _F:
        """Declare a resource: built once when the app starts, closed when it stops, and injected into every tool
        parameter typed with the class it provides (see server_kit.resources).

            @kit.resource
            def warehouse(settings: WarehouseSettings) -> Iterator[Warehouse]: ...

        Raises:
            GuardError: used with parentheses, on a non-function, with a return annotation that is not a class,
                a type already provided, a parameter typed other than `KitSettings` or an earlier resource, or
                declared after a tool that takes it (declare resources before the tools that use them).
        """
        if factory is None:
            raise GuardError("use @kit.resource without parentheses")
        spec = resource_spec(factory, self._resources)
        early = [name for name, tool in self._tools.items() if tool_resources(tool.fn, [spec.provides])]
        if early:
            raise GuardError(
                f"@kit.resource on {factory.__qualname__}: declare it before the tools that take a "
                f"{spec.provides.__name__} ({', '.join(early)})"
            )
        self._resources[spec.provides] = spec
        return factory

    @property
    def resources(self) -> dict[type, ResourceSpec]:
        """Every declared resource, by the type it provides, in declaration (build) order."""
        return dict(self._resources)

    @property
    def mutating_tools(self) -> frozenset[str]:
        """The names of the tools declared `mutating=True`."""
        return frozenset(name for name, spec in self._tools.items() if spec.mutating)

    @property
    def tools(self) -> dict[str, Guard | Public | None]:
        """Every declared tool and its marker (None: neither guarded nor public)."""
        return {name: access_of(spec.fn) for name, spec in self._tools.items()}

    def check(self) -> dict[str, Guard | Public]:
        """Every tool's marker, once each has one.

        Raises:
            UnguardedToolError: some tools are neither guarded nor public.
        """
        unmarked = [name for name, access in self.tools.items() if access is None]
        if unmarked:
            raise UnguardedToolError(unmarked)
        return {name: access for name, access in self.tools.items() if access is not None}

    def create_app(
        self,
        settings: KitSettings | None = None,
        *,
        authz_http: httpx.AsyncClient | None = None,
        resources: Iterable[object] = (),
    ) -> Starlette:
        """Build the ASGI app: authentication, per-tool authorization, metrics, health and metadata. Its lifespan
        builds the resources the tools use (and closes them when it ends); a factory's error stops the start.

        Args:
            settings: defaults to `KitSettings.from_env(self.name)`.
            authz_http: the HTTP client for the AuthZEN API (tests pass one over an in-process app).
            resources: ready instances of declared resource types, used instead of their factories and never
                closed by the app (tests hand in their backends this way).

        Raises:
            UnguardedToolError: a tool is neither guarded nor public (the server refuses to start).
            GuardError: a tool's signature does not fit its guard.
            ConfigurationError: invalid settings, settings of another server, or an instance in `resources`
                of no declared resource type.
        """
        settings = settings or KitSettings.from_env(self.name)
        if settings.server != self.name:
            raise ConfigurationError(f"settings are for server {settings.server!r}, not {self.name!r}")
        access = self.check()
        provided = match_provided(self._resources, resources)
        types = tuple(self._resources)
        used = {kind for spec in self._tools.values() for kind in tool_resources(spec.fn, types).values()}
        if self.mutating_tools and settings.environment == "production" and not settings.request_state_keys:
            raise ConfigurationError(
                f"{env_prefix(self.name)}REQUEST_STATE_KEYS is required in production: the confirmation of a "
                "mutating tool spans two requests, which may reach different replicas"
            )
        metrics = KitMetrics(self.name)
        authorizer = Authorizer(
            server=self.name,
            url=settings.authz_url,
            credential=settings.authz_credential.get_secret_value(),
            timeout_seconds=settings.authz_timeout_seconds,
            cache_ttl_seconds=settings.decision_cache_ttl_seconds,
            cache_size=settings.decision_cache_size,
            http=authz_http,
        )
        runtime = ToolRuntime(self.name, authorizer, metrics)
        exchanger = TokenExchanger(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            timeout_seconds=settings.authz_timeout_seconds,
        )
        services = CallerServices(authorizer, exchanger, denial)
        server: MCPServer[Any] = MCPServer(
            self.name,
            title=self.title,
            instructions=self.instructions,
            version=self.version,
            middleware=[ToolListFilter(access, runtime)],
            request_state_security=_request_state_security(settings),
        )
        for tool_name, spec in self._tools.items():
            server.add_tool(
                build_tool(spec, access[tool_name], runtime, types),
                name=tool_name,
                title=spec.title,
                description=spec.description or spec.fn.__doc__ or "",
                annotations=spec.annotations,
                structured_output=spec.structured_output,
            )
        security = TransportSecuritySettings(
            allowed_hosts=settings.allowed_hosts, allowed_origins=settings.allowed_origins
        )
        mcp_app = server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
        revocations = RevocationFollower(
            url=settings.revocation_url,
            issuer=settings.issuer,
            poll_seconds=settings.revocation_poll_seconds,
            max_staleness_seconds=settings.revocation_max_staleness_seconds,
            timeout_seconds=settings.authz_timeout_seconds,
        )
        verifier = TokenVerifier(
            issuer=settings.issuer,
            audience=settings.resource,
            jwks_url=settings.jwks_url,
            revoked=revocations.revoked,
            required_scope=settings.required_scope,
            leeway_seconds=settings.leeway_seconds,
            jwks_cache_seconds=settings.jwks_cache_seconds,
            services=services,
        )
        protected = BearerAuth(
            mcp_app,
            verifier,
            resource_metadata_url=settings.resource_metadata_url,
            scope=settings.required_scope,
            on_refused=metrics.observe_refused,
        )
        metadata = protected_resource_metadata(
            resource=settings.resource, issuer=settings.issuer, scope=settings.required_scope, name=self.name
        )

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "server": self.name})

        async def metrics_endpoint(_: Request) -> Response:
            return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

        async def resource_metadata(_: Request) -> JSONResponse:
            return JSONResponse(metadata, headers={"Cache-Control": "public, max-age=300"})

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            following = asyncio.create_task(revocations.run())
            try:
                async with (
                    open_resources(self._resources, settings, used=used, provided=provided) as values,
                    runtime.resources.opened(values),
                ):
                    await revocations.wait_loaded(_FIRST_REVOCATIONS_SECONDS)  # else serve: 503 until loaded
                    async with server.session_manager.run():
                        yield
            finally:
                following.cancel()
                with suppress(asyncio.CancelledError):
                    await following
                await authorizer.aclose()
                await exchanger.aclose()

        routes = [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route(RESOURCE_METADATA_PATH, resource_metadata, methods=["GET"]),
            Route(RESOURCE_METADATA_PATH + "/{path:path}", resource_metadata, methods=["GET"]),
            Mount("/", app=protected),
        ]
        app = Starlette(routes=routes, lifespan=lifespan)
        app.state.kit_metrics = metrics
        return app

    def serve(self, settings: KitSettings | None = None) -> None:
        """Run the server with uvicorn on `settings.host:settings.port`, logging JSON lines to stderr.

        Raises:
            UnguardedToolError, GuardError, ConfigurationError: as `create_app`, before anything listens.
            Exception: whatever a resource factory raises, before anything listens.
        """
        import uvicorn

        from server_kit.observability import configure_logging

        settings = settings or KitSettings.from_env(self.name)
        configure_logging(settings.log_level)
        app = self.create_app(settings)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="off"
        )
        with suppress(KeyboardInterrupt):
            asyncio.run(_serve(app, uvicorn.Server(config)))


async def _serve(app: Starlette, server: uvicorn.Server) -> None:
    """Run the app's lifespan around uvicorn rather than inside it, so a resource that cannot be built raises out
    of `Kit.serve` (the runner's one-line refusal) instead of a logged traceback. Signals are caught around the
    lifespan too: uvicorn re-raises them when it stops serving, which would end the process before the resources
    are closed.
    """
    with server.capture_signals():
        async with app.router.lifespan_context(app):
            await server.serve()


def _request_state_security(settings: KitSettings) -> RequestStateSecurity:
    """Seal the state of multi-round tool calls (confirmations) with the shared keys, or a key of this process,
    and bind it to the verified caller, so one person's confirmation cannot be replayed by another.
    """
    keys: list[bytes | str] = [key.get_secret_value() for key in settings.request_state_keys]
    keys = keys or [os.urandom(32)]

    def principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
        caller = caller_of_request(ctx.request)
        return None if caller is None else json.dumps([settings.issuer, caller.user, caller.client_id])

    return RequestStateSecurity(keys=keys, ttl=_CONFIRMATION_SECONDS, bind_principal=principal)
