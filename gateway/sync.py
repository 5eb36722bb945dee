"""Keeps the gateway's routes in step with the registry's catalog snapshot, without restarting Envoy.

`GatewaySync` polls `GET {registry}/v0.1/x/portcullis/catalog` with `If-None-Match`; on a new revision it
renders the servers of the snapshot into the dynamic files of `gateway.dynamic`, which Envoy picks up by
itself. Anything wrong (registry unreachable, an error status, a snapshot that does not validate) keeps the
last good config and is logged once, as one warning line. Until a first good snapshot the gateway routes no
server: every path is the JSON 404, so it fails closed.

    sync = GatewaySync(registry_url, spec, config_dir, public_url=public_url)
    envoy = start_envoy(sync.prepare(), log_path)   # prepare() writes the bootstrap and a first config
    sync.start()                                    # polls every `interval` seconds on a daemon thread
    ...
    sync.close()                                    # stop polling; Envoy keeps the last config
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.config import GatewaySpec, routes_from_catalog
from gateway.dynamic import BOOTSTRAP_FILE, validate_dynamic_spec, write_dynamic_bootstrap, write_dynamic_resources
from gateway.errors import GatewayError, SnapshotError
from portcullis_contracts.catalog import Catalog, CatalogError
from portcullis_contracts.catalog_snapshot import catalog_from_snapshot, snapshot_revision, snapshot_url

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_TIMEOUT", "GatewaySync"]

DEFAULT_INTERVAL = 1.0
DEFAULT_TIMEOUT = 2.0
_MAX_PROBLEM_CHARS = 300

logger = logging.getLogger(__name__)


class GatewaySync:
    """Follows the registry's catalog snapshot and rewrites the gateway's dynamic Envoy config on each revision.

    `revision` is the last revision applied (None before the first good snapshot) and `last_error` the problem
    that currently keeps an older config (None when in step). Both are safe to read from any thread.
    """

    def __init__(
        self,
        registry_url: str,
        spec: GatewaySpec,
        config_dir: Path,
        *,
        public_url: str,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        validate: bool = True,
        http: httpx.Client | None = None,
    ) -> None:
        """Nothing is fetched or written until `prepare`, `sync_once`, `start` or `run`.

        `spec` gives the static parts (listener, admin, authz, JWKS); its routes are replaced by the snapshot's
        servers, each with its canonical URI under `public_url` as audience. With `validate`, each new config
        is checked by `envoy --mode validate` (about 0.1 s) before it replaces the live one. `http` (for
        credentials or a transport) is used as given and left open; without it the sync owns a client with
        `timeout`.
        """
        self.snapshot_url = snapshot_url(registry_url)
        self.spec = dataclasses.replace(spec, routes=())
        self.config_dir = config_dir
        self.public_url = public_url
        self.interval = interval
        self.validate = validate
        self.revision: str | None = None
        self.last_error: str | None = None
        self._etag: str | None = None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self._prepared = False
        self._lock = threading.Lock()
        self._applied = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._where = _redacted(self.snapshot_url)

    @property
    def bootstrap_path(self) -> Path:
        """The bootstrap to start Envoy with (written by `prepare`)."""
        return self.config_dir / BOOTSTRAP_FILE

    def prepare(self) -> Path:
        """Write the bootstrap and the first config, from the snapshot if the registry serves a good one.

        Otherwise the first config routes no server. Returns the bootstrap's path; idempotent.

        Raises:
            ValueError: the spec's `jwks_uri` is not an http(s) URL.
            OSError: the config directory cannot be written.
        """
        with self._lock:
            if self._prepared:
                return self.bootstrap_path
            path = write_dynamic_bootstrap(self.spec, self.config_dir)
            self._prepared = True
        self.sync_once()
        return path

    def sync_once(self) -> bool:
        """Fetch the snapshot once and apply it if its revision is new; return whether a new one was applied.

        Never raises for a registry or snapshot problem: it is logged and the last good config stays.
        """
        with self._lock:
            try:
                fetched = self._fetch()
                if fetched is None:
                    self._in_step()
                    return False
                catalog, etag = fetched
                spec = dataclasses.replace(self.spec, routes=routes_from_catalog(catalog, self.public_url))
                if self.validate:
                    validate_dynamic_spec(spec)
                write_dynamic_resources(spec, self.config_dir, version=catalog.revision)
            except GatewayError as exc:  # SnapshotError, or Envoy rejects what the snapshot renders to
                self._problem(str(exc))
                return False
            except ValueError as exc:
                self._problem(f"snapshot rejected: {exc}")
                return False
            except OSError as exc:
                self._problem(f"cannot write the gateway config in {self.config_dir}: {exc.strerror or exc}")
                return False
            self._etag = etag
            with self._applied:
                self.revision = catalog.revision
                self._applied.notify_all()
            logger.info("gateway routes %d server(s) of catalog revision %r", len(spec.routes), catalog.revision)
            self._in_step()
            return True

    def run(self, stop: threading.Event) -> None:
        """Prepare, then sync every `interval` seconds until `stop` is set (blocking; for a CLI command).

        Raises:
            ValueError: the spec's `jwks_uri` is not an http(s) URL.
            OSError: the config directory cannot be written at all.
        """
        self.prepare()
        while not stop.wait(self.interval):
            try:
                self.sync_once()
            except Exception:
                # A bug, not a registry problem: keep the last good config and keep polling.
                logger.exception("gateway sync failed unexpectedly; keeping catalog revision %r", self.revision)

    def start(self) -> None:
        """Run the sync on a daemon thread (see `run`); `prepare` first to start Envoy before polling."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stopping,), name="gateway-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread started by `start` and wait for it; Envoy keeps the last config."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop, and close the HTTP client if the sync made it."""
        self.stop()
        if self._owns_http:
            self._http.close()

    def wait_for_revision(self, revision: str, timeout: float) -> bool:
        """Wait until `revision` is the applied one; False if it is not within `timeout` seconds."""
        with self._applied:
            return self._applied.wait_for(lambda: self.revision == revision, timeout)

    def __enter__(self) -> GatewaySync:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _fetch(self) -> tuple[Catalog, str | None] | None:
        """The snapshot's catalog and ETag, or None when the registry has nothing newer than what is applied."""
        headers = {"accept": "application/json"}
        if self._etag is not None:
            headers["if-none-match"] = self._etag
        try:
            response = self._http.get(self.snapshot_url, headers=headers)
        except httpx.HTTPError as exc:
            # The class name only: some httpx messages carry the URL, which may carry credentials.
            raise SnapshotError(f"registry unreachable ({type(exc).__name__})") from None
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise SnapshotError(f"registry answered {response.status_code}")
        try:
            document: Any = response.json()
        except ValueError:
            raise SnapshotError("snapshot is not JSON") from None
        try:
            revision = snapshot_revision(document)
        except CatalogError as exc:
            raise SnapshotError(str(exc)) from None
        if revision == self.revision:
            self._etag = response.headers.get("etag")
            return None
        try:
            catalog = catalog_from_snapshot(document)
        except CatalogError as exc:
            raise SnapshotError(f"snapshot rejected: {exc}") from None
        return catalog, response.headers.get("etag")

    def _problem(self, problem: str) -> None:
        problem = problem[:_MAX_PROBLEM_CHARS]
        if problem != self.last_error:  # once per distinct problem, not once a second
            logger.warning("gateway sync from %s: %s; keeping catalog revision %r", self._where, problem, self.revision)
        self.last_error = problem

    def _in_step(self) -> None:
        if self.last_error is not None:
            logger.info("gateway sync from %s recovered at catalog revision %r", self._where, self.revision)
            self.last_error = None


def _redacted(url: str) -> str:
    """The URL without user info or query: what may appear in a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
