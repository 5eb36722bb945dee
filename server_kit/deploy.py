"""Deployment artifacts of one kit server: Kubernetes manifests and a docker-compose service.

Kubernetes: a Deployment (probes on `/healthz`, requests and limits, a locked-down security context, secrets
from a Secret, never literal), a Service, a HorizontalPodAutoscaler on CPU and a PodDisruptionBudget, so a
node drain or a rollout never takes every replica at once. Kit servers are stateless (every request carries
its token; a confirmation's state travels sealed with the client), so replicas scale horizontally; they share
the request-state keys through the Secret. Every manifest is built from fresh dicts, so the rendered YAML has no
anchors or aliases for a reviewer to chase, and a caller editing one manifest cannot change another.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portcullis_contracts.resource_metadata import canonical_uri
from server_kit.errors import ConfigurationError
from server_kit.settings import env_prefix

__all__ = ["DeploySpec", "compose_service", "gateway_route", "kubernetes_manifests", "render_yaml", "write_artifacts"]

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")  # a Secret's name: an RFC 1123 subdomain


@dataclass(frozen=True)
class DeploySpec:
    """Where and how one kit server runs.

    Raises:
        ConfigurationError: a field is invalid (server or namespace not a DNS label, target not `module:attr`,
            replicas, port or CPU target out of range, an image reference that is empty or has whitespace).
    """

    server: str
    target: str
    version: str
    image: str
    port: int = 8300
    namespace: str = "portcullis"
    issuer: str = "https://auth.example.com"
    jwks_url: str = ""
    revocation_url: str = ""  # empty: the feed the issuer's metadata names
    gateway_url: str = "https://mcp.example.com"
    authz_url: str = "http://authz.portcullis.svc.cluster.local:8181"
    secret_name: str = ""
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "128Mi"
    memory_limit: str = "512Mi"
    owner_team: str = ""
    business_group: str = ""
    sensitivity: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.server):
            raise ConfigurationError(f"server name {self.server!r} must be a lower-case DNS label")
        if not _TARGET.fullmatch(self.target):
            raise ConfigurationError(f"target {self.target!r} must be module:attribute")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigurationError("replicas: need 1 <= min_replicas <= max_replicas")
        if not 1 <= self.port <= 65_535:
            raise ConfigurationError(f"port {self.port} is out of range")
        if not self.image or any(c.isspace() for c in self.image):
            raise ConfigurationError("image must be a non-empty reference without whitespace")
        if not 1 <= self.target_cpu_percent <= 100:
            raise ConfigurationError("target_cpu_percent must be between 1 and 100")
        if not _NAME.fullmatch(self.namespace):
            raise ConfigurationError(f"namespace {self.namespace!r} must be a lower-case DNS label")
        if self.secret_name and not _SUBDOMAIN.fullmatch(self.secret_name):
            raise ConfigurationError(f"secret_name {self.secret_name!r} must be a lower-case DNS subdomain")

    @property
    def name(self) -> str:
        """The name of every Kubernetes object of this server: `mcp-<server>`."""
        return f"mcp-{self.server}"

    @property
    def secret(self) -> str:
        """The Secret holding the server's credentials: `secret_name`, or `<server>-kit`."""
        return self.secret_name or f"{self.server}-kit"


def _governance(spec: DeploySpec) -> dict[str, str]:
    values = {
        "app.kubernetes.io/version": spec.version,
        "portcullis.dev/owner-team": spec.owner_team,
        "portcullis.dev/business-group": spec.business_group,
        "portcullis.dev/sensitivity": spec.sensitivity,
    }
    return {key: value for key, value in values.items() if value}


def _labels(spec: DeploySpec) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": "mcp-server",
        "app.kubernetes.io/part-of": "portcullis",
        "app.kubernetes.io/managed-by": "portcullis",
    }
    # A label value is at most 63 characters of [-A-Za-z0-9_.]: free text ("Finance Engineering", "1.0+b1")
    # would make the API server reject the object, so it lives in the annotations only.
    governance = _governance(spec).items()
    return labels | {key: value for key, value in governance if len(value) <= 63 and _LABEL_VALUE.fullmatch(value)}


def _metadata(spec: DeploySpec) -> dict[str, Any]:
    # The annotations keep every governance value verbatim, including those too free-form to be labels.
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace, "labels": _labels(spec)}
    if annotations := _governance(spec):
        metadata["annotations"] = annotations
    return metadata


def _selector(spec: DeploySpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/instance": spec.name}


def _environment(spec: DeploySpec) -> list[dict[str, Any]]:
    prefix = env_prefix(spec.server)
    plain = {
        "ENVIRONMENT": "production",
        "HOST": "0.0.0.0",
        "PORT": str(spec.port),
        "ISSUER": spec.issuer,
        "JWKS_URL": spec.jwks_url,
        "REVOCATION_URL": spec.revocation_url,
        "GATEWAY_URL": spec.gateway_url,
        "RESOURCE": canonical_uri(spec.gateway_url, spec.server),
        "AUTHZ_URL": spec.authz_url,
        "LOG_LEVEL": "INFO",
    }
    env: list[dict[str, Any]] = [{"name": prefix + key, "value": value} for key, value in plain.items() if value]
    for key, secret_key, optional in (
        ("AUTHZ_CREDENTIAL", "authz-credential", False),
        ("CLIENT_SECRET", "client-secret", True),
        ("REQUEST_STATE_KEYS", "request-state-keys", False),
    ):
        reference = {"name": spec.secret, "key": secret_key, "optional": optional}
        env.append({"name": prefix + key, "valueFrom": {"secretKeyRef": reference}})
    return env


def _probe(*, period: int, failures: int) -> dict[str, Any]:
    # Startup allows `period * failures` seconds to come up; then liveness restarts a wedged process and
    # readiness takes a replica out of the Service while /healthz fails.
    return {
        "httpGet": {"path": "/healthz", "port": "http"},
        "timeoutSeconds": 2,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def kubernetes_manifests(spec: DeploySpec) -> list[dict[str, Any]]:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget, in that order, sharing no dicts."""
    container = {
        "name": "server",
        "image": spec.image,
        "command": ["python", "-m", "server_kit", "serve", spec.target],
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": _environment(spec),
        "readinessProbe": _probe(period=5, failures=3),
        "livenessProbe": _probe(period=10, failures=3),
        "startupProbe": _probe(period=1, failures=30),
        "resources": {
            "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
            "limits": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec),
        "spec": {
            "replicas": spec.min_replicas,
            "selector": {"matchLabels": _selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": _labels(spec),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": _selector(spec)},
                        }
                    ],
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(spec),
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": spec.target_cpu_percent},
                    },
                }
            ],
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(spec)}},
    }
    return [deployment, service, autoscaler, budget]


def compose_service(spec: DeploySpec) -> dict[str, Any]:
    """A docker-compose service in the style of docker-compose.yml's `demo`."""
    prefix = env_prefix(spec.server)
    variable = f"PORTCULLIS_{prefix[4:]}CREDENTIAL"
    health = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{spec.port}/healthz', timeout=2)"
    return {
        "image": spec.image,
        "command": ["python", "-m", "server_kit", "serve", spec.target, "--host", "0.0.0.0", "--port", str(spec.port)],
        "restart": "unless-stopped",
        "init": True,
        "read_only": True,
        "tmpfs": ["/tmp"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "environment": {
            f"{prefix}ISSUER": "http://127.0.0.1:8181",
            f"{prefix}JWKS_URL": "http://authz:8181/.well-known/jwks.json",
            f"{prefix}RESOURCE": canonical_uri("http://127.0.0.1:8080", spec.server),
            f"{prefix}AUTHZ_URL": "http://authz:8181",
            f"{prefix}AUTHZ_CREDENTIAL": f"${{{variable}:?set {variable} to this server's AuthZEN credential}}",
            # The kit's production mode accepts plain http on loopback only, and authz is reached over the internal
            # compose network (no route out, nothing published); the credential still comes from the deployment.
            f"{prefix}ENVIRONMENT": "development",
        },
        "networks": ["mesh"],
        "healthcheck": {
            "test": ["CMD", "python", "-c", health],
            "interval": "10s",
            "timeout": "3s",
            "retries": 3,
            "start_period": "30s",
            "start_interval": "1s",
        },
    }


def gateway_route(spec: DeploySpec) -> dict[str, str]:
    """Where the gateway serves the server and where it sends its traffic."""
    return {
        "route": f"/servers/{spec.server}/mcp",
        "canonical_uri": canonical_uri(spec.gateway_url, spec.server),
        "upstream": f"{spec.name}.{spec.namespace}.svc.cluster.local:{spec.port}",
    }


def render_yaml(documents: list[dict[str, Any]]) -> str:
    """Multi-document YAML."""
    return "---\n".join(yaml.safe_dump(document, sort_keys=False) for document in documents)


def _write_atomically(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_artifacts(spec: DeploySpec, directory: Path) -> list[Path]:
    """Write `kubernetes.yaml` and `compose.yaml` into `directory` (created if missing), each replaced in one
    rename: both are rendered before either is written, and a failed write leaves no partial or temporary file.

    Raises:
        OSError: the directory cannot be created or a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        directory / "kubernetes.yaml": render_yaml(kubernetes_manifests(spec)),
        directory / "compose.yaml": yaml.safe_dump({"services": {spec.server: compose_service(spec)}}, sort_keys=False),
    }
    for path, text in files.items():
        _write_atomically(path, text)
    return list(files)
