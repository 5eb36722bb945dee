"""Wiring: everything one authz_service process needs, built from settings (never at import time)."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

from authz_service.catalog import EMPTY_REVISION, CatalogSource, FileCatalogSource, RegistryCatalogSource
from authz_service.decision import Decider, decision_record
from authz_service.decision_log import DecisionLog
from authz_service.errors import PolicyLoadError
from authz_service.identity.provider import IdentityProvider
from authz_service.keys import KeyRing
from authz_service.metrics import Metrics
from authz_service.policy import PolicyEngine
from authz_service.settings import Settings
from portcullis_contracts.catalog import Catalog, CatalogError
from portcullis_contracts.revocations import RevocationFollower

__all__ = ["CatalogHolder", "Runtime", "settle_heap"]

logger = logging.getLogger("portcullis.authz")


def settle_heap() -> None:
    """Collect once, then exempt what survives (the new catalog) from future cyclic collections.

    A 10,000-server catalog is millions of long-lived objects; without this the collector's full passes paused
    decisions for 250-360 ms (measured by bench/registry_bench.py). Refcounting still frees an old catalog.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class CatalogHolder:
    """The catalog in force; a reload that fails keeps the previous one."""

    def __init__(self, source: CatalogSource, metrics: Metrics):
        self.source = source
        self._metrics = metrics
        self.last_error: CatalogError | None = None
        if source.poll_seconds is None:
            self._current = source.load()  # a file that cannot be read: refuse to start
        else:
            # A registry that is not up yet: start with an empty catalog (every decision denies) and keep polling.
            self._current = Catalog([], EMPTY_REVISION)
            self.reload()

    @property
    def loaded(self) -> bool:
        return self._current.revision != EMPTY_REVISION

    def current(self) -> Catalog:
        return self._current

    def reload(self) -> None:
        try:
            catalog = self.source.load()
        except CatalogError as exc:
            self.last_error = exc
            self._metrics.catalog_reloads.labels(result="failure").inc()
            logger.error("catalog reload rejected, revision %s stays in force: %s", self._current.revision, exc)
            return
        self.last_error = None
        changed = catalog.revision != self._current.revision
        if changed:
            logger.info("catalog revision %s loaded (%d servers)", catalog.revision, len(catalog.servers))
        self._current = catalog
        if changed:
            settle_heap()
        self._metrics.catalog_reloads.labels(result="success").inc()


class Runtime:
    """One process's policy engine, catalog, decision log and decider.

    Raises:
        CatalogError: the catalog cannot be loaded (the service refuses to start without one).
        KeyRingError: the signing-key ring in `settings.key_dir` is corrupt.
    """

    def __init__(self, settings: Settings, *, keys: KeyRing | None = None):
        self.settings = settings
        self.metrics = Metrics()
        self.engine = PolicyEngine(settings.policy_dir, timeout_ms=settings.policy_timeout_ms, on_reload=self._counted)
        try:
            self.engine.reload()
        except PolicyLoadError:
            pass  # not ready: every decision is a denial until a valid policy set appears (watched)
        source: CatalogSource
        if settings.registry_url:
            source = RegistryCatalogSource(
                settings.registry_url,
                credential=settings.registry_credential.get_secret_value(),
                poll_seconds=settings.registry_poll_seconds,
            )
        else:
            source = FileCatalogSource(settings.catalog_file)
        self.catalog = CatalogHolder(source, self.metrics)
        self.log = DecisionLog(settings.decision_log, formatter=decision_record, metrics=self.metrics)
        self.decider = Decider(
            engine=self.engine,
            catalog=self.catalog.current,
            log=self.log,
            metrics=self.metrics,
            cache_size=settings.cache_size,
            shadow_mode=settings.shadow_mode,
            shadow_servers=frozenset(settings.shadow_servers),
        )
        self.keys = keys or KeyRing.load_or_create(settings.key_dir, activation_seconds=settings.key_activation_seconds)
        self.identity: IdentityProvider | None = None
        if settings.identity:
            self.identity = IdentityProvider(settings, catalog=self.catalog.current, keys=self.keys)
        # The edge follows the revocation feed over HTTP like every kit server, even when this process publishes
        # it: identity can move to its own service (its feed URL changes, nothing else) and no worker reads the
        # identity store for it.
        self.revocations: RevocationFollower | None = None
        if settings.revocation_feed():
            self.revocations = RevocationFollower(
                url=settings.revocation_feed(),
                poll_seconds=settings.revocation_poll_seconds,
                max_staleness_seconds=settings.revocation_max_staleness_seconds,
            )
        else:
            logger.warning("no revocation feed: a revoked token is refused at the edge only once it expires")

    def _counted(self, success: bool) -> None:
        (self.metrics.reloads if success else self.metrics.reload_failures).inc()

    def reload_policies(self) -> None:
        try:
            self.engine.reload()
        except PolicyLoadError:
            pass  # logged and counted by the engine; the previous revision decides

    async def follow_catalog(self, stop: asyncio.Event | None = None) -> None:
        """Poll a remote catalog source (the registry) until cancelled or `stop` is set; no-op for files."""
        interval = self.catalog.source.poll_seconds
        if interval is None:
            return
        while stop is None or not stop.is_set():
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.catalog.reload)

    def revoked_tokens(self) -> frozenset[str]:
        """The ids of revoked access tokens not yet past expiry, from the feed (empty when there is none).

        Raises:
            RevocationsUnavailable: the feed has not answered within its bound (the edge answers 503).
        """
        return self.revocations.revoked() if self.revocations is not None else frozenset()

    @property
    def revocations_ready(self) -> bool:
        """Whether the edge can check revocations now (always, when there is no feed to follow)."""
        return self.revocations is None or self.revocations.fresh

    async def follow_revocations(self, stop: asyncio.Event | None = None, interval: float = 1.0) -> None:
        """Follow the revocation feed and, with the built-in identity, purge expired identity state now and then,
        until cancelled or `stop` is set.
        """

        async def purge() -> None:
            while self.identity is not None and (stop is None or not stop.is_set()):
                await asyncio.sleep(interval)
                await asyncio.to_thread(self.identity.purge_now_and_then)

        await asyncio.gather(purge(), *([self.revocations.run(stop)] if self.revocations is not None else []))

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Reload policies and a file catalog when their files change (runs until cancelled or `stop` is set)."""
        from watchfiles import awatch

        policy_dir = self.settings.policy_dir.resolve()
        catalog_paths = {path.resolve() for path in self.catalog.source.watched_paths()}
        roots = {policy_dir, *(path.parent for path in catalog_paths)}
        async for changes in awatch(*roots, stop_event=stop, debounce=200, step=50):
            changed = {Path(path).resolve() for _, path in changes}
            if any(path.parent == policy_dir and path.suffix == ".polar" for path in changed):
                await asyncio.to_thread(self.reload_policies)
            if changed & catalog_paths:
                await asyncio.to_thread(self.catalog.reload)

    def close(self) -> None:
        self.log.close()
        if self.identity is not None:
            self.identity.close()
