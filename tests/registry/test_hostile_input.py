"""Hostile JSON bodies on the registry API: a 400 with a message, never a 500 and never stored."""

from __future__ import annotations

import json

import pytest

from tests.registry.conftest import RegistryHarness, server_json

DEEP = 30_000


def _with_description(value: str) -> bytes:
    document = json.dumps({**server_json(), "description": "placeholder"})
    return document.replace('"placeholder"', value).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        _with_description("[" * DEEP + "]" * DEEP),
        _with_description("[" * 900 + "]" * 900),
        _with_description("NaN"),
        _with_description("1e999"),
    ],
    ids=["deep_body", "deep_field_30000", "deep_field_900", "nan", "out_of_range_number"],
)
@pytest.mark.parametrize("path", ["/v0.1/publish", "/v0.1/x/portcullis/validate"])
def test_a_hostile_json_body_is_a_400_not_a_server_error(registry: RegistryHarness, path: str, body: bytes) -> None:
    headers = {**registry.auth("alice"), "Content-Type": "application/json"}
    response = registry.client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "JSON" in response.text
