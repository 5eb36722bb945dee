"""The AuthZEN client: fails closed on every kind of failure, caches policy decisions briefly, batches misses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from server_kit import Caller
from server_kit.authz import AUTHZ_ERROR, AUTHZ_UNAVAILABLE, Authorizer, Check, Verdict

ALICE = Caller(user="alice", client_id="claude-desktop", groups=("ads-eng",), business_groups=("ads",))
BOB = Caller(user="bob", client_id="claude-desktop", groups=("eng",), decision_id="edge-7", request_id="req-7")
REVENUE = Check("get_revenue_metrics", "call", {"region": "emea"})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeAuthzen:
    """An AuthZEN endpoint answering from a rule, remembering what it was asked."""

    rule: Callable[[dict[str, Any]], tuple[bool, str]] = lambda evaluation: (True, "")
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        if request.url.path == "/access/v1/evaluations":
            answers = [self._answer({**body, **item}) for item in body["evaluations"]]
            return httpx.Response(200, json={"evaluations": answers})
        return httpx.Response(200, json=self._answer(body))

    def _answer(self, evaluation: dict[str, Any]) -> dict[str, Any]:
        allowed, reason = self.rule(evaluation)
        return {"decision": allowed, "context": {"id": f"d-{len(self.requests)}", "reason": reason}}

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def authorizer(
    handler: Callable[[httpx.Request], httpx.Response], clock: Clock | None = None, **options: Any
) -> Authorizer:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://authz.test")
    values: dict[str, Any] = {"timeout_seconds": 1.0, "cache_ttl_seconds": 5.0, **options}
    return Authorizer(
        server="demo", url="http://authz.test", credential="svc-secret", http=http, clock=clock or Clock(), **values
    )


def check(auth: Authorizer, caller: Caller = ALICE, item: Check = REVENUE) -> Verdict:
    async def run() -> Verdict:
        return await auth.check(caller, item)

    return anyio.run(run)


def _raise(error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")]
)
def test_an_unreachable_or_slow_authz_service_is_a_denial(error: Exception) -> None:
    assert check(authorizer(_raise(error))) == Verdict(False, AUTHZ_UNAVAILABLE)


@pytest.mark.parametrize(
    ("status", "reason"), [(503, AUTHZ_UNAVAILABLE), (500, AUTHZ_UNAVAILABLE), (401, AUTHZ_ERROR), (400, AUTHZ_ERROR)]
)
def test_an_error_status_from_the_authz_service_is_a_denial(status: int, reason: str) -> None:
    assert check(authorizer(lambda request: httpx.Response(status, json={"decision": True}))) == Verdict(False, reason)


@pytest.mark.parametrize(
    "answer",
    [b"not json", b"[true]", b'{"decision": "yes"}', b'{"decision": 1}', b"{}", b'{"context": {"reason": "x"}}'],
)
def test_a_malformed_answer_is_a_denial(answer: bytes) -> None:
    verdict = check(authorizer(lambda request: httpx.Response(200, content=answer)))
    assert verdict == Verdict(False, AUTHZ_ERROR)


def test_a_batch_answer_of_the_wrong_length_denies_every_item() -> None:
    auth = authorizer(lambda request: httpx.Response(200, json={"evaluations": [{"decision": True}]}))

    async def run() -> list[Verdict]:
        return await auth.check_many(ALICE, [REVENUE, Check("echo", "call", {})])

    assert anyio.run(run) == [Verdict(False, AUTHZ_ERROR)] * 2


def test_the_request_carries_the_credential_subject_tool_server_inputs_and_edge_ids() -> None:
    fake = FakeAuthzen()
    check(authorizer(fake), BOB)
    request = fake.requests[0]
    assert request.url.path == "/access/v1/evaluation"
    assert request.headers["authorization"] == "Bearer svc-secret"
    assert json.loads(request.content) == {
        "subject": {
            "type": "user",
            "id": "bob",
            "properties": {"client_id": "claude-desktop", "email": "", "groups": ["eng"], "business_groups": []},
        },
        "action": {"name": "call"},
        "resource": {
            "type": "tool",
            "id": "get_revenue_metrics",
            "properties": {"server": "demo", "arguments": {"region": "emea"}},
        },
        "context": {"edge_decision_id": "edge-7", "request_id": "req-7"},
    }


def test_policy_decisions_are_cached_until_the_ttl_passes() -> None:
    fake, clock = FakeAuthzen(rule=lambda e: (False, "group_required")), Clock()
    auth = authorizer(fake, clock)
    first = check(auth)
    assert first == Verdict(False, "group_required", "d-1")
    assert check(auth) == Verdict(False, "group_required", "d-1", cached=True)
    clock.now += 5.0
    assert check(auth).cached is False
    assert len(fake.requests) == 2


def test_the_cache_key_is_the_caller_facts_the_tool_and_the_policy_inputs() -> None:
    fake = FakeAuthzen()
    auth = authorizer(fake)
    check(auth)
    check(auth, ALICE, Check("get_revenue_metrics", "call", {"region": "amer"}))
    check(auth, Caller(user="alice", client_id="claude-desktop", groups=("ads-eng",)))  # lost a business group
    check(auth, ALICE, Check("echo", "call", {"region": "emea"}))
    assert len(fake.requests) == 4
    check(auth, Caller(user="alice", client_id="claude-desktop", groups=("ads-eng",), business_groups=("ads",)))
    assert len(fake.requests) == 4  # same facts, same inputs: a hit


def test_failures_are_never_cached() -> None:
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("down")
        return httpx.Response(200, json={"decision": True, "context": {"id": "d", "reason": ""}})

    auth = authorizer(flaky)
    assert check(auth).allowed is False
    assert check(auth).allowed is True


def test_a_zero_ttl_disables_the_cache() -> None:
    fake = FakeAuthzen()
    auth = authorizer(fake, cache_ttl_seconds=0)
    check(auth)
    check(auth)
    assert len(fake.requests) == 2


def test_many_checks_send_one_batch_for_the_cache_misses_only() -> None:
    fake = FakeAuthzen(rule=lambda e: (e["resource"]["id"] != "get_revenue_metrics", "group_required"))
    auth = authorizer(fake)
    items = [Check(name, "call", {}) for name in ("whoami", "echo", "get_revenue_metrics")]

    async def run() -> list[Verdict]:
        await auth.check(ALICE, items[0])
        return await auth.check_many(ALICE, items)

    verdicts = anyio.run(run)
    assert [v.allowed for v in verdicts] == [True, True, False] and verdicts[0].cached
    assert [r.url.path for r in fake.requests] == ["/access/v1/evaluation", "/access/v1/evaluations"]
    assert [e["resource"]["id"] for e in fake.bodies()[1]["evaluations"]] == ["echo", "get_revenue_metrics"]
