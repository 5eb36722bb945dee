"""The servicer's check() on parsed CheckRequests, as Envoy sends them (jwt_authn metadata, context extensions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2 as ext
from google.protobuf import struct_pb2
from google.rpc import code_pb2

from authz_service.ext_authz import JWT_FAILURE_KEY, JWT_METADATA_NAMESPACE, check
from tests.authz_service.helpers import decider

AUDIENCE = "http://127.0.0.1:8080/servers/demo/mcp"
METADATA_URL = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/servers/demo/mcp"
CHALLENGE = f'Bearer resource_metadata="{METADATA_URL}", scope="mcp"'
ALICE_CLAIMS = {"sub": "alice", "email": "alice@example.com", "aud": AUDIENCE, "client_id": "claude-desktop",
                "groups": ["eng", "ads-eng"], "business_groups": ["ads"], "exp": 1.9e9}  # fmt: skip
BOB_CLAIMS = {**ALICE_CLAIMS, "sub": "bob", "groups": ["eng"], "business_groups": ["search"]}


def _request(
    claims: dict[str, Any] | None = ALICE_CLAIMS,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    server: str = "demo",
    failure: dict[str, Any] | None = None,
) -> ext.CheckRequest:
    request = ext.CheckRequest()
    http = request.attributes.request.http
    http.method = "POST"
    http.path = "/servers/demo/mcp"
    http.headers.update(headers or {})
    if body is not None:
        http.raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
    request.attributes.context_extensions.update(
        {"server": server, "audience": AUDIENCE, "resource_metadata": METADATA_URL, "scope": "mcp"}
    )
    # What jwt_authn writes: the verified payload, and/or why a presented token failed (failed_status_in_metadata).
    metadata = {
        **({"jwt_payload": claims} if claims is not None else {}),
        **({JWT_FAILURE_KEY: failure} if failure else {}),
    }
    if metadata:
        payload = struct_pb2.Struct()
        payload.update(metadata)
        request.attributes.metadata_context.filter_metadata[JWT_METADATA_NAMESPACE].CopyFrom(payload)
    return request


def _tool_call(tool: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


def _headers(response: ext.CheckResponse) -> dict[str, str]:
    if response.HasField("ok_response"):
        return {h.header.key: h.header.value for h in response.ok_response.headers}
    return {h.header.key: h.header.value for h in response.denied_response.headers}


def _error(response: ext.CheckResponse) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(response.denied_response.body)["error"]
    return error


def test_allowed_request_gets_identity_headers_that_overwrite_the_clients() -> None:
    decide, _, _ = decider()
    spoofed = {"x-portcullis-user": "root", "x-portcullis-role": "admin"}
    response = check(_request(headers=spoofed, body=_tool_call("whoami")), decide)
    assert response.status.code == code_pb2.OK
    headers = _headers(response)
    assert headers["x-portcullis-user"] == "alice"
    assert headers["x-portcullis-groups"] == "ads-eng,eng"
    assert headers["x-portcullis-business-groups"] == "ads"
    assert headers["x-portcullis-client"] == "claude-desktop"
    assert headers["x-portcullis-decision-id"]
    assert all(h.append_action == h.OVERWRITE_IF_EXISTS_OR_ADD for h in response.ok_response.headers)
    assert list(response.ok_response.headers_to_remove) == ["x-portcullis-role"]


def test_forbidden_tool_in_old_protocol_body_is_denied_with_jsonrpc_error() -> None:
    decide, _, _ = decider()
    response = check(_request(BOB_CLAIMS, body=_tool_call("get_revenue_metrics", 42)), decide)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert _headers(response)["content-type"] == "application/json"
    body = json.loads(response.denied_response.body)
    assert body["id"] == 42 and body["jsonrpc"] == "2.0"
    assert body["error"]["data"]["reason"] == "group_required"
    assert body["error"]["data"]["decision_id"] == _headers(response)["x-portcullis-decision-id"]


def test_forbidden_tool_in_new_protocol_headers_is_denied_without_a_body() -> None:
    decide, _, _ = decider()
    headers = {"mcp-method": "tools/call", "mcp-name": "get_revenue_metrics"}
    response = check(_request(BOB_CLAIMS, headers=headers), decide)
    assert response.denied_response.status.code == 403
    assert _error(response)["data"]["reason"] == "group_required"


def test_headers_contradicting_the_body_are_refused() -> None:
    decide, _, _ = decider()
    headers = {"mcp-method": "tools/call", "mcp-name": "whoami"}
    response = check(_request(BOB_CLAIMS, headers=headers, body=_tool_call("get_revenue_metrics")), decide)
    assert response.denied_response.status.code == 400
    assert _error(response)["data"]["reason"] == "mcp_header_mismatch"


def test_a_batch_with_one_forbidden_call_is_denied() -> None:
    decide, _, _ = decider()
    batch = [_tool_call("whoami", 1), _tool_call("get_revenue_metrics", 2)]
    response = check(_request(BOB_CLAIMS, body=batch), decide)
    assert response.denied_response.status.code == 403
    assert json.loads(response.denied_response.body)["id"] == 2


def test_unparseable_body_is_a_400_denial() -> None:
    decide, _, _ = decider()
    response = check(_request(body=b"{not json"), decide)
    assert response.denied_response.status.code == 400
    assert _error(response)["data"]["reason"] == "invalid_json"


def test_tools_call_without_a_name_is_a_400_denial() -> None:
    decide, _, _ = decider()
    response = check(_request(body={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}), decide)
    assert response.denied_response.status.code == 400


def test_request_without_a_token_gets_the_metadata_challenge_without_an_error_code() -> None:
    decide, _, log = decider()
    response = check(_request(None, body=_tool_call("whoami", 7)), decide)
    assert response.status.code == code_pb2.UNAUTHENTICATED
    assert response.denied_response.status.code == 401
    assert _headers(response)["www-authenticate"] == CHALLENGE
    assert _headers(response)["content-type"] == "application/json"
    assert _error(response)["data"]["reason"] == "unauthenticated"
    assert log.items == []  # refused before any decision


def test_jwt_authn_record_of_a_missing_token_is_still_no_token() -> None:
    # With a single provider, jwt_authn records "Jwt is missing" (code 1) even when no token was sent.
    decide, _, _ = decider()
    response = check(_request(None, failure={"code": 1.0, "message": "Jwt is missing"}), decide)
    assert _headers(response)["www-authenticate"] == CHALLENGE
    assert _error(response)["data"]["reason"] == "unauthenticated"


@pytest.mark.parametrize(
    "failure",
    [
        {"code": 3.0, "message": "Jwt is expired"},
        {"code": 24.0, "message": "Jwt issuer is not configured"},
        {"code": 25.0, "message": "Audiences in Jwt are not allowed"},
        {"code": 10.0, "message": 'Jwt verification "fails"'},
    ],
)
def test_refused_token_gets_invalid_token_with_jwt_authns_reason(failure: dict[str, Any]) -> None:
    decide, _, _ = decider()
    response = check(_request(None, body=_tool_call("whoami"), failure=failure), decide)
    assert response.denied_response.status.code == 401
    description = failure["message"].replace('"', "'")
    assert _headers(response)["www-authenticate"] == (
        f'{CHALLENGE}, error="invalid_token", error_description="{description}"'
    )
    error = _error(response)
    assert error["data"]["reason"] == "invalid_token"
    assert failure["message"] in error["message"]


def test_a_failed_token_beside_a_verified_one_is_refused() -> None:
    decide, _, _ = decider()
    response = check(_request(ALICE_CLAIMS, failure={"code": 3.0, "message": "Jwt is expired"}), decide)
    assert response.denied_response.status.code == 401
    assert 'error="invalid_token"' in _headers(response)["www-authenticate"]


def test_token_for_another_server_is_refused_even_if_envoy_let_it_through() -> None:
    decide, _, _ = decider()
    claims = {**ALICE_CLAIMS, "aud": "http://127.0.0.1:8080/servers/other/mcp"}
    response = check(_request(claims, body=_tool_call("whoami")), decide)
    assert response.denied_response.status.code == 401
    assert _error(response)["data"]["reason"] == "token_audience_mismatch"
    assert _headers(response)["www-authenticate"].startswith(f'{CHALLENGE}, error="invalid_token", ')


def test_a_revoked_token_is_refused_although_its_signature_is_valid() -> None:
    decide, _, _ = decider()
    claims = {**ALICE_CLAIMS, "jti": "revoked-1"}
    response = check(_request(claims, body=_tool_call("whoami")), decide, revoked=lambda: frozenset({"revoked-1"}))
    assert response.denied_response.status.code == 401
    assert _error(response)["data"]["reason"] == "token_revoked"
    assert 'error="invalid_token"' in _headers(response)["www-authenticate"]
    other = check(
        _request({**claims, "jti": "live-1"}, body=_tool_call("whoami")),
        decide,
        revoked=lambda: frozenset({"revoked-1"}),
    )
    assert other.HasField("ok_response")


def test_route_without_metadata_in_its_context_gets_a_bare_bearer_challenge() -> None:
    decide, _, _ = decider()
    request = _request(None)
    del request.attributes.context_extensions["resource_metadata"]
    del request.attributes.context_extensions["scope"]
    assert _headers(check(request, decide))["www-authenticate"] == "Bearer"


def test_a_denial_by_policy_carries_no_challenge() -> None:
    decide, _, _ = decider()
    response = check(_request(BOB_CLAIMS, body=_tool_call("get_revenue_metrics")), decide)
    assert response.denied_response.status.code == 403
    assert "www-authenticate" not in _headers(response)


def test_get_stream_without_body_is_decided_as_connect() -> None:
    decide, _, log = decider()
    request = _request()
    request.attributes.request.http.method = "GET"
    assert check(request, decide).status.code == code_pb2.OK
    assert log.items[-1][0].action == "connect"


def test_client_not_allowed_is_denied_with_a_readable_reason() -> None:
    decide, _, _ = decider()
    response = check(_request({**ALICE_CLAIMS, "client_id": "cursor"}, body=_tool_call("whoami")), decide)
    error = _error(response)
    assert error["data"]["reason"] == "client_not_allowed"
    assert error["message"] == "Denied: client application 'cursor' may not use server 'demo'"


def test_a_failure_inside_check_is_a_denial_not_an_exception() -> None:
    class Exploding:
        def decide(self, request: object) -> object:
            raise RuntimeError("boom")

    response = check(_request(body=_tool_call("whoami")), Exploding())  # type: ignore[arg-type]
    assert response.status.code != code_pb2.OK
    assert response.denied_response.status.code == 503
