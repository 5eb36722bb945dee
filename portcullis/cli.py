"""The `portcullis` command line. Every failure a user can cause is one line on stderr, never a trace."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from authz_service.catalog import FileCatalogSource
from authz_service.decision import Actor, ResourceRef
from authz_service.errors import AuthzError
from authz_service.keys import KeyRing
from authz_service.policy_tools import check_references, explain, load_decider, run_cases
from authz_service.settings import Settings
from authz_service.worker import PortInUseError
from gateway.config import build_config, canonical_uri, render_yaml, spec_from_catalog
from gateway.errors import GatewayError
from portcullis.domain import DOMAIN_SERVERS
from portcullis.server_cli import add_server_commands
from portcullis.up import PlatformError, UpOptions, run_up
from portcullis_contracts.catalog import CatalogError
from portcullis_contracts.directory import DirectoryError, load_directory
from server_kit.errors import KitError

__all__ = ["main"]

_EXPECTED_ERRORS = (
    AuthzError,
    CatalogError,
    GatewayError,
    PlatformError,
    PortInUseError,
    DirectoryError,
    ValidationError,
    OSError,
    KitError,
)


def project_root() -> Path:
    """`$PORTCULLIS_ROOT`, else the working directory when it holds `policies/`, else this checkout."""
    if "PORTCULLIS_ROOT" in os.environ:
        return Path(os.environ["PORTCULLIS_ROOT"]).resolve()
    cwd = Path.cwd()
    if (cwd / "policies").is_dir():
        return cwd
    return Path(__file__).resolve().parents[1]


def _up(args: argparse.Namespace) -> int:
    root = project_root()
    servers = tuple(name for name in args.servers.split(",") if name and name != "none")
    options = UpOptions(root=root, state_dir=(root / ".portcullis").resolve(), workers=args.workers, servers=servers)
    return run_up(options)


def _policy_test(args: argparse.Namespace) -> int:
    results = run_cases(args.policies, args.cases)
    failed = [r for r in results if not r.passed]
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        line = f"{mark}  {result.name}"
        if not result.passed:
            line += f"\n      expected {result.expected}, got {result.decision.result} ({result.decision.reason})"
        print(line)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _policy_check(args: argparse.Namespace) -> int:
    catalog = FileCatalogSource(args.catalog).load()
    _, policy = load_decider(args.policies, catalog)
    problems = check_references(policy, catalog)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {len(policy.files)} policy files (revision {policy.revision}), references resolve in the catalog")
    return 0


def _policy_explain(args: argparse.Namespace) -> int:
    catalog = FileCatalogSource(args.catalog).load()
    decider, _ = load_decider(args.policies, catalog)
    actor = Actor(
        id=args.user,
        client=args.client,
        groups=tuple(sorted(args.group)),
        business_groups=tuple(sorted(args.business_group)),
    )
    properties = json.loads(args.properties) if args.properties else None
    if args.dataset:
        resource = ResourceRef.of("dataset", args.server, args.dataset, properties)
        action = args.action or "read"
    elif args.tool:
        resource = ResourceRef.of("tool", args.server, args.tool, properties)
        action = args.action or "call"
    else:
        resource = ResourceRef.of("server", args.server)
        action = args.action or "connect"
    decision = explain(decider, actor, action, resource)
    print(json.dumps({
        "decision": decision.result,
        "reason": decision.reason,
        "actor": actor.log_view(),
        "action": action,
        "resource": resource.log_view(),
        "policy_revision": decision.policy_revision,
        "catalog_revision": decision.catalog_revision,
    }, indent=2))  # fmt: skip
    return 0 if decision.allowed else 3


def _key_dir(args: argparse.Namespace) -> Path:
    return Path(args.key_dir) if args.key_dir else project_root() / ".portcullis" / "keys"


def _token(args: argparse.Namespace) -> int:
    # Read before the settings: a federated deployment's settings may be incomplete on a developer's machine.
    upstream = os.environ.get("AUTHZ_UPSTREAM_ISSUER", "").strip()
    if upstream:
        print(
            f"portcullis: login is federated to {upstream} (AUTHZ_UPSTREAM_ISSUER): "
            "dev tokens are only for the embedded directory",
            file=sys.stderr,
        )
        return 2
    settings = Settings()
    # A token may not outlive its key's publication: after a rotation, a key stays in the JWKS for one access
    # token lifetime (plus skew) past its last signature.
    ttl = settings.access_token_ttl_seconds if args.ttl is None else args.ttl
    if not 0 < ttl <= settings.access_token_ttl_seconds:
        raise AuthzError(
            f"--ttl must be between 1 and {settings.access_token_ttl_seconds} s (AUTHZ_ACCESS_TOKEN_TTL_SECONDS)"
        )
    root = project_root()
    directory = load_directory(args.directory or root / "config" / "directory.yaml")
    user = directory.user(args.user)
    directory.client(args.client)
    ring = KeyRing.load_or_create(_key_dir(args), activation_seconds=settings.key_activation_seconds)
    token = ring.current().mint(
        issuer=args.issuer,
        subject=args.user,
        audience=args.resource.rstrip("/") if args.resource else canonical_uri(args.gateway, args.server),
        client_id=args.client,
        claims={"email": user.email, "groups": user.groups, "business_groups": user.business_groups, "scope": "mcp"},
        ttl_seconds=ttl,
    )
    print(token)
    return 0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keys_rotate(args: argparse.Namespace) -> int:
    settings = Settings()
    ring = KeyRing(_key_dir(args))
    activate_in = settings.key_activation_seconds if args.activate_in is None else args.activate_in
    key = ring.rotate(activation_seconds=activate_in, token_ttl_seconds=settings.access_token_ttl_seconds)
    for entry in ring.entries():
        if entry.kid == key.kid:
            print(f"new key {key.kid}: published now, signs from {_when(entry.active_from)} (in {activate_in} s)")
        elif ring.state(entry) != "retired":
            print(f"key {entry.kid}: {ring.state(entry)}, published until {_when(entry.retire_at)}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    ring = KeyRing(_key_dir(args))
    row = "{:<43}  {:<20}  {:<20}  {:<20}  {}"
    print(row.format("KID", "CREATED", "ACTIVE FROM", "RETIRE AT", "STATE"))
    for entry in ring.entries():
        times = (_when(entry.created_at), _when(entry.active_from), _when(entry.retire_at))
        print(row.format(entry.kid, *times, ring.state(entry)))
    return 0


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return int(text)


def _gateway_config(args: argparse.Namespace) -> int:
    catalog = FileCatalogSource(args.catalog).load()
    endpoints = [(args.authz_host, args.authz_port + i) for i in range(args.authz_workers)]
    spec = spec_from_catalog(
        catalog,
        issuer=args.issuer,
        jwks_uri=args.jwks_uri or f"{args.issuer.rstrip('/')}/.well-known/jwks.json",
        authz_endpoints=endpoints,
        public_url=args.public_url,
    )
    upstreams: dict[str, tuple[str, int]] = dict(args.upstream)
    unknown = sorted(set(upstreams) - {route.name for route in spec.routes})
    if unknown:
        raise GatewayError(f"--upstream names no server of the catalog: {', '.join(unknown)}")
    routes = tuple(
        replace(r, upstream_host=upstreams[r.name][0], upstream_port=upstreams[r.name][1]) if r.name in upstreams else r
        for r in spec.routes
    )
    spec = replace(spec, listen_host=args.listen_host, routes=routes)
    text = render_yaml(build_config(spec))
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _upstream(text: str) -> tuple[str, tuple[str, int]]:
    name, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    if not (name and host and port.isdigit()):
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, not {text!r}")
    return name, (host, int(port))


def _parser() -> argparse.ArgumentParser:
    root = project_root()
    parser = argparse.ArgumentParser(prog="portcullis", description="The governed MCP platform.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole platform locally on embedded defaults")
    up.add_argument("--workers", type=int, default=2, help="authz_service worker processes")
    up.add_argument(
        "--servers",
        default=",".join(server.name for server in DOMAIN_SERVERS),
        help="domain servers to run with their local backends, comma-separated, or 'none' (default: all)",
    )
    up.set_defaults(run=_up)

    policy = commands.add_parser("policy", help="test, check and explain the Polar policies")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    for name, run, text in (
        ("test", _policy_test, "run the policies' test table"),
        ("check", _policy_check, "validate syntax and that referenced servers and tools exist"),
        ("explain", _policy_explain, "show the decision and reason for one input"),
    ):
        sub = policy_commands.add_parser(name, help=text)
        sub.add_argument("--policies", type=Path, default=root / "policies")
        sub.add_argument("--catalog", type=Path, default=root / "config" / "catalog.yaml")
        sub.set_defaults(run=run)
        if name == "test":
            sub.add_argument("--cases", type=Path, default=root / "policies" / "cases.yaml")
        if name == "explain":
            sub.add_argument("--user", required=True)
            sub.add_argument("--client", required=True)
            sub.add_argument("--group", action="append", default=[])
            sub.add_argument("--business-group", action="append", default=[])
            sub.add_argument("--server", required=True)
            sub.add_argument("--tool")
            sub.add_argument("--dataset")
            sub.add_argument("--action", help="default: connect, call (with --tool) or read (with --dataset)")
            sub.add_argument("--properties", help="JSON object: tool arguments or dataset properties")

    token = commands.add_parser("token", help="mint a development token (embedded directory only)")
    token.add_argument("--user", required=True)
    token.add_argument("--client", required=True)
    audience = token.add_mutually_exclusive_group(required=True)
    audience.add_argument("--server", help="the gateway route of the MCP server the token is for (its audience)")
    audience.add_argument("--resource", help="the audience URI itself, e.g. the registry http://127.0.0.1:8282")
    token.add_argument("--gateway", default="http://127.0.0.1:8080")
    token.add_argument("--issuer", default="http://127.0.0.1:8181")
    token.add_argument("--ttl", type=int, help="seconds (default and maximum: AUTHZ_ACCESS_TOKEN_TTL_SECONDS)")
    token.add_argument("--directory", type=Path)
    token.add_argument("--key-dir", type=Path, help="the signing-key ring (default: .portcullis/keys)")
    token.set_defaults(run=_token)

    keys = commands.add_parser("keys", help="the authorization server's signing keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_commands.add_parser(
        "rotate", help="publish a new signing key now; it signs after --activate-in, the old one retires after"
    )
    rotate.add_argument(
        "--activate-in", type=_seconds, metavar="SECONDS",
        help="delay before the new key signs, longer than every JWKS cache (the gateway's: 300 s); "
        "default: AUTHZ_KEY_ACTIVATION_SECONDS (330)",
    )  # fmt: skip
    rotate.set_defaults(run=_keys_rotate)
    listing = keys_commands.add_parser("list", help="every key: created, active from, retire at, state")
    listing.set_defaults(run=_keys_list)
    for sub in (rotate, listing):
        sub.add_argument("--key-dir", type=Path, help="the signing-key ring (default: .portcullis/keys)")

    gateway = commands.add_parser("gateway", help="the Envoy gateway")
    gateway_commands = gateway.add_subparsers(dest="gateway_command", required=True)
    config = gateway_commands.add_parser("config", help="render the Envoy config for the catalog")
    config.add_argument("--catalog", type=Path, default=root / "config" / "catalog.yaml")
    config.add_argument("--issuer", default="http://127.0.0.1:8181")
    config.add_argument("--jwks-uri")
    config.add_argument("--authz-host", default="127.0.0.1")
    config.add_argument("--authz-port", type=int, default=9191)
    config.add_argument("--authz-workers", type=int, default=2)
    config.add_argument("--public-url", default="http://127.0.0.1:8080")
    config.add_argument("--listen-host", default="127.0.0.1", help="listener address (0.0.0.0 in a container)")
    config.add_argument(
        "--upstream", type=_upstream, action="append", default=[], metavar="NAME=HOST:PORT",
        help="override a server's upstream from the catalog (repeatable), e.g. demo=demo:8300 for compose",
    )  # fmt: skip
    config.add_argument("--out", type=Path)
    config.set_defaults(run=_gateway_config)
    add_server_commands(commands, root)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except _EXPECTED_ERRORS as exc:
        message = str(exc).split("\n", 1)[0] if not isinstance(exc, ValidationError) else str(exc).replace("\n", " ")
        print(f"portcullis: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
