from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from tests.server_kit.support import Issuer, real_authzen, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    """A signing key whose JWKS a real HTTP server on 127.0.0.1 publishes."""
    with running_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def authzen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    """authz_service's AuthZEN app in-process, with the real policies and catalog."""
    with real_authzen(tmp_path_factory.mktemp("authzen")) as (app, _):
        yield app
