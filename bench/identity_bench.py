"""The built-in OAuth 2.1 authorization server of authz_service, served for real and timed against `/healthz`.

    python -m bench.identity_bench [--requests 1500] [--tokens 600] [--flows 400] [--duration 4] [--clients 8]

authz_service runs as a process (two workers, 127.0.0.1, free ports, a fresh SQLite identity store in a temporary
directory, stopped by PID). One keep-alive client times, each after a warm-up: `/healthz` (the baseline, the same
process's HTTP floor), the discovery documents, client-credentials tokens (client_secret_basic), the whole
authorization-code flow of a public client (authorize, login, consent, code exchange) step by step, and a refresh
token rotation. Then client-credentials tokens and `/healthz` from concurrent clients. The secret check is an
scrypt hash by design: the same hash is timed in-process to say how much of a token request it is. Figures are
printed, never asserted; ratios are against the baseline of the same run, because the machine is noisy.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from authz_service.worker import wait_grpc_serving
from bench.decision_bench import percentile
from portcullis.processes import running
from portcullis.testing import authz_environment, free_port, free_port_block, wait_http
from portcullis_contracts.directory import _SCRYPT

__all__ = ["Figures", "Server", "main", "serve"]

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
GATEWAY = "http://127.0.0.1:8080"
RESOURCE = f"{GATEWAY}/servers/demo/mcp"
AGENT = ("internal-agent", "internal-agent-dev-secret")  # client_credentials, client_secret_basic
PUBLIC_CLIENT = "claude-desktop"
REDIRECT = "http://127.0.0.1:5555/callback"  # loopback: any port matches the registered http://127.0.0.1/callback
USER, PASSWORD = "alice", "portcullis"
SCRYPT_EVERY = 2  # an in-process scrypt after every second timed token
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class StepFailed(RuntimeError):
    """A request of the benchmark got another answer than the flow expects."""


@dataclass
class Figures:
    """Latencies of one request kind, in ms, ascending."""

    label: str
    samples: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def per_second(self) -> float:
        """Sequential requests per second on one connection: 1 / mean latency."""
        return 1000 / self.mean


@dataclass
class Server:
    """A running authz_service: its base URL and where its identity store lives."""

    url: str
    database: Path
    log: Path


@contextmanager
def serve(workdir: Path) -> Iterator[Server]:
    """authz_service with the identity provider on free ports, ready on HTTP and every gRPC worker."""
    http_port, grpc_port = free_port(), free_port_block(WORKERS)
    url = f"http://127.0.0.1:{http_port}"
    database, log = workdir / "identity.db", workdir / "authz.log"
    env = authz_environment(workdir, http_port=http_port, grpc_port=grpc_port, workers=WORKERS, gateway_url=GATEWAY)
    with running([sys.executable, "-m", "authz_service"], log, env=env, cwd=ROOT) as process:
        try:
            wait_http(f"{url}/readyz", timeout=60, process=process)
            ports = list(range(grpc_port, grpc_port + WORKERS))
            wait_grpc_serving("127.0.0.1", ports, timeout=30, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError):
            _print_log_tail(log)
            raise
        yield Server(url, database, log)


def _print_log_tail(log: Path, lines: int = 30) -> None:
    if log.exists():
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)


# --- requests --------------------------------------------------------------------------------------------------


def _expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
    if response.status_code != status:
        raise StepFailed(f"{step}: {response.status_code} instead of {status}: {response.text[:300]}")
    return response


def _csrf(html: str, step: str) -> str:
    match = _CSRF.search(html)
    if match is None:
        raise StepFailed(f"{step}: no CSRF field on the page")
    return match.group(1)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def client_credentials(client: httpx.Client) -> str:
    """One client_credentials token for the demo server; its access token."""
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "mcp", "resource": RESOURCE}, auth=AGENT
    )
    return str(_expect(response, 200, "client_credentials").json()["access_token"])


def timed(label: str, call: Callable[[], object], *, requests: int) -> Figures:
    """Time `requests` calls of `call` after a warm-up of a tenth of them (at least 10)."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    warmup = max(10, requests // 10)
    for i in range(warmup + requests):
        started = clock()
        call()
        elapsed = clock() - started
        if i >= warmup:
            samples.append(elapsed / 1e6)
    samples.sort()
    return Figures(label, samples)


@dataclass
class FlowFigures:
    """Per-step latencies of the authorization-code flow, the whole flow and the refresh after it."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    access_token: str = ""
    refresh_token: str = ""

    def add(self, step: str, ms: float) -> None:
        self.steps.setdefault(step, []).append(ms)

    def figures(self) -> list[Figures]:
        order = (_FLOW, _AUTHORIZE, _LOGIN, _CONSENT, _EXCHANGE, _REFRESH)
        return [Figures(step, sorted(self.steps[step])) for step in order if step in self.steps]


_AUTHORIZE, _LOGIN, _CONSENT, _EXCHANGE = (
    "  GET /authorize (login page)",
    "  POST /login (password)",
    "  POST /consent (303 + code)",
    "  POST /token (code + PKCE)",
)
_FLOW, _REFRESH = "code flow, 4 requests", "POST /token refresh rotation"
_STEPS = (_AUTHORIZE, _LOGIN, _CONSENT, _EXCHANGE, _REFRESH)  # marks: one before the first, one after each
_TOKEN = "POST /token client_credentials"
_NO_CREDENTIALS = "POST /token no credentials (401)"


def code_flow(client: httpx.Client, result: FlowFigures | None) -> None:
    """A browser's and a public client's whole flow, as a new visitor (no login session), then one refresh."""
    clock = time.perf_counter_ns
    client.cookies.clear()  # every flow signs in: a remembered session would skip the login page
    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": PUBLIC_CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "mcp",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
    }
    marks = [clock()]
    page = _expect(client.get("/authorize", params=params), 200, "authorize")
    marks.append(clock())
    login = {"csrf": _csrf(page.text, "authorize"), "username": USER, "password": PASSWORD}
    page = _expect(client.post("/login", data=login), 200, "login")
    marks.append(clock())
    answer = _expect(client.post("/consent", data={"csrf": _csrf(page.text, "login"), "decision": "approve"}), 303,
                     "consent")  # fmt: skip
    marks.append(clock())
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "client_id": PUBLIC_CLIENT, "redirect_uri": REDIRECT}  # fmt: skip
    tokens = _expect(client.post("/token", data=exchange), 200, "code exchange").json()
    marks.append(clock())
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": PUBLIC_CLIENT}
    _expect(client.post("/token", data=refresh), 200, "refresh")
    marks.append(clock())
    if result is None:
        return
    for step, started, ended in zip(_STEPS, marks, marks[1:], strict=False):
        result.add(step, (ended - started) / 1e6)
    result.add(_FLOW, (marks[4] - marks[0]) / 1e6)
    result.access_token, result.refresh_token = tokens["access_token"], tokens["refresh_token"]


def flows(client: httpx.Client, *, count: int) -> FlowFigures:
    """`count` timed code flows after a warm-up of a tenth of them (at least 5)."""
    for _ in range(max(5, count // 10)):
        code_flow(client, None)
    result = FlowFigures()
    for _ in range(count):
        code_flow(client, result)
    return result


def _scrypt_once(salt: bytes) -> float:
    started = time.perf_counter_ns()
    hashlib.scrypt(AGENT[1].encode(), salt=salt, dklen=32, **_SCRYPT)
    return (time.perf_counter_ns() - started) / 1e6


def client_credentials_with_scrypt(client: httpx.Client, *, requests: int) -> tuple[Figures, Figures]:
    """Timed client_credentials tokens, and hashlib.scrypt with the directory's parameters timed in this process
    after every `SCRYPT_EVERY`-th of them, so that both see the same moment of a noisy machine.
    """
    salt = secrets.token_bytes(16)
    for _ in range(max(10, requests // 10)):
        client_credentials(client)
        _scrypt_once(salt)
    tokens: list[float] = []
    hashes: list[float] = []
    for i in range(requests):
        started = time.perf_counter_ns()
        client_credentials(client)
        tokens.append((time.perf_counter_ns() - started) / 1e6)
        if i % SCRYPT_EVERY == 0:
            hashes.append(_scrypt_once(salt))
    return Figures(_TOKEN, sorted(tokens)), Figures("hashlib.scrypt in-process", sorted(hashes))


# --- concurrency -----------------------------------------------------------------------------------------------


@dataclass
class Concurrent:
    """Requests completed by `clients` threads, each on its own keep-alive connection, in `seconds`."""

    label: str
    clients: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


def concurrently(label: str, url: str, call: Callable[[httpx.Client], object], *, clients: int,
                 duration: float) -> Concurrent:  # fmt: skip
    """Each of `clients` threads warms up its connection, then calls `call` in a loop until the common deadline."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    window = [0.0, 0.0]  # start, deadline: set once every connection is warm, before any thread goes on

    def start() -> None:
        window[0] = time.perf_counter()
        window[1] = window[0] + duration

    barrier = threading.Barrier(clients + 1, action=start)

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            try:
                for _ in range(3):
                    call(client)
            except BaseException as exc:  # reported after the run; the barrier must still be reached
                errors.append(exc)
            barrier.wait()
            mine = latencies[index]
            while not errors and (started := time.perf_counter()) < window[1]:
                try:
                    call(client)
                except BaseException as exc:
                    errors.append(exc)
                    return
                mine.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window[0]  # the last requests started before the deadline end after it
    if errors:
        raise StepFailed(f"{label}: {errors[0]}") from errors[0]
    return Concurrent(label, clients, elapsed, sorted(ms for mine in latencies for ms in mine))


# --- report ----------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything measured, for the report."""

    sequential: list[Figures]
    scrypt: Figures
    concurrent: list[Concurrent]
    agent_token: str
    user_token: str
    refresh_token: str
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def report(run: Run) -> None:
    """Print the tables: sequential on one connection, the scrypt share, concurrent, then sizes."""
    base = run.sequential[0]
    print(f"\nauthz_service identity provider: {WORKERS} workers, SQLite identity store; one keep-alive client, "
          f"{os.cpu_count()} cores shared by all")  # fmt: skip
    print(f"{'request':<36} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8} "
          f"{'p50 x':>7} {'p99 x':>7}")  # fmt: skip
    for f in run.sequential:
        print(f"{f.label:<36} {len(f.samples):>5} {f.p50:>8.2f} {f.p99:>8.2f} {f.mean:>8.2f} {f.per_second:>8,.0f} "
              f"{f.p50 / base.p50:>7.1f} {f.p99 / base.p99:>7.1f}")  # fmt: skip
    by_label = {f.label: f for f in run.sequential}
    token, login, fixed, s = by_label[_TOKEN], by_label[_LOGIN], by_label[_NO_CREDENTIALS], run.scrypt
    print(f"scrypt n=2^{_SCRYPT['n'].bit_length() - 1} r={_SCRYPT['r']} p={_SCRYPT['p']} in-process, interleaved "
          f"with the tokens ({len(s.samples)} runs): p50 {s.p50:.2f} ms, p99 {s.p99:.2f} ms")  # fmt: skip
    print(f"  = {s.p50 / token.p50:.0%} of a client_credentials token and {s.p50 / login.p50:.0%} of a login (p50); "
          f"the rest of a token: {token.p50 - s.p50:.2f} ms, of which {fixed.p50:.2f} ms the endpoint's floor "
          "(no credentials)")  # fmt: skip
    cores = min(WORKERS, os.cpu_count() or 1)
    print(f"\n{run.concurrent[0].clients} concurrent clients (threads), each its own keep-alive connection")
    print(f"{'request':<36} {'done':>6} {'s':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s x':>8}")
    floor = run.concurrent[0]
    for c in run.concurrent:
        print(f"{c.label:<36} {len(c.latencies):>6} {c.seconds:>5.1f} {c.per_second:>8,.0f} "
              f"{percentile(c.latencies, 50):>8.2f} {percentile(c.latencies, 99):>8.2f} "
              f"{c.per_second / floor.per_second:>8.3f}")  # fmt: skip
    print(f"scrypt alone on {cores} cores would allow {cores * 1000 / s.p50:,.0f} tokens/s")
    print(f"\naccess token: {len(run.agent_token):,} bytes (client_credentials), {len(run.user_token):,} bytes "
          f"(code flow, alice); refresh token: {len(run.refresh_token)} bytes")  # fmt: skip
    files = ", ".join(f"{name} {size / 1024:,.0f} KB" for name, size in run.files.items())
    rows = ", ".join(f"{table} {count:,}" for table, count in run.rows.items())
    print(f"identity store after the run (service stopped): {files}; rows: {rows}")


def _database_files(database: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in sorted(database.parent.glob(database.name + "*"))}


def _database_rows(database: Path) -> dict[str, int]:
    """Rows per table: nothing deletes used codes or rotated refresh tokens, so they are the store's growth."""
    connection = sqlite3.connect(database)
    try:
        return {
            table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("authorization_codes", "refresh_tokens", "revoked_access_tokens", "oauth_clients")
        }
    finally:
        connection.close()


def measure(server: Server, *, requests: int, tokens: int, flow_count: int, duration: float,
            clients: int) -> Run:  # fmt: skip
    """Every measurement against the running server, the baseline first."""
    sequential: list[Figures] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def get(path: str) -> Callable[[], object]:
            return lambda: _expect(client.get(path), 200, path)

        def no_credentials() -> object:
            data = {"grant_type": "client_credentials", "resource": RESOURCE}
            return _expect(client.post("/token", data=data), 401, "no credentials")

        print(f"sequential: {requests} x each cheap request, {tokens} tokens, {flow_count} code flows ...", flush=True)
        sequential.append(timed("GET /healthz (baseline)", get("/healthz"), requests=requests))
        sequential.append(timed("GET /.well-known/oauth-authz-server", get("/.well-known/oauth-authorization-server"),
                                requests=requests))  # fmt: skip
        sequential.append(timed("GET /.well-known/jwks.json", get("/.well-known/jwks.json"), requests=requests))
        sequential.append(timed(_NO_CREDENTIALS, no_credentials, requests=requests))
        token, scrypt = client_credentials_with_scrypt(client, requests=tokens)
        sequential.append(token)
        agent_token = client_credentials(client)
        flow = flows(client, count=flow_count)
        sequential.extend(flow.figures())
    print(f"concurrent: {clients} clients x {duration:g} s, /healthz then client_credentials ...", flush=True)

    def healthz(c: httpx.Client) -> object:
        return _expect(c.get("/healthz"), 200, "healthz")

    concurrent = [
        concurrently("GET /healthz (baseline)", server.url, healthz, clients=clients, duration=duration),
        concurrently(_TOKEN, server.url, client_credentials, clients=clients, duration=duration),
    ]
    return Run(sequential, scrypt, concurrent, agent_token, flow.access_token, flow.refresh_token)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 when a step failed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.identity_bench",
        description="authz_service's OAuth 2.1 authorization server, timed against /healthz; prints figures.",
    )
    parser.add_argument("--requests", type=int, default=1500, help="timed requests per cheap endpoint")
    parser.add_argument("--tokens", type=int, default=600, help="timed client_credentials tokens")
    parser.add_argument("--flows", type=int, default=400, help="timed authorization-code flows")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per concurrent measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portcullis-identity-bench-") as tmp:
        try:
            with serve(Path(tmp)) as server:
                try:
                    run = measure(server, requests=args.requests, tokens=args.tokens, flow_count=args.flows,
                                  duration=args.duration, clients=args.clients)  # fmt: skip
                except (StepFailed, httpx.HTTPError):
                    _print_log_tail(server.log)
                    raise
        except (StepFailed, httpx.HTTPError, RuntimeError, TimeoutError) as exc:
            print(f"identity_bench: {exc}", file=sys.stderr)
            return 1
        run.files = _database_files(server.database)  # before sqlite3 opens it: that would fold the WAL in
        run.rows = _database_rows(server.database)
    report(run)
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
