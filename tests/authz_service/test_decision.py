from __future__ import annotations

import shutil
from pathlib import Path

from authz_service.decision import Decider, DecisionRequest, ResourceRef, decision_record
from authz_service.metrics import Metrics
from authz_service.policy import PolicyEngine
from tests.authz_service.helpers import ALICE, BOB, POLICIES, ListLog, catalog, decider


def _call(tool: str, actor: object = ALICE, **properties: object) -> DecisionRequest:
    return DecisionRequest("server", actor, "call", ResourceRef.of("tool", "demo", tool, properties))  # type: ignore[arg-type]


def test_decision_carries_id_reason_and_both_revisions() -> None:
    decide, engine, _ = decider()
    decision = decide.decide(_call("get_revenue_metrics", BOB))
    assert not decision.allowed and decision.reason == "group_required"
    assert engine.current is not None and decision.policy_revision == engine.current.revision
    assert decision.catalog_revision == catalog().revision
    assert decision.decision_id and decision.duration_ms >= 0


def test_repeated_request_is_answered_from_the_cache() -> None:
    decide, _, _ = decider()
    first = decide.decide(_call("whoami"))
    second = decide.decide(_call("whoami"))
    assert not first.cached and second.cached
    assert first.allowed == second.allowed and first.decision_id != second.decision_id


def test_cache_key_includes_the_arguments_the_policy_may_read() -> None:
    decide, _, _ = decider()
    decide.decide(_call("echo", message="a"))
    assert not decide.decide(_call("echo", message="b")).cached
    assert decide.decide(_call("echo", message="a")).cached


def test_policy_reload_drops_cached_decisions(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    decide, engine, _ = decider(policies)
    assert decide.decide(_call("echo")).allowed
    with (policies / "tools.polar").open("a") as handle:
        handle.write('\ntool_group("demo", "echo", "echo-operators");\n')
    engine.reload()
    decision = decide.decide(_call("echo"))
    assert not decision.cached and not decision.allowed and decision.reason == "group_required"


def test_exception_during_evaluation_is_a_denial(tmp_path: Path) -> None:
    (tmp_path / "p.polar").write_text(
        "deny(_, _, _, _) if false;\nallow(actor, _, _) if actor.id.no_such_method() = 1;\n"
    )
    decide, _, log = decider(tmp_path)
    decision = decide.decide(_call("whoami"))
    assert not decision.allowed and decision.reason == "evaluation_error"
    assert len(log.items) == 1


def test_runaway_policy_times_out_as_a_denial(tmp_path: Path) -> None:
    (tmp_path / "p.polar").write_text("deny(_, _, _, _) if false;\nallow(a, b, c) if allow(a, b, c);\n")
    engine = PolicyEngine(tmp_path, timeout_ms=5)
    engine.reload()
    loaded = catalog()
    decide = Decider(engine=engine, catalog=lambda: loaded, log=ListLog(), metrics=Metrics(), cache_size=10)
    decision = decide.decide(_call("whoami"))
    assert not decision.allowed and decision.reason in ("evaluation_timeout", "evaluation_error")


def test_unknown_server_and_tool_are_denied_without_asking_the_policy() -> None:
    decide, _, _ = decider()
    unknown_server = DecisionRequest("edge", ALICE, "connect", ResourceRef.of("server", "nowhere"))
    assert decide.decide(unknown_server).reason == "unknown_server"
    assert decide.decide(_call("rm_rf")).reason == "unknown_tool"


def test_global_shadow_mode_allows_and_logs_would_deny() -> None:
    decide, _, log = decider(shadow_mode=True)
    decision = decide.decide(_call("get_revenue_metrics", BOB))
    assert decision.allowed and decision.shadow and decision.result == "would_deny"
    assert decision_record(log.items[-1])["result"] == "would_deny"
    assert decision_record(log.items[-1])["reason"] == "group_required"


def test_per_server_shadow_mode_only_shadows_that_server() -> None:
    decide, _, _ = decider(shadow_servers=frozenset({"finance-reports"}))
    assert not decide.decide(_call("get_revenue_metrics", BOB)).allowed
    shadowed = decide.decide(DecisionRequest("edge", BOB, "connect", ResourceRef.of("server", "finance-reports")))
    assert shadowed.allowed and shadowed.result == "would_deny" and shadowed.reason == "server_not_approved"


def test_decision_record_holds_the_actor_claims_and_no_token() -> None:
    decide, _, log = decider()
    decide.decide(DecisionRequest("edge", ALICE, "connect", ResourceRef.of("server", "demo"), {"request_id": "r1"}))
    record = decision_record(log.items[-1])
    assert set(record) >= {"decision_id", "time", "layer", "actor", "action", "resource", "result", "reason",
                           "policy_revision", "catalog_revision", "latency_ms"}  # fmt: skip
    assert record["actor"] == {"id": "alice", "email": "alice@example.com", "client": "claude-desktop",
                               "groups": ["ads-eng", "eng"], "business_groups": ["ads"]}  # fmt: skip
    assert record["context"] == {"request_id": "r1"}
    assert "token" not in str(record).lower()


def test_concurrent_decisions_on_threads_never_fail_on_the_shared_cache() -> None:
    import threading

    decide, _, _ = decider(cache_size=8)  # a small cache: constant eviction while threads race
    reasons: list[str] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for index in range(300):
            tool = ("whoami", "echo", "get_revenue_metrics")[(index + offset) % 3]
            decision = decide.decide(_call(tool, BOB if index % 2 else ALICE, n=index % 20))
            with lock:
                reasons.append(decision.reason)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reasons) == 1200
    assert not {"evaluation_error", "evaluation_timeout"} & set(reasons)
