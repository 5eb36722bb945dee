"""The identity side of the revocation feed (`portcullis_contracts.revocations`): the revoked, unexpired access
tokens of the store, encoded once and served to every follower.

Each process re-reads the store at most every `refresh_seconds` whatever the number of followers: a burst of polls
costs one query and then the same bytes, and an unchanged list is a 304.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from authz_service.identity.store import IdentityStore
from portcullis_contracts.revocations import EXPIRY_GRACE_SECONDS, FeedDocument, encode_feed

__all__ = ["DEFAULT_REFRESH_SECONDS", "FEED_PATH", "RevocationFeed"]

FEED_PATH = "/revocations"  # under the issuer; named in the metadata (FEED_METADATA_KEY), so followers need not know

# With followers polling every 0.5 s, a revocation reaches them within about 0.75 s.
DEFAULT_REFRESH_SECONDS = 0.25


class RevocationFeed:
    """The current feed document of one process, refreshed from the store when older than `refresh_seconds`."""

    def __init__(
        self,
        store: IdentityStore,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ):
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._now = now
        self._document: FeedDocument | None = None
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def current(self) -> FeedDocument | None:
        """The document when it is fresh enough to serve without reading the store; None otherwise."""
        if self._document is not None and self._clock() - self._read_at < self._refresh_seconds:
            return self._document
        return None

    def document(self) -> FeedDocument:
        """The feed document, re-read from the store when stale (blocking: call it off the event loop).

        Raises:
            Exception: whatever the store raises; the caller answers 503 (a follower then keeps its list and
                fails closed once its bound passes; a stale list is never served as current).
        """
        with self._lock:  # concurrent polls of a stale document: one query
            fresh = self.current()
            if fresh is not None:
                return fresh
            read_at = self._clock()
            revoked = self._store.revocations(not_expired_before=self._now() - EXPIRY_GRACE_SECONDS)
            self._document = encode_feed(revoked)
            self._read_at = read_at
            return self._document

    def invalidate(self) -> None:
        """Re-read on the next poll (this process just revoked a token)."""
        self._read_at = -math.inf
