"""envoy/envoy.yaml, the gateway config of docker-compose.yml: what the generator renders today, accepted by Envoy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway import validate_config
from portcullis.cli import main

ROOT = Path(__file__).resolve().parents[2]
RENDERED = ROOT / "envoy" / "envoy.yaml"
# The command of envoy/README.md, without `--out`.
REGENERATE_ARGS = (
    "gateway", "config",
    "--listen-host", "0.0.0.0",
    "--issuer", "http://127.0.0.1:8181",
    "--jwks-uri", "http://authz:8181/.well-known/jwks.json",
    "--authz-host", "authz",
    "--authz-port", "9191",
    "--authz-workers", "2",
    "--public-url", "http://127.0.0.1:8080",
    "--upstream", "demo=demo:8300",
)  # fmt: skip


def _rendered() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(RENDERED.read_text())
    return config


def _endpoints(cluster_name: str) -> list[tuple[str, int]]:
    cluster = next(c for c in _rendered()["static_resources"]["clusters"] if c["name"] == cluster_name)
    return [
        (
            lb["endpoint"]["address"]["socket_address"]["address"],
            lb["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for group in cluster["load_assignment"]["endpoints"]
        for lb in group["lb_endpoints"]
    ]


def test_committed_envoy_yaml_is_what_the_generator_renders_today(tmp_path: Path) -> None:
    out = tmp_path / "envoy.yaml"
    assert main([*REGENERATE_ARGS, "--catalog", str(ROOT / "config" / "catalog.yaml"), "--out", str(out)]) == 0
    assert RENDERED.read_text() == out.read_text(), "envoy/envoy.yaml is stale: regenerate it (envoy/README.md)"


def test_committed_envoy_yaml_passes_envoy_validate() -> None:
    # STRICT_DNS clusters name compose hosts (authz, demo); validate mode does not resolve them.
    validate_config(RENDERED)


def test_readme_gives_the_command_this_test_renders_with() -> None:
    command = " ".join(["portcullis", *REGENERATE_ARGS, "--out", "envoy/envoy.yaml"])
    assert command in (ROOT / "envoy" / "README.md").read_text()


def test_envoy_yaml_agrees_with_docker_compose() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    authz = services["authz"]["environment"]
    config = _rendered()
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    providers = manager["http_filters"][0]["typed_config"]["providers"]
    assert {provider["issuer"] for provider in providers.values()} == {authz["AUTHZ_ISSUER"]}
    assert _endpoints("jwks") == [("authz", int(authz["AUTHZ_HTTP_PORT"]))]
    grpc_port, workers = int(authz["AUTHZ_GRPC_PORT"]), int(authz["AUTHZ_WORKERS"])
    assert _endpoints("authz") == [("authz", grpc_port + i) for i in range(workers)]
    demo_command = services["demo"]["command"]
    assert _endpoints("server-demo") == [("demo", int(demo_command[demo_command.index("--port") + 1]))]

    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener["address"] == "0.0.0.0"
    assert [f"127.0.0.1:{listener['port_value']}:{listener['port_value']}"] == services["gateway"]["ports"]
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"  # never published
