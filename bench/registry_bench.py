"""The registry at catalog scale: 10,000 approved servers of 10 tools, served for real, on SQLite and PostgreSQL.

    python -m bench.registry_bench [--servers 10000] [--tools 10] [--requests 300] [--backend both]

Per backend: a fresh database is migrated and bulk-seeded with rows shaped as `service.publish` and an approval
leave them; the catalog snapshot is built in-process; then authz_service and the registry run as processes
(127.0.0.1, free ports, stopped by PID) and one keep-alive client times the read paths against `/healthz`,
the same server's HTTP floor. Figures are printed, never asserted; the target is reported as met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, insert, literal, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, col

from authz_service.keys import KeyRing
from bench.decision_bench import percentile
from portcullis.processes import running
from portcullis.testing import free_port, wait_http
from portcullis_contracts.governance import GOVERNANCE_KEY
from registry.db import make_engine, migrate
from registry.models import ServerVersion, utcnow
from registry.service import VISIBLE, _encode_cursor
from registry.settings import DEFAULT_REVIEWS
from registry.snapshot import build_snapshot
from registry.validation import validate_server_json

__all__ = ["Figures", "main", "measure", "seed"]

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("REGISTRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_P99_MS = 50.0
SLOW_REQUESTS = 100  # the full catalog body is megabytes: fewer samples
SNAPSHOT_RUNS = 5
BATCH = 2_000  # servers per seeding transaction
CLIENT = "claude-desktop"
NO_MATCH = "no-such-server-anywhere"
BUSINESS_GROUPS = ("ads", "finance", "sales", "support", "platform", "hr", "legal", "data")
TOPICS = ("billing", "campaign", "inventory", "payroll", "forecast", "ledger", "ticket", "contract", "pipeline",
          "audience", "invoice", "shipment", "catalog", "incident", "metrics", "onboarding", "pricing", "recruiting",
          "survey", "warehouse")  # fmt: skip
KINDS = ("reports", "insights", "search", "admin", "sync")  # each (topic, kind) title is 1% of the servers
VERBS = ("get", "list", "search", "export", "summarize", "compare", "explain", "create", "update", "delete")
SENSITIVITY = (("public", 15), ("internal", 50), ("confidential", 25), ("restricted", 10))  # percent
OTHER_CLIENTS = ("vscode", "internal-agent", "registry-ui", "cursor")


class DatabaseUnavailable(RuntimeError):
    """The PostgreSQL server cannot give the benchmark a database."""


# --- seeding ---------------------------------------------------------------------------------------------------


def server_document(i: int, tools: int, rng: random.Random) -> dict[str, Any]:
    """The i-th server.json, varied by business group, team, sensitivity and client (deterministic per seed)."""
    topic, kind = TOPICS[i % len(TOPICS)], KINDS[(i // len(TOPICS)) % len(KINDS)]
    group = rng.choice(BUSINESS_GROUPS)
    team = f"{group}-{rng.choice(('eng', 'data', 'ops'))}"
    sensitivity = rng.choices([s for s, _ in SENSITIVITY], weights=[w for _, w in SENSITIVITY])[0]
    clients = rng.sample(OTHER_CLIENTS, rng.randint(0, 3))
    if rng.random() < 0.9:
        clients.insert(0, CLIENT)
    route = f"{topic}-{kind}-{i:05d}"
    tool_list: list[dict[str, Any]] = []
    for j in range(tools):
        verb = VERBS[j % len(VERBS)]
        tool: dict[str, Any] = {"name": f"{verb}_{topic}" + (f"_{j // len(VERBS)}" if j >= len(VERBS) else "")}
        tool["description"] = f"{verb.capitalize()} {topic} records of the {group} organisation."
        if verb in ("create", "update", "delete"):
            tool["read_only"] = False
        if j % 5 == 1 and sensitivity in ("confidential", "restricted"):
            tool.update(sensitivity="confidential", business_groups=[group])
        tool_list.append(tool)
    return {
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
        "name": f"com.portcullis.{group}/{route}",
        "title": f"{topic.capitalize()} {kind}",
        "description": f"{kind.capitalize()} over {topic} data for the {group} organisation.",
        "version": f"1.{i % 7}.{i % 3}",
        "remotes": [{"type": "streamable-http", "url": f"https://gateway.portcullis.internal/servers/{route}/mcp"}],
        "_meta": {
            GOVERNANCE_KEY: {
                "owner_team": team,
                "support_channel": f"#{team}",
                "sensitivity": sensitivity,
                "business_group": group,
                "allowed_clients": clients,
                "upstream": f"{route}.{group}.svc.internal:8080",
                "tools": tool_list,
            }
        },
    }


def _rows(document: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `servers` and `server_versions` rows `service.publish` writes, then approved a day later."""
    governance = document["_meta"][GOVERNANCE_KEY]
    name, title, description = document["name"], document["title"], document["description"]
    route = name.rpartition("/")[2]
    published = utcnow() - timedelta(minutes=rng.randrange(90 * 24 * 60))
    approved = published + timedelta(days=1)
    server = {"name": name, "namespace": name.partition("/")[0], "route": route, "created_at": published}
    version = {
        "server_name": name,
        "version": document["version"],
        "document": document,
        "title": title[:100],
        "description": description[:100],
        "search_text": " ".join([name, title, description, route]).lower(),
        "owner_team": governance["owner_team"],
        "business_group": governance["business_group"],
        "sensitivity": governance["sensitivity"],
        "lifecycle": "approved",
        "status_message": "",
        "is_latest": True,
        "published_by": f"{governance['owner_team']}-dev{rng.randint(1, 4)}",
        "published_at": published,
        "updated_at": approved,
        "status_changed_at": approved,
    }
    return server, version


def _history(connection: Any) -> None:
    """Every version's status events (published, approved) and its three review sign-offs, set-based."""
    tables = SQLModel.metadata.tables
    versions, events, reviews = tables["server_versions"], tables["status_events"], tables["reviews"]
    columns = ["version_id", "from_status", "to_status", "actor", "reason", "at"]
    published = select(versions.c.id, literal(""), literal("pending_review"), versions.c.published_by,
                       literal("published ") + versions.c.version, versions.c.published_at)  # fmt: skip
    passed = f"every required review passed ({', '.join(DEFAULT_REVIEWS)})"
    approved = select(versions.c.id, literal("pending_review"), literal("approved"), literal("genai-reviewer"),
                      literal(passed), versions.c.status_changed_at)  # fmt: skip
    connection.execute(insert(events).from_select(columns, published))
    connection.execute(insert(events).from_select(columns, approved))
    for review, group in DEFAULT_REVIEWS.items():
        signed = select(versions.c.id, literal(review), literal("approve"), literal(f"{review}-reviewer"),
                        literal(group), literal("looks good"), versions.c.status_changed_at)  # fmt: skip
        review_columns = ["version_id", "review", "decision", "reviewer", "reviewer_group", "reason", "at"]
        connection.execute(insert(reviews).from_select(review_columns, signed))


def seed(engine: Engine, *, servers: int, tools: int) -> float:
    """Migrate, then bulk-insert `servers` approved servers in a few transactions; returns the seconds taken."""
    started = time.perf_counter()
    migrate(engine)
    rng = random.Random(20261124)
    documents = [server_document(i, tools, rng) for i in range(servers)]
    for document in documents[:: max(1, servers // 100)]:
        validate_server_json(document)  # a sample through the real validation: the shape is the published one
    tables = SQLModel.metadata.tables
    for start in range(0, servers, BATCH):
        rows = [_rows(document, rng) for document in documents[start : start + BATCH]]
        with engine.begin() as connection:
            connection.execute(insert(tables["servers"]), [server for server, _ in rows])
            connection.execute(insert(tables["server_versions"]), [version for _, version in rows])
    with engine.begin() as connection:
        _history(connection)
        # publish bumps the revision once, the approval once more
        state = tables["catalog_state"]
        connection.execute(update(state).where(state.c.id == 1).values(counter=state.c.counter + 2 * servers))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))  # what autovacuum does within a minute of a bulk load
    return time.perf_counter() - started


@contextmanager
def postgres_database(admin_url: str = POSTGRES_URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on `admin_url`'s server; dropped afterwards.

    Raises:
        DatabaseUnavailable: the server is unreachable or refuses to create a database.
    """
    admin = create_engine(make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    name = f"portcullis_bench_{uuid.uuid4().hex[:12]}"
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL at {admin_url} unavailable ({type(exc).__name__})") from None
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- serving and measuring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One request's latency over its samples, in milliseconds."""

    label: str
    p50: float
    p99: float
    mean: float
    items: int | None
    kilobytes: float
    samples: int
    targeted: bool  # a page or a search: held to TARGET_P99_MS


@dataclass
class Stack:
    registry_url: str
    authz_url: str
    catalog_secret: str
    key_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@contextmanager
def serve(database_url: str, workdir: Path) -> Iterator[Stack]:
    """authz_service (one worker, catalog from the registry) and the registry, both ready."""
    authz_port, grpc_port, registry_port = free_port(), free_port(), free_port()
    stack = Stack(
        registry_url=f"http://127.0.0.1:{registry_port}",
        authz_url=f"http://127.0.0.1:{authz_port}",
        catalog_secret=secrets.token_urlsafe(24),
        key_dir=workdir / "keys",
    )
    authzen_secret = secrets.token_urlsafe(24)
    KeyRing.load_or_create(stack.key_dir, activation_seconds=0)  # before authz_service starts: it loads this ring
    authz_env = {
        **os.environ,
        "AUTHZ_HTTP_PORT": str(authz_port),
        "AUTHZ_GRPC_PORT": str(grpc_port),
        "AUTHZ_WORKERS": "1",
        "AUTHZ_POLICY_DIR": str(ROOT / "policies"),
        "AUTHZ_WATCH": "false",  # nothing edits the policies during the run
        "AUTHZ_DECISION_LOG": str(workdir / "decisions.jsonl"),
        "AUTHZ_KEY_DIR": str(stack.key_dir),
        "AUTHZ_ISSUER": stack.authz_url,
        "AUTHZ_SERVICE_CREDENTIALS": json.dumps({"registry": authzen_secret}),
        "AUTHZ_REGISTRY_URL": stack.registry_url,
        "AUTHZ_REGISTRY_CREDENTIAL": stack.catalog_secret,
    }
    registry_env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(registry_port),
        "REGISTRY_PUBLIC_URL": stack.registry_url,
        "REGISTRY_AUTHZ_URL": stack.authz_url,
        "REGISTRY_AUTHZ_CREDENTIAL": authzen_secret,
        "REGISTRY_SERVICE_CREDENTIALS": json.dumps({"authz": stack.catalog_secret}),
        "REGISTRY_ISSUER": stack.authz_url,
        "REGISTRY_JWKS_URL": f"{stack.authz_url}/.well-known/jwks.json",
        "REGISTRY_DECISION_LOG": str(workdir / "decisions.jsonl"),
    }
    with ExitStack() as processes:
        authz = processes.enter_context(running([sys.executable, "-m", "authz_service"], workdir / "authz.log",
                                                 env=authz_env, cwd=ROOT))  # fmt: skip
        wait_http(f"{stack.authz_url}/healthz", process=authz)
        registry = processes.enter_context(running([sys.executable, "-m", "registry"], workdir / "registry.log",
                                                    env=registry_env, cwd=ROOT))  # fmt: skip
        wait_http(f"{stack.registry_url}/readyz", timeout=60, process=registry)
        # Ready once its first poll of the registry's snapshot (every server) is loaded.
        wait_http(f"{stack.authz_url}/readyz", timeout=180, process=authz)
        stack.processes.update(authz=authz, registry=registry)
        yield stack


def _items(response: httpx.Response) -> int | None:
    if response.status_code != 200:
        return None
    body = response.json()
    if "metadata" in body:
        return int(body["metadata"]["count"])
    return len(body["servers"]) if "servers" in body else None


def measure(
    client: httpx.Client,
    label: str,
    path: str,
    *,
    requests: int,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    status: int = 200,
    targeted: bool = True,
) -> Figures:
    """Time `requests` GETs of `path` after a warm-up, checking every status.

    Raises:
        RuntimeError: a response had another status than `status`.
    """
    clock = time.perf_counter_ns
    samples: list[float] = []
    last: httpx.Response | None = None
    for i in range(max(10, requests // 10) + requests):
        started = clock()
        response = client.get(path, params=params, headers=headers)
        elapsed = clock() - started
        if response.status_code != status:
            raise RuntimeError(f"{label}: {path} answered {response.status_code}: {response.text[:300]}")
        if i >= max(10, requests // 10):
            samples.append(elapsed / 1e6)
        last = response
    assert last is not None
    samples.sort()
    return Figures(label, percentile(samples, 50), percentile(samples, 99), statistics.fmean(samples), _items(last),
                   len(last.content) / 1024, len(samples), targeted)  # fmt: skip


@dataclass
class BackendResult:
    backend: str
    seconds_to_seed: float
    snapshot_ms: list[float]
    figures: list[Figures]
    first_call_ms: float = 0.0
    new_caller_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def _deep_cursor(engine: Engine, index: int) -> str:
    statement = (
        select(col(ServerVersion.server_name), col(ServerVersion.id))
        .where(col(ServerVersion.lifecycle).in_(VISIBLE))
        .order_by(col(ServerVersion.server_name), col(ServerVersion.id))
        .offset(index)
        .limit(1)
    )
    with Session(engine) as session:
        name, row_id = session.execute(statement).one()
    return _encode_cursor(name, row_id)


def _matching(engine: Engine, term: str) -> int:
    with Session(engine) as session:
        statement = select(func.count()).where(col(ServerVersion.search_text).contains(term))
        return int(session.execute(statement).scalar_one())


@dataclass(frozen=True)
class Prepared:
    """What the in-process phase learned about the seeded database."""

    seconds_to_seed: float
    snapshot_ms: list[float]
    search_term: str
    deep_index: int
    deep_cursor: str
    note: str


def prepare(database_url: str, *, servers: int, tools: int) -> Prepared:
    """Seed, time the snapshot build in-process, and pick the search term and the deep cursor."""
    engine = make_engine(database_url)
    try:
        seconds = seed(engine, servers=servers, tools=tools)
        snapshot_ms = []
        for _ in range(SNAPSHOT_RUNS):
            with Session(engine) as session:
                started = time.perf_counter()
                build_snapshot(session)
                snapshot_ms.append((time.perf_counter() - started) * 1000)
        term = f"{TOPICS[5]} {KINDS[0]}"
        note = (f"search {term!r} matches {_matching(engine, term):,} servers; "
                f"{NO_MATCH!r} matches {_matching(engine, NO_MATCH)} (a full scan)")  # fmt: skip
        deep = int(servers * 0.9)
        return Prepared(seconds, snapshot_ms, term, deep, _deep_cursor(engine, deep - 1), note)
    finally:
        engine.dispose()


def measure_served(stack: Stack, prepared: Prepared, result: BackendResult, *, requests: int) -> None:
    """Every read path through the running registry, into `result`."""
    key = KeyRing(stack.key_dir).current()

    def bearer(user: str) -> dict[str, str]:
        claims = {"email": f"{user}@example.com", "groups": ["eng", "ads-eng"], "business_groups": ["ads"]}
        token = key.mint(issuer=stack.authz_url, subject=user, audience=stack.registry_url, client_id=CLIENT,
                         claims=claims)  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    def timed_once(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
        started = time.perf_counter()
        client.get(path, headers=headers).raise_for_status()
        return (time.perf_counter() - started) * 1000

    me, alice, listing = "/v0.1/x/portcullis/me/servers", bearer("alice"), "/v0/servers"
    service, catalog = {"Authorization": f"Bearer {stack.catalog_secret}"}, "/v0.1/x/portcullis/catalog"
    with httpx.Client(base_url=stack.registry_url, timeout=60) as client:
        result.first_call_ms = timed_once(client, me, alice)  # before anything else asks authz_service
        figures = result.figures
        figures.append(measure(client, "GET /healthz (floor)", "/healthz", requests=requests, targeted=False))
        figures.append(measure(client, "GET /v0/servers (first page)", listing, requests=requests))
        figures.append(measure(client, "  ?search= 1% match", listing, requests=requests,
                               params={"search": prepared.search_term}))  # fmt: skip
        figures.append(measure(client, "  ?search= no match", listing, requests=requests,
                               params={"search": NO_MATCH}))  # fmt: skip
        figures.append(measure(client, f"  ?cursor= item {prepared.deep_index:,}", listing, requests=requests,
                               params={"cursor": prepared.deep_cursor}))  # fmt: skip
        figures.append(measure(client, "  ?version=latest&limit=100", listing, requests=requests,
                               params={"version": "latest", "limit": "100"}))  # fmt: skip
        figures.append(measure(client, "GET /me/servers (warm)", me, requests=requests, headers=alice))
        result.new_caller_ms = timed_once(client, me, bearer("bob"))
        etag = client.get(catalog, headers=service).headers["etag"]
        figures.append(measure(client, "GET /catalog If-None-Match (304)", catalog, requests=requests,
                               headers={**service, "If-None-Match": etag}, status=304, targeted=False))  # fmt: skip
        figures.append(measure(client, "GET /catalog (full body)", catalog, requests=min(requests, SLOW_REQUESTS),
                               headers=service, targeted=False))  # fmt: skip


def run_backend(
    backend: str, database_url: str, workdir: Path, *, servers: int, tools: int, requests: int
) -> BackendResult:
    """Seed and time in-process, then serve for real and measure."""
    print(f"[{backend}] seeding {servers:,} servers x {tools} tools, building the snapshot in-process ...", flush=True)
    prepared = prepare(database_url, servers=servers, tools=tools)
    result = BackendResult(backend, prepared.seconds_to_seed, prepared.snapshot_ms, [], notes=[prepared.note])
    print(f"[{backend}] seeded in {prepared.seconds_to_seed:.1f} s; serving and measuring {requests} requests "
          "each ...", flush=True)  # fmt: skip
    with serve(database_url, workdir) as stack:
        measure_served(stack, prepared, result, requests=requests)
    return result


# --- report ----------------------------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(result: BackendResult, *, servers: int, tools: int) -> bool:
    """Print one backend's table; True when every page and search met the target."""
    floor = result.figures[0]
    print(f"\nRegistry on {result.backend}: {servers:,} approved servers x {tools} tools, seeded in "
          f"{result.seconds_to_seed:.1f} s; one keep-alive client, {os.cpu_count()} cores shared by all")  # fmt: skip
    print(f"{'request':<34} {'items':>6} {'KB':>8} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
          f"{'p50 x':>7} {'p99 x':>7}")  # fmt: skip
    for f in result.figures:
        items = "-" if f.items is None else f"{f.items:,}"
        print(f"{f.label:<34} {items:>6} {f.kilobytes:>8,.1f} {f.samples:>4} {f.p50:>8.2f} {f.p99:>8.2f} "
              f"{f.mean:>8.2f} {f.p50 / floor.p50:>7.1f} {f.p99 / floor.p99:>7.1f}")  # fmt: skip
    print(f"/me/servers first call after start (cold decisions, JWKS fetch): {result.first_call_ms:.1f} ms; "
          f"a new caller's first call: {result.new_caller_ms:.1f} ms")  # fmt: skip
    ordered = sorted(result.snapshot_ms)
    print(f"snapshot build in-process ({len(ordered)} runs): min {ordered[0]:.0f} ms, "
          f"median {statistics.median(ordered):.0f} ms")  # fmt: skip
    for note in result.notes:
        print(note)
    targeted = [f for f in result.figures if f.targeted]
    worst = max(targeted, key=lambda f: f.p99)
    met = worst.p99 < TARGET_P99_MS
    print(f"target p99 < {TARGET_P99_MS:g} ms for a page or a search: {_verdict(met)} "
          f"(worst: {worst.label.strip()} {worst.p99:.1f} ms)")  # fmt: skip
    return met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark per backend and print its figures; 1 when a backend could not run."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.registry_bench",
        description="The registry's read paths at catalog scale, on SQLite and PostgreSQL; prints figures.",
    )
    parser.add_argument("--servers", type=int, default=10_000, help="approved servers to seed")
    parser.add_argument("--tools", type=int, default=10, help="tools per server")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per measurement")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    options = {"servers": args.servers, "tools": args.tools, "requests": args.requests}
    results: list[BackendResult] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="portcullis-registry-bench-") as tmp:
        for backend in backends:
            workdir = Path(tmp) / backend
            workdir.mkdir()
            if backend == "sqlite":
                results.append(run_backend(backend, f"sqlite:///{workdir / 'registry.db'}", workdir, **options))
                continue
            try:
                with postgres_database() as url:
                    results.append(run_backend(backend, url, workdir, **options))
            except DatabaseUnavailable as exc:
                print(f"{exc}: skipped", file=sys.stderr)
                failed = True
    verdicts = [(r.backend, report(r, servers=args.servers, tools=args.tools)) for r in results]
    summary = ", ".join(f"{_verdict(met)} on {backend}" for backend, met in verdicts)
    print(f"\nverdict, p99 under {TARGET_P99_MS:g} ms for a page or a search: {summary or 'nothing measured'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
