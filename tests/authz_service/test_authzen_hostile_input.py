"""Hostile bodies on the AuthZEN API: every one is a 4xx with a message, never a 500 or an exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from authz_service.http_app import create_app
from authz_service.runtime import Runtime
from authz_service.settings import Settings
from portcullis_contracts.json_input import InvalidJson, parse_json
from tests.authz_service.helpers import CATALOG, POLICIES

SECRET = "s3rv1ce-credential-for-hostile-input"
HEADERS = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
DEEP = 30_000


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("authzen")
    settings = Settings(
        policy_dir=POLICIES,
        catalog_file=CATALOG,
        decision_log=tmp / "decisions.jsonl",
        key_dir=tmp / "keys",
        service_credentials={"demo": SecretStr(SECRET)},
        max_body_bytes=64 * 1024,
    )
    runtime = Runtime(settings)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as built:
        yield built
    runtime.close()


def _evaluation(arguments: str) -> bytes:
    subject = {"type": "user", "id": "alice", "properties": {"client_id": "claude-desktop"}}
    resource = '{"type":"tool","id":"whoami","properties":{"server":"demo","arguments":' + arguments + "}}"
    return ('{"subject":' + json.dumps(subject) + ',"action":{"name":"call"},"resource":' + resource + "}").encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        _evaluation('{"x":' + "[" * DEEP + "]" * DEEP + "}"),
        _evaluation('{"x":' + "[" * 900 + "]" * 900 + "}"),
        _evaluation('{"x":' + '{"a":' * 200 + "1" + "}" * 200 + "}"),
    ],
    ids=["whole_body", "arguments_30000", "arguments_900", "arguments_200_objects"],
)
def test_deeply_nested_evaluation_is_a_400_not_a_500(client: TestClient, body: bytes) -> None:
    response = client.post("/access/v1/evaluation", content=body, headers=HEADERS)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000])
def test_numbers_that_are_not_json_are_a_400(client: TestClient, literal: str) -> None:
    response = client.post("/access/v1/evaluation", content=_evaluation('{"n":' + literal + "}"), headers=HEADERS)
    assert response.status_code == 400


def test_an_ordinarily_nested_evaluation_is_still_decided(client: TestClient) -> None:
    arguments = json.dumps({"filters": [{"column": "region", "values": ["emea", {"nested": [1, 2.5, None]}]}]})
    response = client.post("/access/v1/evaluation", content=_evaluation(arguments), headers=HEADERS)
    assert response.status_code == 200
    assert response.json()["decision"] is True


def test_parse_json_refuses_depth_beyond_its_limit_and_accepts_it_at_the_limit() -> None:
    assert parse_json("[" * 4 + "]" * 4, max_depth=4) == [[[[]]]]
    with pytest.raises(InvalidJson):
        parse_json("[" * 5 + "]" * 5, max_depth=4)
    with pytest.raises(InvalidJson):
        parse_json('{"a":{"b":{"c":{"d":{}}}}}', max_depth=4)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=15,
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["evaluation", "batch", "value", "bytes", "deep"]))
    if shape == "bytes":
        return draw(st.binary(max_size=100))
    entity = st.fixed_dictionaries({"type": _json_values | st.sampled_from(["user", "tool", "server", "dataset"]),
                                    "id": _json_values, "properties": _json_values})  # fmt: skip
    evaluation = st.fixed_dictionaries(
        {},
        optional={
            "subject": entity,
            "action": st.fixed_dictionaries({"name": _json_values}),
            "resource": entity,
            "context": _json_values,
        },  # fmt: skip
    )
    if shape == "evaluation":
        value: Any = draw(evaluation)
    elif shape == "batch":
        value = {**draw(evaluation), "evaluations": draw(st.lists(evaluation, max_size=3) | _json_values),
                 "options": draw(_json_values)}  # fmt: skip
    else:
        value = draw(_json_values)
    text = json.dumps(value)
    if shape == "deep":
        depth = draw(st.sampled_from([33, 500, 1000, 20_000]))
        text = "[" * depth + text + "]" * depth
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies(), path=st.sampled_from(["/access/v1/evaluation", "/access/v1/evaluations"]))
def test_any_generated_authzen_body_is_answered_without_a_server_error(
    client: TestClient, body: bytes, path: str
) -> None:
    response = client.post(path, content=body, headers=HEADERS)
    assert response.status_code in (200, 400, 403, 413), response.text
    assert isinstance(response.json(), dict)
