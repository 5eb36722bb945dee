"""HTTP input guards shared by the platform's services (authz_service's AuthZEN API, the registry).

Each caller maps a failure to its own error type and status in one place.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.requests import Request

__all__ = ["BodyTooLarge", "bearer_matches", "read_limited"]


class BodyTooLarge(Exception):
    """The request body exceeds the limit (declared or streamed)."""


def bearer_matches(authorization: str | None, secrets: Iterable[str]) -> bool:
    """Whether `Authorization: Bearer X` carries one of `secrets`.

    Compares against every secret so the time taken does not reveal which one nearly matched.
    """
    scheme, _, token = (authorization or "").partition(" ")
    presented = token.strip().encode()
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(presented, secret.encode())
    return scheme.lower() == "bearer" and bool(presented) and matched


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed `limit` bytes.

    Raises:
        BodyTooLarge: the declared or streamed length is over the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
    return bytes(body)
