"""Shared builders for authz_service unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authz_service.catalog import FileCatalogSource
from authz_service.decision import Actor, Decider
from authz_service.metrics import Metrics
from authz_service.policy import PolicyEngine
from portcullis_contracts.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
CATALOG = ROOT / "config" / "catalog.yaml"

ALICE = Actor(id="alice", client="claude-desktop", email="alice@example.com",
              groups=("ads-eng", "eng"), business_groups=("ads",))  # fmt: skip
BOB = Actor(id="bob", client="claude-desktop", groups=("eng",), business_groups=("search",))


class ListLog:
    """A decision sink that keeps what it is given (a fake, for asserting on logged decisions)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def submit(self, item: Any) -> None:
        self.items.append(item)


def catalog() -> Catalog:
    return FileCatalogSource(CATALOG).load()


def decider(
    policy_dir: Path = POLICIES, *, log: ListLog | None = None, cache_size: int = 1000, **options: Any
) -> tuple[Decider, PolicyEngine, ListLog]:
    engine = PolicyEngine(policy_dir, timeout_ms=100)
    engine.reload()
    sink = log or ListLog()
    loaded = catalog()
    built = Decider(
        engine=engine, catalog=lambda: loaded, log=sink, metrics=Metrics(), cache_size=cache_size, **options
    )
    return built, engine, sink
