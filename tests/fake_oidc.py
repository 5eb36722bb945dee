"""A scripted OAuth / OpenID provider over real HTTP, for the failure shapes a real provider is not asked to show:
answers that are not JSON, documents without the endpoints or keys they must name, error statuses, ID tokens
that do not verify. Each path answers what the test set; every request is counted.

(The happy path of federation runs against a second, real authorization server: tests/authz_service/
test_identity_federation.py.)
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

__all__ = ["Answer", "FakeProvider", "fake_provider"]

DISCOVERY = "/.well-known/openid-configuration"
AS_METADATA = "/.well-known/oauth-authorization-server"


@functools.cache
def _signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "fake-1"})  # one per test run: generating takes ~0.1 s


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, document: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(document).encode())

    @classmethod
    def html(cls, text: str = "<html><body>Bad gateway</body></html>", status: int = 200) -> Answer:
        return cls(status, text.encode(), "text/html")


@dataclass
class FakeProvider:
    url: str
    key: RSAKey = field(default_factory=lambda: _signing_key())
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)

    def metadata(self, **overrides: Any) -> dict[str, Any]:
        """A well-formed discovery document for this provider (with `overrides`; a None value drops the key)."""
        document = {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            **overrides,
        }
        return {key: value for key, value in document.items() if value is not None}

    def serve_metadata(self, **overrides: Any) -> None:
        """Publish the discovery document (OIDC and RFC 8414 paths alike) and the key set."""
        self.answers[DISCOVERY] = self.answers[AS_METADATA] = Answer.json(self.metadata(**overrides))
        self.answers["/jwks"] = Answer.json(KeySet([self.key]).as_dict(private=False))

    def id_token(self, *, key: RSAKey | None = None, **claims: Any) -> str:
        """An ID token signed by this provider's key (or `key`); a None claim is left out."""
        now = int(time.time())
        payload = {"iss": self.url, "sub": "zoe", "aud": "portcullis", "iat": now, "exp": now + 300, **claims}
        signer = key or self.key
        header = {"alg": "RS256", "kid": signer.kid}
        return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, signer)


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    """A FakeProvider listening on a free local port, serving its metadata until the test changes it."""
    provider: FakeProvider | None = None

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            assert provider is not None
            path = urlsplit(self.path).path
            provider.requests[path] += 1
            answer = provider.answers.get(path, Answer.json({"error": "not_found"}, 404))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider = FakeProvider(url=f"http://127.0.0.1:{server.server_address[1]}")
    provider.serve_metadata()
    # A short poll interval: shutdown() waits up to one interval, and every test stops its provider.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
