import json

import httpx
import pytest

from portcullis_contracts.authzen import AUTHZ_ERROR, AUTHZ_UNAVAILABLE, AuthzenClient, AuthzenFailure, Verdict

SUBJECT = {"type": "user", "id": "alice"}


def _client(handler: httpx.MockTransport) -> AuthzenClient:
    return AuthzenClient(httpx.Client(base_url="http://pdp.test", transport=handler), credential="s3cret", batch_size=2)


def test_a_decision_is_asked_with_the_service_credential_and_read_from_the_answer() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"decision": False, "context": {"reason": "no_rule_allows", "id": "d1"}})

    verdict = _client(httpx.MockTransport(answer)).evaluate(SUBJECT, "call", {"type": "tool", "id": "echo"})
    assert verdict == Verdict(False, "no_rule_allows", "d1")
    assert seen[0].url.path == "/access/v1/evaluation"
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert json.loads(seen[0].content)["action"] == {"name": "call"}


def test_many_questions_go_in_batches_and_a_malformed_decision_denies_only_its_own() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["evaluations"]
        return httpx.Response(200, json={"evaluations": [{"decision": True}, "garbage"][: len(asked)]})

    items = [("call", {"id": str(i)}) for i in range(3)]
    verdicts = _client(httpx.MockTransport(answer)).evaluate_many(SUBJECT, items)
    assert [(v.allowed, v.failed) for v in verdicts] == [(True, False), (False, True), (True, False)]
    assert verdicts[1].reason == AUTHZ_ERROR


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (503, b"{}", AUTHZ_UNAVAILABLE),
        (403, b"{}", AUTHZ_ERROR),
        (200, b"not json", AUTHZ_ERROR),
        (200, b"[]", AUTHZ_ERROR),
    ],
)
def test_an_answer_without_a_decision_fails_closed(status: int, body: bytes, reason: str) -> None:
    client = _client(httpx.MockTransport(lambda _: httpx.Response(status, content=body)))
    with pytest.raises(AuthzenFailure) as failure:
        client.evaluate(SUBJECT, "call", {})
    assert failure.value.reason == reason


def test_an_unreachable_decision_point_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(AuthzenFailure) as failure:
        _client(httpx.MockTransport(refuse)).evaluate(SUBJECT, "call", {})
    assert (failure.value.reason, failure.value.status) == (AUTHZ_UNAVAILABLE, None)
