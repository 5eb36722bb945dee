"""The decision function's own cost, in a process wired like one authz_service worker.

Times `Decider.decide` (the one decision function) and `ext_authz.check` (CheckRequest parse, decide,
CheckResponse: everything of an edge check but the gRPC transport) on cache miss and on cache hit. The
decider is the service's own `Runtime`: real policies, real catalog, real decision log, default cache.

Run `decision_timings` in a fresh process with `PROMETHEUS_MULTIPROC_DIR` set (see `edge_bench`): the
service's workers count into multi-process metrics, which cost about 1.5 us more per decision than
in-process ones, and prometheus_client chooses between them when it is first imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from envoy.service.auth.v3 import external_auth_pb2 as ext
from google.rpc import code_pb2

from authz_service.decision import Actor, Decider, DecisionRequest, ResourceRef
from authz_service.ext_authz import JWT_METADATA_NAMESPACE, JWT_PAYLOAD_KEY, check
from authz_service.runtime import Runtime
from authz_service.settings import Settings
from bench.request import BODY, CLIENT, ISSUER, SERVER, TOOL, audience, mcp_headers, user_claims

__all__ = ["MISS_SAMPLES", "HIT_SAMPLES", "Timing", "decision_timings", "percentile"]

MISS_SAMPLES = 3_000
HIT_SAMPLES = 30_000
_WARMUP = 300
# (name, p50 us, p99 us, samples): builtins only, so the result crosses the process boundary as is.
Timing = tuple[str, float, float, int]
_T = TypeVar("_T")


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _timed(name: str, call: Callable[[_T], object], inputs: Sequence[_T]) -> Timing:
    clock = time.perf_counter_ns
    samples = []
    for item in inputs:
        started = clock()
        call(item)
        samples.append(clock() - started)
    samples.sort()
    return name, percentile(samples, 50) / 1000, percentile(samples, 99) / 1000, len(samples)


def _edge_request(user: str) -> DecisionRequest:
    """The decision request the edge makes for the benchmarked HTTP request (see ext_authz._check)."""
    claims = user_claims(user)
    actor = Actor(
        id=user,
        client=CLIENT,
        email=claims["email"],
        groups=tuple(sorted(claims["groups"])),
        business_groups=tuple(sorted(claims["business_groups"])),
    )
    return DecisionRequest("edge", actor, "call", ResourceRef("tool", SERVER, TOOL), {"request_id": ""})


def _check_request(user: str) -> bytes:
    """A serialized CheckRequest as Envoy sends it for the benchmarked request, claims from jwt_authn."""
    now = float(int(time.time()))
    payload: dict[str, Any] = {
        **user_claims(user),
        "iss": ISSUER,
        "sub": user,
        "aud": audience(),
        "client_id": CLIENT,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": f"bench-{user}",
    }
    request = ext.CheckRequest()
    attributes = request.attributes
    attributes.context_extensions["server"] = SERVER
    attributes.context_extensions["audience"] = audience()
    http = attributes.request.http
    http.method = "POST"
    http.path = f"/servers/{SERVER}/mcp"
    http.host = "gateway.bench"
    http.protocol = "HTTP/1.1"
    http.headers.update({key.lower(): value for key, value in mcp_headers("x" * 700).items()})
    http.headers["x-request-id"] = "0b8c6e2e-5c1e-4d0c-9a57-4f1f2d6b7c11"
    http.raw_body = BODY.encode()
    namespace = attributes.metadata_context.filter_metadata[JWT_METADATA_NAMESPACE]
    namespace.fields[JWT_PAYLOAD_KEY].struct_value.update(payload)
    return bytes(request.SerializeToString())


def _decide_checked(decider: Decider, *, cached: bool) -> Callable[[DecisionRequest], object]:
    def call(request: DecisionRequest) -> object:
        decision = decider.decide(request)
        if not decision.allowed or decision.cached != cached:
            # A denial or the wrong cache outcome would time another path than the one reported.
            raise RuntimeError(f"unexpected decision {decision.result}/{decision.reason} cached={decision.cached}")
        return decision

    return call


def _check_checked(decider: Decider) -> Callable[[bytes], object]:
    def call(raw: bytes) -> object:
        response = check(ext.CheckRequest.FromString(raw), decider)
        if response.status.code != code_pb2.OK:
            raise RuntimeError(f"edge check denied: {response.status.message}")
        return response

    return call


def decision_timings(policy_dir: str, catalog_file: str, workdir: str) -> list[Timing]:
    """Time decide() and check() on miss and hit; paths are strings so a spawned process can take them."""
    settings = Settings(
        policy_dir=Path(policy_dir),
        catalog_file=Path(catalog_file),
        decision_log=Path(workdir) / "decisions.jsonl",
        key_dir=Path(workdir) / "keys",
        watch=False,
    )
    runtime = Runtime(settings)
    try:
        decider = runtime.decider
        miss = _decide_checked(decider, cached=False)
        hit = _decide_checked(decider, cached=True)
        for i in range(_WARMUP):
            miss(_edge_request(f"warmup-{i}"))
        # Distinct users: each key is new to the cache, so every one is a policy evaluation.
        timings = [_timed("decide, cache miss", miss, [_edge_request(f"miss-{i}") for i in range(MISS_SAMPLES)])]
        miss(_edge_request("alice"))
        timings.append(_timed("decide, cache hit", hit, [_edge_request("alice")] * HIT_SAMPLES))
        edge = _check_checked(decider)
        raws = [_check_request(f"edge-miss-{i}") for i in range(MISS_SAMPLES)]
        timings.append(_timed("ext_authz check(), cache miss", edge, raws))
        timings.append(_timed("ext_authz check(), cache hit", edge, [_check_request("alice")] * HIT_SAMPLES))
        return timings
    finally:
        runtime.close()
