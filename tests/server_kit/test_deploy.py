"""Deployment artifacts: every generated Kubernetes manifest is valid against the Kubernetes schemas (strict: an
unknown field is an error), the compose service against the Compose Specification, and they say what they must.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from server_kit.deploy import (
    DeploySpec,
    compose_service,
    gateway_route,
    kubernetes_manifests,
    render_yaml,
    write_artifacts,
)
from server_kit.errors import ConfigurationError

VERSION = kubernetes_validate.latest_version()
SPEC = DeploySpec(
    server="finance-reports",
    target="servers.finance_reports.server:kit",
    version="1.2.0",
    image="registry.example.com/portcullis/finance-reports:1.2.0",
    owner_team="finance-eng",
    business_group="finance",
    sensitivity="restricted",
)


def by_kind(spec: DeploySpec = SPEC) -> dict[str, dict[str, Any]]:
    return {manifest["kind"]: manifest for manifest in kubernetes_manifests(spec)}


@pytest.mark.parametrize("kind", ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"])
def test_each_manifest_is_valid_against_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(by_kind()[kind], VERSION, strict=True)


def test_the_schema_check_rejects_a_typo_so_it_is_not_vacuous() -> None:
    deployment = copy.deepcopy(by_kind()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def test_probes_ask_healthz_on_the_named_port_and_limits_are_set() -> None:
    pod = by_kind()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"][0]["name"] == "http"
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False


def test_secrets_come_from_a_secret_and_settings_use_the_servers_prefix() -> None:
    (container,) = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert all(name.startswith("KIT_FINANCE_REPORTS_") for name in env)
    credential = env["KIT_FINANCE_REPORTS_AUTHZ_CREDENTIAL"]
    assert "value" not in credential and credential["valueFrom"]["secretKeyRef"]["name"] == "finance-reports-kit"
    assert env["KIT_FINANCE_REPORTS_ENVIRONMENT"]["value"] == "production"
    assert env["KIT_FINANCE_REPORTS_RESOURCE"]["value"] == "https://mcp.example.com/servers/finance-reports/mcp"


def test_selectors_of_service_budget_and_autoscaler_match_the_pods() -> None:
    kinds = by_kind(DeploySpec(**{**SPEC.__dict__, "min_replicas": 3, "max_replicas": 7}))
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        kinds["Service"]["spec"]["selector"],
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    scaler = kinds["HorizontalPodAutoscaler"]["spec"]
    assert scaler["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert (scaler["minReplicas"], scaler["maxReplicas"]) == (3, 7)
    assert kinds["Deployment"]["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"server": "Finance"}, "DNS label"),
        ({"target": "servers.finance"}, "module:attribute"),
        ({"min_replicas": 5, "max_replicas": 2}, "replicas"),
        ({"image": "bad image"}, "image"),
        ({"image": ""}, "image"),
        ({"port": 70_000}, "port"),
        ({"namespace": "Portcullis"}, "namespace"),
        ({"secret_name": "kit_secret"}, "secret_name"),
    ],
)
def test_an_invalid_spec_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DeploySpec(**{**SPEC.__dict__, **change})


def test_the_compose_service_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    jsonschema.validate({"services": {"finance-reports": compose_service(SPEC)}}, schema)
    service = compose_service(SPEC)
    assert service["environment"]["KIT_FINANCE_REPORTS_AUTHZ_CREDENTIAL"].startswith("${PORTCULLIS_FINANCE_REPORTS_")


def test_write_artifacts_writes_parseable_yaml(tmp_path: Path) -> None:
    paths = write_artifacts(SPEC, tmp_path / "deploy")
    assert [path.name for path in paths] == ["kubernetes.yaml", "compose.yaml"]
    assert len(list(yaml.safe_load_all(paths[0].read_text()))) == 4
    assert "finance-reports" in yaml.safe_load(paths[1].read_text())["services"]
    assert gateway_route(SPEC)["upstream"] == "mcp-finance-reports.portcullis.svc.cluster.local:8300"
    assert json.dumps(gateway_route(SPEC))


def test_free_text_governance_values_are_annotations_not_labels() -> None:
    spec = DeploySpec(**{**SPEC.__dict__, "owner_team": "Finance Engineering", "version": "1.2.0+build.7"})
    for manifest in kubernetes_manifests(spec):
        kubernetes_validate.validate(manifest, VERSION, strict=True)
        metadata = manifest["metadata"]
        assert "portcullis.dev/owner-team" not in metadata["labels"]
        assert "app.kubernetes.io/version" not in metadata["labels"]
        assert metadata["annotations"]["portcullis.dev/owner-team"] == "Finance Engineering"
        assert metadata["annotations"]["app.kubernetes.io/version"] == "1.2.0+build.7"
        assert metadata["labels"]["portcullis.dev/business-group"] == "finance"


def test_manifests_share_no_objects_so_the_yaml_has_no_aliases() -> None:
    deployment, service, *_ = kubernetes_manifests(SPEC)
    deployment["metadata"]["labels"]["edited"] = "yes"
    assert "edited" not in service["metadata"]["labels"]
    assert "edited" not in deployment["spec"]["template"]["metadata"]["labels"]
    rendered = render_yaml(kubernetes_manifests(SPEC))
    assert "&id" not in rendered and "*id" not in rendered


def test_a_failed_write_leaves_no_partial_or_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "kubernetes.yaml").mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_artifacts(SPEC, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kubernetes.yaml"]


def test_a_deployment_names_its_revocation_feed_when_given_else_the_kit_finds_it_in_the_issuers_metadata() -> None:
    def env(spec: DeploySpec) -> dict[str, Any]:
        (container,) = by_kind(spec)["Deployment"]["spec"]["template"]["spec"]["containers"]
        return {item["name"]: item for item in container["env"]}

    given = DeploySpec(**{**SPEC.__dict__, "revocation_url": "https://auth.example.com/revocations"})
    assert env(given)["KIT_FINANCE_REPORTS_REVOCATION_URL"]["value"] == "https://auth.example.com/revocations"
    assert "KIT_FINANCE_REPORTS_REVOCATION_URL" not in env(SPEC)
