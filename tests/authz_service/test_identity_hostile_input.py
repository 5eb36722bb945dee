"""Hostile JSON on the identity server's public inputs: dynamic registration and client metadata documents."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.authz_service.identity_support import build_server

REDIRECT = "http://127.0.0.1/callback"
REGISTRATION = {"client_name": "agent", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}


def _registration_with(field_value: str) -> bytes:
    return json.dumps({**REGISTRATION, "contacts": "placeholder"}).replace('"placeholder"', field_value).encode()


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, _registration_with("[" * 900 + "]" * 900), _registration_with("NaN")],
    ids=["deep_body", "deep_field", "nan"],
)
def test_dynamic_registration_with_hostile_json_is_a_400(tmp_path: Path, body: bytes) -> None:
    server = build_server(tmp_path)
    client = TestClient(server.client.app, base_url=str(server.client.base_url), raise_server_exceptions=False)
    response = client.post("/register", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


class _RawDocument:
    """Serves fixed bytes as a client metadata document."""

    def __init__(self, body: bytes):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/oauth/client.json"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def deep_document() -> Iterator[_RawDocument]:
    served = _RawDocument(b"[" * 2_500 + b"]" * 2_500)  # under the 5 KB document limit
    yield served
    served.close()


def test_a_deeply_nested_metadata_document_is_refused_with_an_error_page(
    tmp_path: Path, deep_document: _RawDocument
) -> None:
    server = build_server(tmp_path, allow_insecure_metadata_documents=True)
    client = TestClient(server.client.app, base_url=str(server.client.base_url), raise_server_exceptions=False)
    params = {"response_type": "code", "client_id": deep_document.url, "redirect_uri": REDIRECT}
    page = client.get("/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers
