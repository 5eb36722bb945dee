"""docker-compose.yml: valid under the Compose Specification, and the platform's rules for containers hold.

There is no Docker engine here, so the file is checked against the Compose Specification JSON schema that
check-jsonschema vendors, offline.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from jsonschema.validators import validator_for

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MCP_SERVERS = ("demo",)


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = validator_for(schema)(schema)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    errors = _schema_errors(_compose())
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


def test_a_service_with_an_unknown_key_is_rejected_by_the_schema() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["authz"]["healthcheck_url"] = "http://127.0.0.1:8181/readyz"
    errors = _schema_errors(broken)
    assert errors
    assert any(error.startswith("services/authz") and "healthcheck_url" in error for error in errors), errors


def test_every_published_port_is_bound_to_127_0_0_1() -> None:
    published = [(name, port) for name, service in _services().items() for port in service.get("ports", [])]
    assert published
    for name, port in published:
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        assert host_ip == "127.0.0.1" and (isinstance(port, dict) or str(port).count(":") == 2), (name, port)


def test_every_service_has_a_healthcheck() -> None:
    for name, service in _services().items():
        healthcheck = service.get("healthcheck", {})
        assert not healthcheck.get("disable"), name
        assert healthcheck.get("test", ["NONE"])[0] == "CMD", name


def test_the_gateway_starts_only_after_authz_and_the_servers_are_healthy() -> None:
    depends_on = _services()["gateway"]["depends_on"]
    assert {name: dependency["condition"] for name, dependency in depends_on.items()} == {
        name: "service_healthy" for name in ("authz", *MCP_SERVERS)
    }


def test_mcp_servers_are_reachable_only_through_the_compose_network() -> None:
    # They verify every token themselves; defense in depth, nothing but the gateway may reach them either.
    networks = _compose()["networks"]
    for name in MCP_SERVERS:
        service = _services()[name]
        assert "ports" not in service, name
        assert all(networks[network].get("internal") is True for network in service["networks"]), name


def test_mcp_servers_verify_the_tokens_the_gateway_accepts_and_ask_authz_with_a_deployment_credential() -> None:
    authz = _services()["authz"]["environment"]
    envoy = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    providers = _find(envoy, "providers")
    for name in MCP_SERVERS:
        prefix = f"KIT_{name.upper()}_"
        environment = _services()[name]["environment"]
        # The same issuer and audience as the gateway's jwt_authn provider for this server.
        provider = providers[f"server-{name}"]
        assert provider["audiences"] == [environment[f"{prefix}RESOURCE"]], name
        assert environment[f"{prefix}ISSUER"] == provider["issuer"] == authz["AUTHZ_ISSUER"]
        assert environment[f"{prefix}JWKS_URL"] == "http://authz:8181/.well-known/jwks.json"
        # The issuer's own URL is not reachable from the server's container: the feed is named over the network.
        assert environment[f"{prefix}REVOCATION_URL"] == "http://authz:8181/revocations"
        assert environment[f"{prefix}AUTHZ_URL"] == "http://authz:8181"
        assert environment[f"{prefix}AUTHZ_CREDENTIAL"].startswith(f"${{PORTCULLIS_{name.upper()}_CREDENTIAL:?")


def _find(node: Any, key: str) -> Any:
    """The first value under `key` anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        children = list(node.values())
    else:
        children = node if isinstance(node, list) else []
    for child in children:
        found = _find(child, key)
        if found is not None:
            return found
    return None


def test_secrets_and_the_environment_come_from_the_deployment_not_the_file() -> None:
    environment = _services()["authz"]["environment"]
    assert environment["AUTHZ_SERVICE_CREDENTIALS"].startswith("${PORTCULLIS_SERVICE_CREDENTIALS:?")
    assert environment["AUTHZ_ENVIRONMENT"] == "${PORTCULLIS_ENVIRONMENT:-production}"


def test_policies_and_config_are_mounted_read_only_and_state_in_a_named_volume() -> None:
    volumes = _services()["authz"]["volumes"]
    assert "./policies:/app/policies:ro" in volumes
    assert "./config:/app/config:ro" in volumes
    state = next(volume for volume in volumes if volume.endswith(":/app/.portcullis"))
    assert state.split(":")[0] in _compose()["volumes"]


def test_the_python_image_runs_as_a_non_root_user() -> None:
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
