"""The `portcullis` command line. Every failure a user can cause is one line on stderr, never a trace."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from authz_service.catalog import FileCatalogSource
from authz_service.decision import Actor, ResourceRef
from authz_service.errors import AuthzError
from authz_service.keys import load_or_create_signing_key
from authz_service.policy_tools import check_references, explain, load_decider, run_cases
from authz_service.worker import PortInUseError
from gateway.config import build_config, canonical_uri, render_yaml, spec_from_catalog
from gateway.errors import GatewayError
from authz_service.identity.directory import DirectoryError, load_directory
from portcullis.up import PlatformError, UpOptions, run_up

__all__ = ["main"]

_EXPECTED_ERRORS = (AuthzError, GatewayError, PlatformError, PortInUseError, DirectoryError, ValidationError, OSError)


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
    options = UpOptions(root=root, state_dir=(root / ".portcullis").resolve(), workers=args.workers)
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


def _token(args: argparse.Namespace) -> int:
    root = project_root()
    directory = load_directory(args.directory or root / "config" / "directory.yaml")
    user = directory.user(args.user)
    directory.client(args.client)
    key = load_or_create_signing_key(root / ".portcullis" / "keys")
    token = key.mint(
        issuer=args.issuer,
        subject=args.user,
        audience=args.resource.rstrip("/") if args.resource else canonical_uri(args.gateway, args.server),
        client_id=args.client,
        claims={"email": user.email, "groups": user.groups, "business_groups": user.business_groups, "scope": "mcp"},
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


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
    token.add_argument("--ttl", type=int, default=3600)
    token.add_argument("--directory", type=Path)
    token.set_defaults(run=_token)

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
