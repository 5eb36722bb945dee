"""Hostile MCP requests at the edge: the servicer's check() on parsed CheckRequests with attacker-written input.

Whatever a client sends, the edge answers 200 (allowed), 400, 401 or 403 (413 is Envoy's, before ext_authz), every
denial with a strict JSON-RPC error body, and nothing escapes as an exception or a 503: 503 means "authz is down".
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as ext
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.decision import Decider
from authz_service.ext_authz import check
from tests.authz_service.helpers import decider
from tests.authz_service.test_ext_authz import ALICE_CLAIMS, BOB_CLAIMS, _request, _tool_call

DEEP = 30_000
TOKEN_CLAIMS = {**ALICE_CLAIMS, "jti": "secret-token-id"}


@functools.cache
def _decider() -> Decider:
    # One decider (real policies and catalog) for all generated examples: building it per example would be most of
    # the run time. Its decision cache only makes repeated questions cheaper.
    return decider()[0]


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a denial body is not JSON")

    return json.loads(text, parse_constant=refuse)


def _assert_well_formed(response: ext.CheckResponse) -> None:
    """The invariant of every answer: allowed, or a 400/401/403 with a strict JSON-RPC error body."""
    if response.HasField("ok_response"):
        assert response.status.code == code_pb2.OK
        return
    status = response.denied_response.status.code
    assert status in (400, 401, 403), f"status {status}: {response.denied_response.body}"
    assert response.status.code in (code_pb2.PERMISSION_DENIED, code_pb2.UNAUTHENTICATED)
    headers = {h.header.key: h.header.value for h in response.denied_response.headers}
    assert headers["content-type"] == "application/json"
    body = _strict_json(response.denied_response.body)
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None or type(body["id"]) in (int, str)
    assert isinstance(body["error"]["code"], int) and isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["data"]["reason"], str) and body["error"]["data"]["reason"] != "internal_error"


def _reason(response: ext.CheckResponse) -> str:
    reason: str = _strict_json(response.denied_response.body)["error"]["data"]["reason"]
    return reason


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b"{" + b'"a":{' * DEEP + b"}" * (DEEP + 1),
        json.dumps(_tool_call("whoami"))[:-2].encode() + b',"arguments":' + b"[" * DEEP + b"]" * DEEP + b"}}",
    ],
    ids=["arrays", "objects", "in_tool_arguments"],
)
def test_deeply_nested_body_is_a_400_not_an_outage_and_logs_nothing(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = check(_request(TOKEN_CLAIMS, body=body), _decider())
    assert response.denied_response.status.code == 400
    assert _reason(response) == "invalid_json"
    _assert_well_formed(response)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]
    assert "secret-token-id" not in caplog.text and "[[[" not in caplog.text


@pytest.mark.parametrize(
    "literal",
    [b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"-1e400", b"9" * 5000],
)
def test_numbers_that_are_not_json_are_a_400(literal: bytes) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{"n":' + literal
    response = check(_request(body=body + b"}}}"), _decider())
    assert response.denied_response.status.code == 400
    assert _reason(response) == "invalid_json"


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'.encode("utf-16"),
        b'{"jsonrpc":"2.0","id":"\xed\xa0\x80","method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":"\xff","method":"tools/list"}',
    ],
    ids=["utf8_bom", "utf16", "encoded_surrogate", "invalid_utf8"],
)
def test_a_body_that_is_not_plain_utf8_is_a_400(body: bytes) -> None:
    # The MCP SDK's parser refuses these too: the edge never reads a body differently from the server.
    response = check(_request(body=body), _decider())
    assert response.denied_response.status.code == 400
    assert _reason(response) == "invalid_json"


@pytest.mark.parametrize(
    "request_id",
    ["NaN", "Infinity", "1e999", "1.5", "true", "[1]", '{"a":1}', "[" * 900 + "]" * 900],
    ids=["nan", "infinity", "huge_float", "float", "bool", "list", "object", "deep_list"],
)
def test_a_jsonrpc_id_that_is_neither_string_nor_integer_is_refused_and_never_echoed(request_id: str) -> None:
    body = '{"jsonrpc":"2.0","id":' + request_id + ',"method":"tools/call","params":{"name":"get_revenue_metrics"}}'
    response = check(_request(BOB_CLAIMS, body=body.encode()), _decider())
    assert response.denied_response.status.code == 400
    assert _strict_json(response.denied_response.body)["id"] is None
    _assert_well_formed(response)


def test_a_shadow_header_sent_by_the_client_is_removed_when_the_decision_is_not_shadowed() -> None:
    forged = {"x-portcullis-shadow": "would_deny:group_required"}
    response = check(_request(headers=forged, body=_tool_call("whoami")), _decider())
    assert response.HasField("ok_response")
    assert "x-portcullis-shadow" in response.ok_response.headers_to_remove


def test_a_batch_of_the_same_call_is_decided_once() -> None:
    decide, _, log = decider()
    batch = [_tool_call("whoami", request_id) for request_id in range(500)]
    response = check(_request(body=batch), decide)
    assert response.HasField("ok_response")
    assert len(log.items) == 1


def test_a_batch_is_still_denied_by_its_first_forbidden_call() -> None:
    decide, _, _ = decider()
    batch = [_tool_call("whoami", 1), _tool_call("whoami", 2), _tool_call("get_revenue_metrics", 3)]
    response = check(_request(BOB_CLAIMS, body=batch), decide)
    assert response.denied_response.status.code == 403
    assert _strict_json(response.denied_response.body)["id"] == 3


# Generated requests. JSON values of every type, including what Python's json accepts and RFC 8259 does not.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**4000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["tools/call", "whoami", "get_revenue_metrics", "\x00", "\u202e", "\ud800", "\ufeff"]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_methods = st.one_of(
    st.sampled_from(["tools/call", "tools/list", "initialize", "notifications/initialized", "ping", "resources/read"]),
    st.text(max_size=12),
    st.sampled_from(["tools/call\x00", "tools/call\n", "TOOLS/CALL", " tools/call", "tools/call\u200b"]),
    _values,
)
_tool_names = st.one_of(
    st.sampled_from(["whoami", "echo", "get_revenue_metrics", "", "whoami\x00", "who\ud800ami"]), st.text(), _values
)


@st.composite
def _messages(draw: st.DrawFn) -> Any:
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "1.0", None, 2]))
    if draw(st.booleans()):
        message["id"] = draw(_values)
    if draw(st.integers(0, 5)):
        message["method"] = draw(_methods)
    if draw(st.booleans()):
        params = draw(st.fixed_dictionaries({}, optional={"name": _tool_names, "arguments": _values, "uri": _values}))
        message["params"] = draw(st.one_of(st.just(params), _values))
    if draw(st.integers(0, 9)) == 0:
        message[draw(st.sampled_from(["result", "error"]))] = draw(_values)
    return message if draw(st.integers(0, 9)) else draw(_values)


def _nest(text: str, depth: int) -> str:
    return "[" * depth + text + "]" * depth


@st.composite
def _bodies(draw: st.DrawFn) -> bytes | str | None:
    shape = draw(st.sampled_from(["message", "batch", "raw", "empty", "mutated", "deep", "duplicate_keys"]))
    if shape == "empty":
        return draw(st.sampled_from([None, b"", b" ", b"\n\t", "   "]))
    if shape == "raw":
        return draw(st.binary(max_size=200))
    if shape == "batch":
        text = json.dumps(draw(st.lists(_messages(), max_size=6)))
    else:
        text = json.dumps(draw(_messages()))
    if shape == "deep":
        depth = draw(st.sampled_from([10, 100, 990, 1000, 5000, 40_000]))
        where = draw(st.sampled_from(["around", "in_id", "in_params"]))
        if where == "around":
            text = _nest(text, depth)
        else:
            text = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}})
            text = (
                text.replace('"id": 1', '"id": ' + _nest("1", depth))
                if where == "in_id"
                else text[:-2] + (', "arguments": ' + _nest("{}", depth) + "}}")
            )
    if shape == "duplicate_keys":
        first, second = draw(_tool_names), draw(_tool_names)
        method = json.dumps(draw(_methods))
        names = f'"name":{json.dumps(first)},"name":{json.dumps(second)}'
        text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","method":' + method + ',"params":{' + names + "}}"
    if shape == "mutated":
        cut = draw(st.integers(0, len(text)))
        mutation = draw(st.sampled_from(["truncate", "bom", "utf16", "utf32", "latin1", "garbage"]))
        if mutation == "truncate":
            return text[:cut].encode("utf-8", "surrogatepass")
        if mutation == "bom":
            return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
        if mutation in ("utf16", "utf32"):
            return text.encode(mutation, "surrogatepass")
        if mutation == "latin1":
            return text.encode("latin-1", "replace")
        raw = text.encode("utf-8", "surrogatepass")
        return raw[:cut] + draw(st.binary(min_size=1, max_size=8)) + raw[cut:]
    # Protobuf `string` fields hold only valid UTF-8: a body with lone surrogates can only arrive as raw bytes.
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


_header_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_headers = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "mcp-method",
                "mcp-name",
                "content-type",
                "x-request-id",
                "x-portcullis-user",
                "x-portcullis-groups",
                "x-portcullis-shadow",
                "x-portcullis-decision-id",
                "x-portcullis-anything",
                "mcp-protocol-version",
            ]
        ),
        _header_text,
    ),
    st.one_of(
        st.sampled_from(["tools/call", "tools/list", "whoami", "get_revenue_metrics", "application/json", "", "\x00"]),
        _header_text,
    ),
    max_size=5,
)


def _check_request(
    claims: dict[str, Any] | None, headers: dict[str, str], body: bytes | str | None
) -> ext.CheckRequest:
    request = _request(claims, headers=headers)
    http = request.attributes.request.http
    http.method = "POST"
    if isinstance(body, bytes):
        http.raw_body = body
    elif isinstance(body, str):
        http.body = body  # what Envoy sends without pack_as_bytes
    return request


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    claims=st.sampled_from([ALICE_CLAIMS, BOB_CLAIMS, None, {**ALICE_CLAIMS, "client_id": "cursor"}]),
    headers=_headers,
    body=_bodies(),
)
def test_any_generated_mcp_request_gets_a_well_formed_answer_and_never_an_outage(
    claims: dict[str, Any] | None, headers: dict[str, str], body: bytes | str | None
) -> None:
    response = check(_check_request(claims, headers, body), _decider())
    _assert_well_formed(response)
    if response.HasField("ok_response"):
        added = {h.header.key for h in response.ok_response.headers}
        assert "x-portcullis-user" in added
        # Nothing the client named x-portcullis-* survives: ours overwrite, the rest are removed.
        spoofed = {key for key in headers if key.startswith("x-portcullis-")}
        assert spoofed <= added | set(response.ok_response.headers_to_remove)
