"""The printed report: both clients' tables, the verdict against the target, and where the kit's time goes."""

from __future__ import annotations

import os

from bench.kit_bench.cases import CASES, Case, Samples
from bench.kit_bench.parts import Parts

__all__ = ["TARGET", "report"]

TARGET = 0.10  # warm-cache overhead, a share of the bare call's p50


def _table(title: str, results: dict[Case, Samples]) -> None:
    print(f"\n{title}")
    print(
        f"{'request':<38} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'calls/s':>8} {'p50 x':>6} "
        f"{'p99 x':>6} {'round p50 x':>12}"
    )
    for method in ("tools/call", "tools/list"):
        rows = [samples for case, samples in results.items() if case.method == method]
        base = rows[0]
        for s in rows:
            spread = [mine / theirs for mine, theirs in zip(s.rounds, base.rounds, strict=True)]
            print(
                f"{s.case.label:<38} {len(s.samples):>5} {s.p50:>8.2f} {s.p99:>8.2f} {s.mean:>8.2f} "
                f"{1000 / s.mean:>8,.0f} {s.p50 / base.p50:>6.2f} {s.p99 / base.p99:>6.2f} "
                f"{f'{min(spread):.2f}-{max(spread):.2f}':>12}"
            )
    by_label = {case.label: samples for case, samples in results.items()}
    bare, warm = by_label[CASES[0].label], by_label[CASES[1].label]
    cold, fresh = by_label[CASES[2].label], by_label[CASES[3].label]
    overhead = warm.p50 / bare.p50 - 1
    verdict = "met" if overhead < TARGET else "missed"
    print(
        f"warm-cache overhead: {overhead:+.1%} p50 ({warm.p50 - bare.p50:+.2f} ms), "
        f"{warm.p99 / bare.p99 - 1:+.1%} p99; target < {TARGET:.0%} of the bare call: {verdict}"
    )
    print(
        f"cold overhead: {cold.p50 / bare.p50 - 1:+.1%} p50 ({cold.p50 - bare.p50:+.2f} ms) with authz_service's "
        f"own cache hit; {fresh.p50 / bare.p50 - 1:+.1%} p50 ({fresh.p50 - bare.p50:+.2f} ms) with a policy "
        "evaluation"
    )


def report(
    raw: dict[Case, Samples],
    sdk: dict[Case, Samples],
    parts: Parts,
    tools: dict[str, list[str]],
    *,
    rounds: int,
    per_round: int,
) -> None:
    """Print both clients' tables, the verdicts and where the kit's time goes."""
    print(
        f"\nkit overhead: bare MCPServer vs kit (JWT + guard + AuthZEN) servers, each its own uvicorn process; "
        f"authz_service 1 worker; {os.cpu_count()} cores shared by all with the client"
    )
    print(
        f"{rounds} interleaved rounds x {per_round} requests per case; x = against the bare server in the same "
        "run; round p50 x = the range of the per-round p50 ratios"
    )
    print(
        f"tools/list to internal-agent: bare {', '.join(tools['bare'])}; kit {', '.join(tools['warm'])} "
        f"(cold: {', '.join(tools['cold'])})"
    )
    _table("raw JSON-RPC POSTs (httpx.Client, keep-alive, the SDK's headers and _meta)", raw)
    _table("mcp SDK Client (streamable HTTP, one session per server, response cache off)", sdk)
    print("\nwhere the kit's time goes")
    for target in ("warm", "cold"):
        decisions = parts.decisions[target]
        print(
            f"  kit {target} server: mean {parts.wrapper_ms[target]:.3f} ms per echo inside the tool wrapper (guard, "
            f"decision, tool; its log line is written after); decisions over the run: {decisions['hit']:,} cache "
            f"hits, {decisions['miss']:,} misses"
        )
    extra = parts.kit_app_us - parts.bare_app_us
    log_line = parts.kit_app_us - parts.kit_quiet_us
    rest = extra - parts.jwt_us - log_line
    print(
        f"  server side only, in this process (ASGI apps called directly: no HTTP, no client), p50: bare "
        f"{parts.bare_app_us:.0f} us, kit warm {parts.kit_app_us:.0f} us (+{extra:.0f} us, x"
        f"{parts.kit_app_us / parts.bare_app_us:.2f}), kit without its log line {parts.kit_quiet_us:.0f} us"
    )
    print(
        f"    the kit's +{extra:.0f} us: JWT verification {parts.jwt_us:.0f} us ({parts.jwt_us / extra:.0%}), "
        f"JSON log line {log_line:.0f} us ({log_line / extra:.0%}), the rest {rest:.0f} us ({rest / extra:.0%}: "
        f"guard wrapper, Caller, decision cache hit {parts.cache_hit_us:.0f} us, metrics, middleware)"
    )
    print(
        f"  AuthZEN from this process with the kit's Authorizer (cache off), p50: {parts.authzen_ms:.2f} ms "
        f"(authz_service's cache hit), {parts.authzen_fresh_ms:.2f} ms (policy evaluated); authz_service "
        f"GET /healthz on the same kind of client: {parts.authz_healthz_ms:.2f} ms"
    )
