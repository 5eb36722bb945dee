"""What ext_authz costs at the edge, through the real Envoy: (a) jwt_authn only versus (b) jwt_authn + ext_authz.

    python -m bench.edge_bench [--duration 6] [--warmup 2] [--workers 2]

Two Envoys run side by side from the same generated config, (b) with the ext_authz filter calling the real
authz_service (N worker processes) and (a) without it. In both, the demo route answers with a
`direct_response`: the upstream MCP server (Python, far slower than the gateway) is out of the measurement,
while the decoder filters jwt_authn and ext_authz still run before the router. wrk sends the same request
(one token, one body) to both at 1 and 16 connections. The decision function is timed on its own first.

Figures are printed, never asserted; the targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import yaml

from authz_service.catalog import FileCatalogSource
from authz_service.keys import SigningKey
from bench.decision_bench import HIT_SAMPLES, MISS_SAMPLES, Timing, decision_timings
from bench.request import BODY, CLIENT, ISSUER, PUBLIC_URL, SERVER, audience, mcp_headers, user_claims
from gateway.config import build_config, render_yaml, spec_from_catalog
from gateway.launcher import start_envoy, validate_config
from portcullis.processes import running
from portcullis.testing import JwksServer, free_port, free_port_block, stop_process, wait_http

__all__ = ["LoadResult", "direct_response_config", "main", "run_wrk"]

ROOT = Path(__file__).resolve().parents[1]
CONNECTION_LEVELS = ((1, 1), (16, 2))  # (connections, wrk threads): wrk itself shares the 2 cores
GATEWAYS = (("a", "jwt_authn", False), ("b", "jwt_authn + ext_authz", True))  # (name, label, with ext_authz)
TARGET_RATIO_AT_16 = 0.35
TARGET_ADDED_P99_MS_AT_1 = 1.0
RESPONSE_BODY = '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"alice"}],"isError":false}}'
_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH_RESULT {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%.1f,"p99_us":%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run's figures."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses plus socket errors: any is a sign the run measured something else


def direct_response_config(config: dict[str, Any], server: str) -> dict[str, Any]:
    """The config with `server`'s route answered by Envoy itself; its per-filter config stays as generated."""
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = next(r for r in manager["route_config"]["virtual_hosts"][0]["routes"] if r["name"] == server)
    del route["route"]
    route["direct_response"] = {"status": 200, "body": {"inline_string": RESPONSE_BODY}}
    route["response_headers_to_add"] = [
        {"header": {"key": "content-type", "value": "application/json"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]
    return config


def _lua_string(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ValueError("only printable ASCII goes into the wrk script")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_wrk_script(path: Path, token: str) -> Path:
    """A wrk script sending the benchmarked request and printing its summary as one JSON line."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(BODY)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in mcp_headers(token).items()]
    path.write_text("\n".join(lines) + "\n" + _WRK_DONE)
    return path


def run_wrk(url: str, script: Path, *, connections: int, threads: int, seconds: float) -> LoadResult:
    """Run wrk against `url` and read the summary line the script prints.

    Raises:
        RuntimeError: wrk failed or printed no summary.
    """
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {(result.stderr or result.stdout).strip()[:400]}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return LoadResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=data["non_2xx"] + data["socket_errors"],
    )


@contextmanager
def _envoy(config: dict[str, Any], workdir: Path, name: str, admin_port: int) -> Iterator[subprocess.Popen[bytes]]:
    path = workdir / f"envoy-{name}.yaml"
    path.write_text(render_yaml(config))
    validate_config(path)
    process = start_envoy(path, workdir / f"envoy-{name}.log")
    try:
        wait_http(f"http://127.0.0.1:{admin_port}/ready", process=process)
        yield process
    finally:
        stop_process(process)


@dataclass(frozen=True)
class Gateway:
    """One running Envoy of the benchmark."""

    name: str
    label: str
    url: str
    admin_url: str


@contextmanager
def edge_stack(workdir: Path, *, workers: int) -> Iterator[tuple[Gateway, Gateway, str]]:
    """authz_service and the two Envoys, (a) without and (b) with ext_authz; yields them and a valid token."""
    shutil.copytree(ROOT / "policies", workdir / "policies")
    catalog_file = workdir / "catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(FileCatalogSource(ROOT / "config" / "catalog.yaml").document()))
    http_port, grpc_port = free_port(), free_port_block(workers)
    key = SigningKey.generate()
    env = {
        **os.environ,
        "AUTHZ_HTTP_PORT": str(http_port),
        "AUTHZ_GRPC_PORT": str(grpc_port),
        "AUTHZ_WORKERS": str(workers),
        "AUTHZ_POLICY_DIR": str(workdir / "policies"),
        "AUTHZ_CATALOG_FILE": str(catalog_file),
        "AUTHZ_DECISION_LOG": str(workdir / "decisions.jsonl"),
        "AUTHZ_KEY_DIR": str(workdir / "keys"),
    }
    with ExitStack() as stack:
        jwks = JwksServer(key.jwks())
        stack.callback(jwks.close)
        authz = stack.enter_context(
            running([sys.executable, "-m", "authz_service"], workdir / "authz.log", env=env, cwd=ROOT)
        )
        wait_http(f"http://127.0.0.1:{http_port}/readyz", process=authz)
        gateways = []
        for name, label, with_ext_authz in GATEWAYS:
            listen_port, admin_port = free_port(), free_port()
            spec = spec_from_catalog(
                FileCatalogSource(catalog_file).load(),
                issuer=ISSUER,
                jwks_uri=jwks.url,
                authz_endpoints=[("127.0.0.1", grpc_port + i) for i in range(workers)],
                public_url=PUBLIC_URL,
                listen_port=listen_port,
                admin_port=admin_port,
            )
            config = direct_response_config(build_config(replace(spec, ext_authz=with_ext_authz)), SERVER)
            stack.enter_context(_envoy(config, workdir, name, admin_port))
            url = f"http://127.0.0.1:{listen_port}/servers/{SERVER}/mcp"
            gateways.append(Gateway(name, label, url, f"http://127.0.0.1:{admin_port}"))
        token = key.mint(
            issuer=ISSUER, subject="alice", audience=audience(), client_id=CLIENT, claims=user_claims("alice")
        )
        for gateway in gateways:
            _first_ok(gateway.url, token)
        yield gateways[0], gateways[1], token


def _first_ok(url: str, token: str, timeout: float = 15.0) -> None:
    """Poll with the benchmarked request until it answers 200 (Envoy fetches the JWKS asynchronously)."""
    deadline = time.monotonic() + timeout
    status, text = 0, ""
    while time.monotonic() < deadline:
        try:
            response = httpx.post(url, content=BODY, headers=mcp_headers(token), timeout=2.0)
            status, text = response.status_code, response.text
        except httpx.HTTPError as exc:
            status, text = 0, str(exc)
        if status == 200 and text == RESPONSE_BODY:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered the benchmarked request with 200: {status} {text[:300]}")


def _ext_authz_stats(admin_url: str) -> dict[str, int]:
    text = httpx.get(f"{admin_url}/stats", params={"filter": r"ext_authz\."}, timeout=5.0).text
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name.rsplit(".", 1)[-1]] = int(value)
    return stats


def measure_gateways(
    workdir: Path, *, workers: int, seconds: float, warmup: float
) -> dict[tuple[str, int], LoadResult]:
    """Every (gateway, connections) pair, warmed up, with (a) and (b) interleaved so drift hits both."""
    results: dict[tuple[str, int], LoadResult] = {}
    with edge_stack(workdir, workers=workers) as (a, b, token):
        script = write_wrk_script(workdir / "request.lua", token)
        before = _ext_authz_stats(b.admin_url)
        for connections, threads in CONNECTION_LEVELS:
            for gateway in (a, b):
                run_wrk(gateway.url, script, connections=connections, threads=threads, seconds=warmup)
                result = run_wrk(gateway.url, script, connections=connections, threads=threads, seconds=seconds)
                results[(gateway.name, connections)] = result
                print(
                    f"  ({gateway.name}) {gateway.label:<22} {connections:>2} conn: {result.rps:>8,.0f} req/s"
                    f"  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  errors {result.errors}",
                    flush=True,
                )
        after = _ext_authz_stats(b.admin_url)
        checked = {key: after.get(key, 0) - before.get(key, 0) for key in ("ok", "denied", "error")}
        print(f"  ext_authz on (b) during the runs: {checked['ok']:,} ok, {checked['denied']:,} denied, "
              f"{checked['error']:,} error")  # fmt: skip
    return results


def measure_decisions(workdir: Path) -> list[Timing]:
    """Run the decision micro-benchmark in a fresh process with multi-process metrics, as a worker has."""
    (workdir / "metrics").mkdir(parents=True)
    (workdir / "decider").mkdir()
    shutil.copytree(ROOT / "policies", workdir / "decider-policies")
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # A spawned child inherits the environment as it is at spawn time, before it imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "metrics")
    try:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            args = (str(workdir / "decider-policies"), str(ROOT / "config" / "catalog.yaml"), str(workdir / "decider"))
            return pool.submit(decision_timings, *args).result(timeout=300)
    finally:
        if saved is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(results: dict[tuple[str, int], LoadResult], timings: list[Timing], *, seconds: float, workers: int) -> None:
    """Print the summary table."""
    print(f"\nEdge: POST tools/call {SERVER}/whoami, direct_response upstream; Envoy --concurrency 2, "
          f"authz workers {workers}, wrk {seconds:g} s per run, {os.cpu_count()} cores shared by all")  # fmt: skip
    if results:
        print(f"{'conns':>5}  {'gateway':<26} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        for connections, _ in CONNECTION_LEVELS:
            for name, label, _ in GATEWAYS:
                r = results[(name, connections)]
                figures = f"{r.rps:>9,.0f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.errors:>6}"
                print(f"{connections:>5}  ({name}) {label:<22} {figures}")
        for connections, _ in CONNECTION_LEVELS:
            ratio = results[("b", connections)].rps / results[("a", connections)].rps
            target = (
                f"  (target >= {TARGET_RATIO_AT_16}: {_verdict(ratio >= TARGET_RATIO_AT_16)})"
                if connections == 16
                else ""
            )
            print(f"ratio b/a req/s at {connections:>2} conn: {ratio:.2f}{target}")
        added = results[("b", 1)].p99_ms - results[("a", 1)].p99_ms
        added_p50 = results[("b", 1)].p50_ms - results[("a", 1)].p50_ms
        verdict = _verdict(added <= TARGET_ADDED_P99_MS_AT_1)
        print(f"added p99 at  1 conn: {added:.3f} ms (p50 {added_p50:.3f} ms)"
              f"  (target <= {TARGET_ADDED_P99_MS_AT_1:g} ms: {verdict})")  # fmt: skip
    print(f"\nDecision function in one process wired like a worker (misses: {MISS_SAMPLES:,}, hits: {HIT_SAMPLES:,})")
    print(f"{'':<32} {'p50 us':>8} {'p99 us':>8}")
    for name, p50, p99, _ in timings:
        print(f"{name:<32} {p50:>8.1f} {p99:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 when wrk is missing (the decision figures still print)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.edge_bench",
        description="ext_authz's cost through the real Envoy, and the decision function's own; prints figures.",
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up before each run")
    parser.add_argument("--workers", type=int, default=2, help="authz_service worker processes")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    with tempfile.TemporaryDirectory(prefix="portcullis-bench-") as tmp:
        workdir = Path(tmp)
        print("decision function ...", flush=True)
        timings = measure_decisions(workdir / "decision")
        results: dict[tuple[str, int], LoadResult] = {}
        if wrk is None:
            print("wrk not found: the gateway figures need it (Debian: apt-get install wrk)", file=sys.stderr)
        else:
            print("gateway (a) jwt_authn vs (b) jwt_authn + ext_authz ...", flush=True)
            (workdir / "edge").mkdir()
            results = measure_gateways(
                workdir / "edge", workers=args.workers, seconds=args.duration, warmup=args.warmup
            )
        report(results, timings, seconds=args.duration, workers=args.workers)
    return 0 if wrk else 1


if __name__ == "__main__":
    sys.exit(main())
