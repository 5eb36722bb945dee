"""What the revocation feed costs as it grows: body size, the identity side's encode, a follower's decode and
merge, and a poll through the real route (200 and 304), for 100 to 10,000 revoked tokens.

    python -m bench.revocation_bench

Prints figures; asserts nothing about timings. The store is SQLite in a temporary folder, the route the real
`GET /revocations` of the identity router (in-process, over ASGI), the follower the one the edge and the kit run.
"""

from __future__ import annotations

import asyncio
import gzip
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from authz_service.catalog import FileCatalogSource
from authz_service.identity import IdentityProvider, build_identity_router
from authz_service.keys import KeyRing
from authz_service.settings import Settings
from portcullis_contracts.revocations import RevocationFollower, decode_feed, encode_feed

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "http://127.0.0.1:8181"
SIZES = (100, 1_000, 10_000)


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(fn: object, n: int = 20) -> list[float]:
    assert callable(fn)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


async def _polls(app: FastAPI, n: int) -> tuple[float, float, float]:
    """Median ms of a full poll (200, decoded and merged by a fresh follower) and of a 304 poll."""
    transport = httpx.ASGITransport(app=app)
    full, unchanged = [], []
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        for _ in range(n):
            follower = RevocationFollower(url=f"{ISSUER}/revocations", http=http)
            start = time.perf_counter()
            await follower.poll_once()
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            await follower.poll_once()
            unchanged.append(time.perf_counter() - start)
        start = time.perf_counter()
        follower.revoked()
        lookup = time.perf_counter() - start
    return _ms(full), _ms(unchanged), lookup * 1e6


def _row(size: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        settings = Settings(
            issuer=ISSUER,
            key_dir=workdir / "keys",
            identity_database_url=SecretStr(f"sqlite:///{workdir / 'identity.db'}"),
            catalog_file=ROOT / "config" / "catalog.yaml",
            directory_file=ROOT / "config" / "directory.yaml",
        )
        catalog = FileCatalogSource(settings.catalog_file).load()
        keys = KeyRing.load_or_create(settings.key_dir, activation_seconds=0)
        identity = IdentityProvider(settings, catalog=lambda: catalog, keys=keys)
        expires = time.time() + 600
        revoked = {uuid.uuid4().hex: expires + i % 600 for i in range(size)}  # jti as the issuer mints them
        for jti, exp in revoked.items():
            identity.store.revoke_access_token(jti, exp)
        document = encode_feed(revoked)
        encode = _ms(_timed(lambda: encode_feed(revoked)))
        decode = _ms(_timed(lambda: decode_feed(document.body)))
        store = _ms(_timed(lambda: identity.store.revocations(not_expired_before=time.time())))
        app = FastAPI()
        app.include_router(build_identity_router(identity, max_body_bytes=65536))
        full, unchanged, lookup = asyncio.run(_polls(app, 10))
        identity.close()
    return (
        f"{size:>11,}  {len(document.body) / 1024:>8.1f}  {len(gzip.compress(document.body)) / 1024:>7.1f}"
        f"  {encode:>9.2f}  {decode:>9.2f}  {store:>13.2f}  {full:>11.2f}  {unchanged:>11.2f}  {lookup:>9.2f}"
    )


def main() -> None:
    print("revocations   body KB  gzip KB  encode ms  decode ms  store read ms  poll 200 ms  poll 304 ms  lookup us")
    for size in SIZES:
        print(_row(size))


if __name__ == "__main__":
    main()
