"""The revocation feed's contract and its follower, against a real feed served over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
from httpx import MockTransport

from authz_service.keys import SigningKey
from portcullis.testing import JwksServer
from portcullis_contracts.revocations import (
    EXPIRY_GRACE_SECONDS,
    FEED_METADATA_KEY,
    MAX_FEED_BYTES,
    FeedError,
    RevocationFollower,
    RevocationsUnavailable,
    decode_feed,
    encode_feed,
    etag_matches,
)


@dataclass
class Clock:
    """A clock the test moves forward."""

    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def feed() -> Iterator[JwksServer]:
    server = JwksServer(SigningKey.generate().jwks())
    try:
        yield server
    finally:
        server.close()


def _statuses(follower_http: list[int]) -> httpx.AsyncClient:
    async def record(response: httpx.Response) -> None:
        follower_http.append(response.status_code)

    return httpx.AsyncClient(timeout=2, event_hooks={"response": [record]})


def test_a_feed_round_trips_ids_and_expiry_and_its_revision_follows_its_content() -> None:
    document = encode_feed({"b" * 32: 1_900_000_000.2, "a" * 32: 1_900_000_100})
    assert decode_feed(document.body) == {"a" * 32: 1_900_000_100, "b" * 32: 1_900_000_001}
    assert encode_feed({"a" * 32: 1_900_000_100, "b" * 32: 1_900_000_000.2}).revision == document.revision
    assert encode_feed({"a" * 32: 1_900_000_100}).revision != document.revision
    assert document.etag == f'"{document.revision}"'


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"revision": "x"}',
        b'{"revoked": []}',
        b'{"revoked": {"a": "1900000000"}}',
        b'{"revoked": {"a": true}}',
        b'{"revoked": {"a": NaN}}',
        b'{"revoked": {"a": Infinity}}',
        b'{"revoked": {"": 1900000000}}',
        b'{"revoked": {"' + b"a" * 300 + b'": 1900000000}}',
        b"[" * 100_000,
    ],
)
def test_a_body_that_is_not_a_feed_document_is_an_error_never_an_empty_list(body: bytes) -> None:
    with pytest.raises(FeedError):
        decode_feed(body)


def test_a_feed_larger_than_the_bound_is_an_error() -> None:
    with pytest.raises(FeedError):
        decode_feed(b" " * (MAX_FEED_BYTES + 1))


def test_if_none_match_names_a_revision_by_exact_weak_or_listed_tag() -> None:
    assert etag_matches('"abc"', "abc") and etag_matches('W/"abc"', "abc") and etag_matches('"x", "abc"', "abc")
    assert etag_matches("*", "abc")
    assert not etag_matches(None, "abc") and not etag_matches('"abcd"', "abc") and not etag_matches("abc", "abc")


def test_the_follower_lists_what_the_feed_lists_and_then_polls_with_its_etag(feed: JwksServer) -> None:
    statuses: list[int] = []
    follower = RevocationFollower(url=feed.revocation_url, http=_statuses(statuses))
    feed.revoke("jti-1", time.time() + 600)

    async def run() -> tuple[frozenset[str], frozenset[str]]:
        await follower.poll_once()
        first = follower.revoked()
        await follower.poll_once()  # unchanged: 304
        feed.revoke("jti-2", time.time() + 600)
        await follower.poll_once()
        return first, follower.revoked()

    first, second = anyio.run(run)
    assert first == {"jti-1"} and second == {"jti-1", "jti-2"}
    assert statuses == [200, 304, 200]


def test_a_follower_that_never_loaded_the_feed_refuses_to_vouch() -> None:
    follower = RevocationFollower(url="http://127.0.0.1:9/revocations")
    with pytest.raises(RevocationsUnavailable):
        follower.revoked()


def test_a_follower_whose_feed_is_down_longer_than_its_bound_fails_closed_then_recovers(feed: JwksServer) -> None:
    clock = Clock(1000.0)
    follower = RevocationFollower(url=feed.revocation_url, max_staleness_seconds=10, clock=clock)
    feed.revoke("jti-1", time.time() + 600)

    async def run() -> None:
        await follower.poll_once()
        feed.feed_down = True
        clock.now += 9
        with pytest.raises(FeedError):
            await follower.poll_once()
        assert follower.revoked() == {"jti-1"}  # within the bound: the last list holds
        clock.now += 2
        with pytest.raises(RevocationsUnavailable):
            follower.revoked()
        feed.feed_down = False
        await follower.poll_once()
        assert follower.revoked() == {"jti-1"}
        await follower.aclose()

    anyio.run(run)


def test_an_unreachable_feed_is_an_error_of_the_poll_and_the_run_loop_keeps_going() -> None:
    follower = RevocationFollower(url="http://127.0.0.1:9/revocations", poll_seconds=0.01)

    async def run() -> None:
        with pytest.raises(httpx.HTTPError):
            await follower.poll_once()
        with anyio.move_on_after(0.1):
            await follower.run()  # logs once, keeps polling, never raises
        with pytest.raises(RevocationsUnavailable):
            follower.revoked()

    anyio.run(run)


def test_an_id_seen_once_stays_listed_when_a_lagging_replica_omits_it(feed: JwksServer) -> None:
    follower = RevocationFollower(url=feed.revocation_url)
    feed.revoke("jti-1", time.time() + 600)

    async def run() -> frozenset[str]:
        await follower.poll_once()
        feed.revoked.clear()  # a replica that has not read the store since
        feed.revoke("jti-2", time.time() + 600)
        await follower.poll_once()
        await follower.aclose()
        return follower.revoked()

    assert anyio.run(run) == {"jti-1", "jti-2"}


def test_an_id_is_forgotten_once_its_token_is_past_expiry_and_the_leeway_grace(feed: JwksServer) -> None:
    wall = Clock(time.time())
    follower = RevocationFollower(url=feed.revocation_url, wall_clock=wall)
    feed.revoke("short", wall.now + 60)
    feed.revoke("long", wall.now + 600)

    async def run() -> list[frozenset[str]]:
        seen = []
        await follower.poll_once()
        seen.append(follower.revoked())
        wall.now += 60 + EXPIRY_GRACE_SECONDS - 1  # expired, but a verifier's leeway may still accept it
        await follower.poll_once()
        seen.append(follower.revoked())
        wall.now += 2
        await follower.poll_once()  # the feed is unchanged (304): the follower drops it on its own clock
        seen.append(follower.revoked())
        await follower.aclose()
        return seen

    assert anyio.run(run) == [{"short", "long"}, {"short", "long"}, {"long"}]


def test_a_follower_without_a_feed_url_finds_it_in_the_issuers_metadata() -> None:
    feed_url = "http://issuer.test/feeds/revoked"
    document = encode_feed({"jti-1": time.time() + 600})

    def issuer(request: httpx.Request) -> httpx.Response:  # a fake issuer: its metadata and its feed
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": "http://issuer.test", FEED_METADATA_KEY: feed_url})
        assert str(request.url) == feed_url
        return httpx.Response(200, content=document.body, headers={"etag": document.etag})

    async def run() -> tuple[str, frozenset[str]]:
        follower = RevocationFollower(
            issuer="http://issuer.test", http=httpx.AsyncClient(transport=MockTransport(issuer))
        )
        await follower.poll_once()
        return follower.url, follower.revoked()

    assert anyio.run(run) == (feed_url, frozenset({"jti-1"}))


@pytest.mark.parametrize("named", [None, "", "/revocations", "file:///etc/passwd", 42, "http://[bad/revocations"])
def test_an_issuer_whose_metadata_names_no_usable_feed_leaves_the_follower_failing_closed(named: object) -> None:
    def issuer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "http://issuer.test", FEED_METADATA_KEY: named})

    async def run() -> None:
        follower = RevocationFollower(
            issuer="http://issuer.test", http=httpx.AsyncClient(transport=MockTransport(issuer))
        )
        with pytest.raises(FeedError, match="names no revocation feed"):
            await follower.poll_once()
        with pytest.raises(RevocationsUnavailable):
            follower.revoked()

    anyio.run(run)


def test_a_poll_that_raises_anything_does_not_stop_the_follower() -> None:
    # An unusable URL raises httpx.InvalidURL, not an HTTPError: the run loop ended and never polled again.
    follower = RevocationFollower(url="http://127.0.0.1:1:2/revocations", poll_seconds=0.01)

    async def run() -> None:
        with anyio.move_on_after(0.1):
            await follower.run()  # keeps polling through errors of any kind
        assert follower._failing

    anyio.run(run)
