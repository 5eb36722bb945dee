"""`portcullis server new|validate|deploy|dev`: the pipeline from an idea to a governed server behind the gateway.

    portcullis server new weather --namespace com.portcullis.data --owner-team data-platform
    portcullis server validate servers/weather
    portcullis server deploy servers/weather --token "$TOKEN"      # publish for review + deployment artifacts
    portcullis server dev servers/weather                          # run it behind the local gateway (`make up`)

Every refusal is a clear message and a non-zero exit; `deploy` publishes nothing when validation fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from authz_service.credentials import ensure_credential
from gateway.config import canonical_uri, render_yaml, route_config, spec_from_catalog
from portcullis.processes import wait_http
from portcullis.server_checks import Finding, validate_project
from portcullis.up import SERVICE_CREDENTIALS_DIR, kit_server_environment
from portcullis_contracts.catalog import Catalog
from server_kit.errors import KitError
from server_kit.project import ServerProject, catalog_entry
from server_kit.scaffold import ScaffoldSpec, scaffold
from server_kit.settings import env_prefix

__all__ = ["add_server_commands"]

EXIT_INVALID = 1
_DEFAULT_REGISTRY = "http://127.0.0.1:8282"
_DEFAULT_ISSUER = "http://127.0.0.1:8181"
_DEFAULT_GATEWAY = "http://127.0.0.1:8080"


def _new(args: argparse.Namespace) -> int:
    spec = ScaffoldSpec(
        name=args.name,
        namespace=args.namespace,
        owner_team=args.owner_team,
        business_group=args.business_group,
        sensitivity=args.sensitivity,
        port=args.port,
    )
    folder = scaffold(spec, args.path)
    project = ServerProject.at(folder)
    print(f"created {folder} ({project.target})")
    print(f"  its tests:     pytest {_shown(folder / 'tests')}")
    print(f"  validate:      portcullis server validate {_shown(folder)}")
    print(f"  run it:        portcullis server dev {_shown(folder)}   (with `make up` running)")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _report(findings: list[Finding]) -> bool:
    for finding in findings:
        print(finding, file=sys.stderr if finding.level == "error" else sys.stdout)
    return not any(finding.level == "error" for finding in findings)


def _validate(args: argparse.Namespace) -> int:
    project = ServerProject.at(args.path)
    if not _report(validate_project(project, args.policy_dir)):
        print(f"portcullis: {project.directory.name} is not ready to deploy", file=sys.stderr)
        return EXIT_INVALID
    server = project.validated()
    print(f"ok: {server.name} {server.version}: every tool governed, server.json valid, the policies decide its tools")
    return 0


def _token(args: argparse.Namespace) -> str:
    token = args.token or os.environ.get("PORTCULLIS_TOKEN", "")
    if not token:
        raise KitError(
            "a registry token is needed (--token or PORTCULLIS_TOKEN); locally: TOKEN=$(portcullis token "
            f"--user bob --client registry-ui --resource {args.registry})"
        )
    return token


def _publish(registry: str, token: str, document: dict[str, Any], name: str, version: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=registry.rstrip("/"), headers=headers, timeout=15) as http:
        try:
            response = http.post("/v0.1/publish", json=document)
            if response.status_code == 409:
                # Re-running a deploy of a version already published (unchanged) is not an error.
                existing = http.get(f"/v0.1/servers/{name.replace('/', '%2F')}/versions/{version}")
                if existing.status_code == 200 and existing.json().get("server") == document:
                    return dict(existing.json())
        except httpx.HTTPError as exc:
            raise KitError(f"the registry at {registry} is unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        try:
            detail = response.json()
        except ValueError:
            detail = {"detail": response.text[:200]}
        message = detail.get("detail") or detail.get("error") or detail
        raise KitError(f"the registry refused the publication (HTTP {response.status_code}): {message}")
    return dict(response.json())


def _deploy(args: argparse.Namespace) -> int:
    from server_kit.deploy import DeploySpec, write_artifacts

    project = ServerProject.at(args.path)
    if not _report(validate_project(project, args.policy_dir)):
        print("portcullis: not deployed: fix the errors above (nothing was published)", file=sys.stderr)
        return EXIT_INVALID
    server = project.validated()
    document = project.document()
    if args.upstream:
        document["_meta"]["dev.portcullis/governance"]["upstream"] = args.upstream
    spec = DeploySpec(
        server=server.route,
        target=project.target,
        version=server.version,
        image=args.image or f"portcullis:{server.version}",
        port=int(server.governance.upstream.rpartition(":")[2]),
        namespace=args.namespace,
        issuer=args.issuer,
        gateway_url=args.gateway_url,
        owner_team=server.governance.owner_team,
        business_group=server.governance.business_group,
        sensitivity=server.governance.sensitivity,
    )
    out = args.out or project.directory / "deploy"
    written = write_artifacts(spec, out)
    catalog_server = {**catalog_entry(server), "upstream": document["_meta"]["dev.portcullis/governance"]["upstream"]}
    gateway = spec_from_catalog(
        Catalog.from_document({"servers": [catalog_server]}, revision="deploy"),
        issuer=args.issuer,
        jwks_uri=f"{args.issuer.rstrip('/')}/.well-known/jwks.json",
        authz_endpoints=[("127.0.0.1", 9191)],
        public_url=args.gateway_url,
    )
    route_file = out / "gateway-route.yaml"
    route_file.write_text(render_yaml(route_config(gateway)))
    entry = _publish(args.registry, _token(args), document, server.name, server.version)
    meta = entry.get("_meta", {}).get("dev.portcullis/governance", {})
    lifecycle = meta.get("lifecycle", "pending_review")
    print(f"published {server.name} {server.version} to {args.registry}: {lifecycle}")
    if lifecycle == "pending_review":
        print("  it is routed once its reviews are signed (security, legal, genai) in the registry UI or API")
    for path in [*written, route_file]:
        print(f"  wrote {_shown(path)}")
    print(f"  its address: {canonical_uri(args.gateway_url, server.route)}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    project = ServerProject.at(args.path)
    if not _report(validate_project(project, args.policy_dir)):
        print("portcullis: not started: fix the errors above", file=sys.stderr)
        return EXIT_INVALID
    server = project.validated()
    for name, url in (("authz_service", f"{args.issuer}/readyz"), ("registry", f"{args.registry}/readyz")):
        try:
            httpx.get(url, timeout=2).raise_for_status()
        except httpx.HTTPError:
            raise KitError(f"{name} is not running at {url}: start the platform first (`make up`)") from None
    credentials = args.state_dir / SERVICE_CREDENTIALS_DIR
    if not credentials.is_dir():
        raise KitError(f"no {credentials}: start the platform first (`make up`)")
    # The server's own AuthZEN credential: it speaks only for this server (authz_service reads the folder).
    credential = ensure_credential(credentials, server.route)
    host, _, port = server.governance.upstream.rpartition(":")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project.import_root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **kit_server_environment(
            server.route,
            issuer=args.issuer,
            jwks_url=f"{args.issuer}/.well-known/jwks.json",
            resource=canonical_uri(args.gateway_url, server.route),
            authz_url=args.issuer,
            authz_credential=credential,
        ),
        f"{env_prefix(server.route)}ALLOWED_HOSTS": json.dumps(
            ["127.0.0.1:*", "localhost:*", args.gateway_url.split("://", 1)[1]]
        ),
    }
    command = [sys.executable, "-m", "server_kit", "serve", project.target, "--host", host, "--port", port]
    process = subprocess.Popen(command, env=env)
    try:
        wait_http(f"http://{host}:{port}/healthz", timeout=30, process=process)
        approved = _routed(args.registry, server.name)
        print(f"{server.route} is running on {host}:{port}; through the gateway: "
              f"{canonical_uri(args.gateway_url, server.route)}")  # fmt: skip
        if not approved:
            print(f"  not routed yet: {server.name} is not approved in the registry (portcullis server deploy, then "
                  "its reviews)")  # fmt: skip
        print("Press Ctrl-C to stop.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        while process.poll() is None:
            time.sleep(0.2)
        return process.returncode or 0
    except (RuntimeError, TimeoutError) as exc:
        raise KitError(f"{server.route} did not start: {exc}") from None
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def _routed(registry: str, name: str) -> bool:
    try:
        response = httpx.get(f"{registry}/v0.1/servers/{name.replace('/', '%2F')}/versions/latest", timeout=5)
    except httpx.HTTPError:
        return False
    meta = response.json().get("_meta", {}).get("dev.portcullis/governance", {}) if response.status_code == 200 else {}
    return meta.get("lifecycle") in ("approved", "deprecated")


def add_server_commands(commands: Any, root: Path) -> None:
    """Add `server new|validate|deploy|dev` to the `portcullis` parser."""
    server = commands.add_parser("server", help="build, validate, deploy and run MCP servers on the server kit")
    sub = server.add_subparsers(dest="server_command", required=True)
    new = sub.add_parser("new", help="scaffold a server package that passes its own tests")
    new.add_argument("name", help="the server's name: its route, audience and policy name (e.g. weather)")
    new.add_argument("--path", type=Path, default=Path("servers"), help="the folder to create it in (servers/)")
    new.add_argument("--namespace", default="com.portcullis", help="registry namespace your team owns")
    new.add_argument("--owner-team", default="platform")
    new.add_argument("--business-group", default="")
    new.add_argument("--sensitivity", default="internal", choices=["public", "internal", "confidential", "restricted"])
    new.add_argument("--port", type=int, default=8310, help="its local port (the upstream in server.json)")
    new.set_defaults(run=_new)
    for name, text, run in (
        ("validate", "check a server package against everything the platform insists on", _validate),
        ("deploy", "publish for review and write its gateway route, compose and Kubernetes manifests", _deploy),
        ("dev", "run it locally behind the local gateway (`make up` running)", _dev),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("path", type=Path, help="the server package folder (servers/<name>)")
        command.add_argument("--policy-dir", type=Path, default=root / "policies")
        command.add_argument("--registry", default=_DEFAULT_REGISTRY)
        command.add_argument("--issuer", default=_DEFAULT_ISSUER)
        command.add_argument("--gateway-url", default=_DEFAULT_GATEWAY)
        command.set_defaults(run=run)
        if name == "deploy":
            command.add_argument("--token", help="a registry token (default: $PORTCULLIS_TOKEN)")
            command.add_argument("--upstream", help="host:port the gateway routes to (default: server.json's)")
            command.add_argument("--image", help="container image (default: portcullis:<version>)")
            command.add_argument("--namespace", default="portcullis", help="Kubernetes namespace")
            command.add_argument("--out", type=Path, help="artifact folder (default: <package>/deploy)")
        if name == "dev":
            command.add_argument("--state-dir", type=Path, default=root / ".portcullis")
