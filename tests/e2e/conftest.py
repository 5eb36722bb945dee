from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portcullis.testing import LocalPlatform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """The real platform (authz_service with 2 workers, demo server, Envoy) shared by a test module."""
    workdir: Path = tmp_path_factory.mktemp("platform")
    with LocalPlatform.start(workdir, workers=2) as running:
        yield running
