"""The revocation feed: which access tokens were revoked before they expired, published by the identity side and
followed by every layer that verifies access tokens on its own (the edge's ext_authz workers, each kit server).

Access tokens are self-contained JWTs: a verifier accepts one until it expires unless it learns that its id
(`jti`) was revoked (RFC 7009). The feed is one HTTP resource, cheap to poll:

    GET <feed URL>                    -> 200 {"revision": "<hex>", "revoked": {"<jti>": <exp>, ...}}
                                         ETag: "<revision>", Cache-Control: no-cache
    GET <feed URL>, If-None-Match: "<revision>"  -> 304 (nothing changed)

The issuer names the feed in its authorization-server metadata (RFC 8414) under `FEED_METADATA_KEY`. An id stays
listed until `EXPIRY_GRACE_SECONDS` after its token's `exp`, because verifiers accept a token a little past its
expiry (their clock leeway). Revocations are never undone, so a follower keeps the union of what it has seen until
each entry's own expiry: two replicas of the feed that are a moment apart can never make an id reappear as valid.

`RevocationFollower` polls the feed and keeps a frozenset of ids, so a verifier's check is one membership test.
It fails closed: when the feed has not answered for longer than its bound, `revoked()` raises
`RevocationsUnavailable` and the layer refuses tokens (503) rather than trust ones it cannot check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = [
    "DEFAULT_MAX_STALENESS_SECONDS",
    "DEFAULT_POLL_SECONDS",
    "EXPIRY_GRACE_SECONDS",
    "FEED_METADATA_KEY",
    "MAX_FEED_BYTES",
    "FeedDocument",
    "FeedError",
    "RevocationFollower",
    "RevocationsUnavailable",
    "decode_feed",
    "encode_feed",
    "etag_matches",
    "metadata_url",
]

FEED_METADATA_KEY = "portcullis_revocation_feed_endpoint"
# At least the largest clock leeway of any verifier: the kit allows up to 300 s (KitSettings.leeway_seconds),
# Envoy's jwt_authn uses 30 s. A revoked token past `exp` but inside a verifier's leeway must still be listed.
EXPIRY_GRACE_SECONDS = 300
DEFAULT_POLL_SECONDS = 0.5
DEFAULT_MAX_STALENESS_SECONDS = 10.0
# 10,000 revocations are about 460 KB; this bound (about 350,000) keeps a broken or hostile feed from
# exhausting a follower's memory. A larger feed is an error: the follower fails closed.
MAX_FEED_BYTES = 16 * 1024 * 1024
_MAX_JTI_CHARS = 256
_METADATA_PATH = "/.well-known/oauth-authorization-server"
_MAX_METADATA_BYTES = 256 * 1024

logger = logging.getLogger("portcullis.revocations")


class FeedError(Exception):
    """The feed (or the metadata naming it) could not be read or is not a feed document."""


class RevocationsUnavailable(Exception):
    """The follower cannot vouch for the revoked-token list: never loaded, or older than its bound."""


@dataclass(frozen=True)
class FeedDocument:
    """One encoded feed: the body to serve and its revision (the ETag's value, quoted in the header)."""

    revision: str
    body: bytes
    count: int

    @property
    def etag(self) -> str:
        return f'"{self.revision}"'


def encode_feed(revoked: Mapping[str, float]) -> FeedDocument:
    """The feed document for these ids and expiry times (unix seconds).

    The body is canonical (sorted ids, whole seconds), so every replica reading the same store publishes the same
    revision and a follower's If-None-Match holds whichever replica answers.
    """
    entries = {jti: math.ceil(exp) for jti, exp in sorted(revoked.items())}
    canonical = json.dumps(entries, separators=(",", ":"))
    revision = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    body = f'{{"revision":"{revision}","revoked":{canonical}}}'.encode()
    return FeedDocument(revision=revision, body=body, count=len(entries))


def decode_feed(body: bytes) -> dict[str, float]:
    """The ids and expiry times of a feed body.

    Raises:
        FeedError: not a feed document (not JSON, wrong shape, an id or expiry of the wrong type, too large).
    """
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(f"the revocation feed is larger than {MAX_FEED_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FeedError("the revocation feed is not JSON") from None
    revoked = document.get("revoked") if isinstance(document, dict) else None
    if not isinstance(revoked, dict):
        raise FeedError("the revocation feed has no 'revoked' object")
    entries: dict[str, float] = {}
    for jti, exp in revoked.items():
        if not jti or len(jti) > _MAX_JTI_CHARS:
            raise FeedError("the revocation feed lists an empty or oversized token id")
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
            raise FeedError("the revocation feed lists an expiry that is not a number")
        entries[jti] = float(exp)
    return entries


def etag_matches(if_none_match: str | None, revision: str) -> bool:
    """Whether an If-None-Match header names this revision (RFC 9110 §13.1.2: weak comparison, or `*`)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        if tag == f'"{revision}"':
            return True
    return False


def metadata_url(issuer: str) -> str:
    """Where an issuer's RFC 8414 metadata lives: the well-known path between host and the issuer's path."""
    parts = urlsplit(issuer.rstrip("/"))
    return urlunsplit((parts.scheme, parts.netloc, _METADATA_PATH + parts.path, "", ""))


def _absolute_http(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[bad": not a URL at all
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


class RevocationFollower:
    """Follows one revocation feed: polls it with If-None-Match and keeps the revoked ids as a frozenset.

    Give `url` (the feed), or `issuer` to find the feed in the issuer's metadata on the first poll. Run `run()` as
    a task for as long as the layer serves; read `revoked()` on every request.
    """

    def __init__(
        self,
        *,
        url: str = "",
        issuer: str = "",
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        max_staleness_seconds: float = DEFAULT_MAX_STALENESS_SECONDS,
        timeout_seconds: float = 2.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        if not url and not issuer:
            raise ValueError("a revocation follower needs the feed's URL or the issuer that names it")
        self._url = url
        self._issuer = issuer
        self._poll_seconds = poll_seconds
        self._max_staleness = max_staleness_seconds
        self._http = http  # made on the first poll when not given (inside the loop that runs it)
        self._owns_http = http is None
        self._timeout = timeout_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: dict[str, float] = {}
        self._ids: frozenset[str] = frozenset()
        self._next_expiry = math.inf
        self._etag = ""
        self._fresh_at = -math.inf  # when the last successful poll was sent (monotonic clock)
        self._failing = False
        self._loaded = asyncio.Event()

    @property
    def url(self) -> str:
        """The feed's URL ('' until found in the issuer's metadata)."""
        return self._url

    @property
    def fresh(self) -> bool:
        """Whether the list is loaded and younger than the staleness bound."""
        return self._clock() - self._fresh_at <= self._max_staleness

    def revoked(self) -> frozenset[str]:
        """The revoked ids in force (the hot path: a clock read and an attribute).

        Raises:
            RevocationsUnavailable: never loaded, or the feed has not answered within the staleness bound.
        """
        if self._clock() - self._fresh_at > self._max_staleness:
            raise RevocationsUnavailable("the revocation feed cannot be reached; revoked tokens cannot be checked")
        return self._ids

    async def wait_loaded(self, timeout: float) -> bool:
        """Wait until the first successful poll (or `timeout` seconds); whether the list is loaded."""
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def poll_once(self) -> None:
        """Fetch the feed once (a 304 when unchanged) and merge what it lists.

        Raises:
            FeedError: the feed (or the metadata) answered something other than a feed document.
            httpx.HTTPError: the feed could not be reached.
        """
        sent_at = self._clock()
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        http = self._http
        url = self._url or await self._discover(http)
        headers = {"accept": "application/json"}
        if self._etag:
            headers["if-none-match"] = self._etag
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and self._etag:
                body = None
            elif response.status_code == 200:
                body = await _read_limited(response, MAX_FEED_BYTES)
            else:
                raise FeedError(f"the revocation feed answered HTTP {response.status_code}")
            etag = response.headers.get("etag", "")
        if body is not None:
            self._merge(decode_feed(body))
            self._etag = etag
        elif self._wall_clock() >= self._next_expiry:
            self._merge({})
        self._fresh_at = sent_at
        self._loaded.set()

    def _merge(self, listed: Mapping[str, float]) -> None:
        # Union: a revocation is never undone, so an id seen once stays until its token is past any leeway.
        cutoff = self._wall_clock() - EXPIRY_GRACE_SECONDS
        merged = {jti: exp for jti, exp in (*self._entries.items(), *listed.items()) if exp > cutoff}
        if merged.keys() != self._entries.keys():
            self._ids = frozenset(merged)
        self._entries = merged
        self._next_expiry = min(merged.values(), default=math.inf) + EXPIRY_GRACE_SECONDS

    async def _discover(self, http: httpx.AsyncClient) -> str:
        where = metadata_url(self._issuer)
        response = await http.get(where, headers={"accept": "application/json"})
        if response.status_code != 200 or len(response.content) > _MAX_METADATA_BYTES:
            raise FeedError(f"the issuer's metadata answered HTTP {response.status_code}")
        try:
            metadata: Any = response.json()
        except ValueError:
            raise FeedError("the issuer's metadata is not JSON") from None
        url = metadata.get(FEED_METADATA_KEY) if isinstance(metadata, dict) else None
        if not _absolute_http(url):
            raise FeedError(f"the issuer's metadata names no revocation feed ({FEED_METADATA_KEY})")
        assert isinstance(url, str)
        self._url = url
        return url

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll every `poll_seconds` until cancelled or `stop` is set; a failure is logged once, not per poll.
        Closes the HTTP client it made when it ends.
        """
        try:
            while stop is None or not stop.is_set():
                try:
                    await self.poll_once()
                except Exception as exc:  # noqa: BLE001 - whatever a poll raises, the follower must keep polling
                    # (a stale list fails closed on its own; a follower that stopped would never recover).
                    if not self._failing:
                        where = self._url or self._issuer
                        logger.warning("revocation feed %s unreachable (%s)", where, _reason(exc))
                    self._failing = True
                else:
                    if self._failing:
                        logger.info("revocation feed %s reachable again", self._url)
                    self._failing = False
                await asyncio.sleep(self._poll_seconds)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client this follower made (not one it was given)."""
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise FeedError(f"the revocation feed is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, FeedError) else type(exc).__name__
