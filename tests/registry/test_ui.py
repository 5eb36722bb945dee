"""The registry's web UI in-process: pages, the development login, CSRF, and review sign-offs through the form.

Decisions come from the real authorization service (real Polar policies, real AuthZEN adapter) served in-process.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookies import Morsel, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from portcullis.testing import free_port
from registry.app import create_app
from registry.authz import AuthzClient
from registry.identity import RegistryTokenVerifier
from registry.settings import RegistrySettings
from registry.ui import SESSION_COOKIE, SESSION_MAX_AGE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SERVICE_SECRET = "registry-ui-test-credential"
DEMO = "com.portcullis/demo"
FINANCE = "com.portcullis.finance/finance-reports"
FINANCE_PAGE = f"/ui/servers/{FINANCE}?version=0.9.0"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class Ui:
    client: TestClient
    settings: RegistrySettings
    seed: Path

    def csrf(self, path: str = "/") -> str:
        match = _CSRF.search(self.client.get(path).text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def sign_in(self, user: str) -> httpx2.Response:  # TestClient is built on httpx2
        token = self.csrf("/ui/login")
        return self.client.post("/ui/login", data={"user": user, "csrf_token": token, "next": "/ui/reviews"})

    def sign_off(self, review: str, decision: str = "approve", **fields: str) -> httpx2.Response:
        form = {"csrf_token": self.csrf("/ui/reviews"), "server": FINANCE, "version": "0.9.0", "review": review,
                "decision": decision, "reason": f"{review} looked fine", **fields}  # fmt: skip
        return self.client.post("/ui/reviews", data=form, follow_redirects=True)


@pytest.fixture
def authz(authz_client: AuthzClient) -> AuthzClient:
    """The real policy engine in-process (tests/registry/conftest.py)."""
    return authz_client


def seed_dir(tmp_path: Path, **demo_governance: Any) -> Path:
    """config/servers copied, with the demo server's governance overridden (its upstream, for the health probe)."""
    seed = tmp_path / "seed"
    shutil.copytree(ROOT / "config" / "servers", seed)
    demo = json.loads((seed / "demo.json").read_text())
    demo["_meta"]["dev.portcullis/governance"].update(demo_governance)
    (seed / "demo.json").write_text(json.dumps(demo))
    finance = json.loads((seed / "finance-reports.json").read_text())
    finance["_meta"]["dev.portcullis/governance"]["upstream"] = f"127.0.0.1:{free_port()}"  # nothing listens
    (seed / "finance-reports.json").write_text(json.dumps(finance))
    return seed


def build_ui(tmp_path: Path, authz: AuthzClient, *, seed: Path | None = None, **overrides: Any) -> Ui:
    seed = seed or seed_dir(tmp_path)
    options: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'registry.db'}",
        "seed_dir": seed,
        "dev_login": True,
        "directory_file": ROOT / "config" / "directory.yaml",
        "decision_log": tmp_path / "decisions.jsonl",
        "gateway_url": "https://gateway.test",
        **overrides,
    }
    settings = RegistrySettings(**options)
    # The UI signs people in with its session cookie; bearer tokens (and so this verifier) are the API's.
    verifier = RegistryTokenVerifier(
        issuer="http://issuer.test", audience="http://registry.test", jwks_url="http://127.0.0.1:9"
    )
    app = create_app(settings, authz=authz, verifier=verifier)
    return Ui(TestClient(app), settings, seed)


@pytest.fixture
def ui(tmp_path: Path, authz: AuthzClient) -> Iterator[Ui]:
    built = build_ui(tmp_path, authz)
    yield built
    built.client.app.state.registry.engine.dispose()  # type: ignore[attr-defined]


@contextmanager
def health_server() -> Iterator[str]:
    """A stand-in upstream whose `/healthz` answers 200; yields its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _decision(user: str, tool: str, result: str = "allow", *, layer: str = "edge", server: str = "demo") -> str:
    record = {
        "decision_id": "test", "time": datetime.now(UTC).isoformat(timespec="microseconds"), "layer": layer,
        "actor": {"id": user, "client": "vscode"}, "action": "call",
        "resource": {"type": "tool", "server": server, "name": tool}, "result": result, "reason": "test",
    }  # fmt: skip
    return json.dumps(record) + "\n"


# --- the catalog -------------------------------------------------------------------------------------------------


def test_catalog_lists_available_servers_with_their_status_and_sensitivity(ui: Ui) -> None:
    page = ui.client.get("/")
    assert page.status_code == 200
    assert "Portcullis <strong>registry</strong>" in page.text
    assert "Demo server" in page.text and "Finance reports" not in page.text  # pending: not available yet
    assert 'class="badge badge-approved"' in page.text and "chip-internal" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_catalog_filters_by_status_team_sensitivity_business_group_and_search(ui: Ui) -> None:
    def titles(**params: str) -> set[str]:
        text = ui.client.get("/", params=params).text
        return {title for title in ("Demo server", "Finance reports") if f">{title}</a>" in text}

    assert titles(status="pending_review") == {"Finance reports"}
    assert titles(status="all") == {"Demo server", "Finance reports"}
    assert titles(status="all", team="finance-eng") == {"Finance reports"}
    assert titles(status="all", sensitivity="internal") == {"Demo server"}
    assert titles(status="all", group="finance") == {"Finance reports"}
    assert titles(status="all", q="quarterly") == {"Finance reports"}
    assert titles(status="all", q="no-such-thing") == set()
    assert "No servers match these filters" in ui.client.get("/", params={"q": "no-such-thing"}).text


def test_catalog_pages_with_a_next_page_cursor(tmp_path: Path, authz: AuthzClient) -> None:
    ui = build_ui(tmp_path, authz, page_limit_default=1)
    first = ui.client.get("/", params={"status": "all"}).text  # in name order: com.portcullis.finance/... first
    assert ">Finance reports</a>" in first and ">Demo server</a>" not in first
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url is not None and "status=all" in next_url.group(1)
    second = ui.client.get(next_url.group(1).replace("&amp;", "&")).text
    assert ">Demo server</a>" in second and ">Finance reports</a>" not in second
    assert 'rel="next"' not in second and "First page" in second


def test_a_bad_cursor_is_a_message_on_the_page(ui: Ui) -> None:
    page = ui.client.get("/", params={"cursor": "not-a-cursor"})
    assert page.status_code == 400
    assert "invalid cursor" in page.text and "Traceback" not in page.text


def test_user_data_is_escaped(tmp_path: Path, authz: AuthzClient) -> None:
    seed = seed_dir(tmp_path, support_channel='<script>alert("x")</script>')
    document = json.loads((seed / "demo.json").read_text())
    document["description"] = "<img src=x onerror=alert(1)>"
    (seed / "demo.json").write_text(json.dumps(document))
    ui = build_ui(tmp_path, authz, seed=seed)
    for path in ("/", f"/ui/servers/{DEMO}"):
        text = ui.client.get(path).text
        assert "<img src=x" not in text and "<script>alert" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in ui.client.get("/").text


# --- a server's page ---------------------------------------------------------------------------------------------


def test_server_page_shows_tools_governance_reviews_and_how_to_connect(ui: Ui) -> None:
    page = ui.client.get(f"/ui/servers/{DEMO}")
    assert page.status_code == 200
    text = page.text
    for tool in ("whoami", "echo", "get_revenue_metrics"):
        assert f'<div class="mono strong">{tool}</div>' in text
    assert "Read-only" in text and "Members of" in text and ">ads</span>" in text  # who may call get_revenue_metrics
    assert 'data-testid="owner-team">platform<' in text and "#mcp-platform" in text
    assert "security-reviewers" in text and "Approved client applications" in text and "VS Code" in text
    url = "https://gateway.test/servers/demo/mcp"
    assert f'data-testid="gateway-url">{url}<' in text
    assert f"claude mcp add --transport http demo {url}" in text
    vscode = {"servers": {"demo": {"type": "http", "url": url}}}
    assert json.dumps(vscode, indent=2).replace('"', "&#34;") in text
    assert "&#34;mcpServers&#34;" in text  # Cursor's mcp.json
    assert 'data-copy="snippet-vscode"' in text
    assert "published 1.0.0" in text and "seeded by the local platform" in text  # the status history


def test_pending_server_shows_each_required_review_as_waiting(ui: Ui) -> None:
    text = ui.client.get(FINANCE_PAGE).text
    assert 'class="badge badge-pending_review"' in text
    assert text.count("Waiting for a member of") == 3
    assert "Not routed yet" in text


def test_server_page_probes_the_upstream_health_of_approved_servers_only(tmp_path: Path, authz: AuthzClient) -> None:
    with health_server() as upstream:
        ui = build_ui(tmp_path, authz, seed=seed_dir(tmp_path, upstream=upstream))
        healthy = ui.client.get(f"/ui/servers/{DEMO}").text
    assert re.search(r'data-testid="health">\s*<span class="dot" aria-hidden="true"></span>\s*Healthy', healthy)
    unreachable = ui.client.get(f"/ui/servers/{DEMO}").text  # the upstream is gone now
    assert re.search(r'data-testid="health">\s*<span class="dot" aria-hidden="true"></span>\s*Unreachable', unreachable)
    pending = ui.client.get(FINANCE_PAGE).text  # a pending server's declared upstream is not a probe target
    assert re.search(r'data-testid="health">\s*<span class="dot" aria-hidden="true"></span>\s*Not checked', pending)


def test_server_page_counts_tool_calls_from_the_decision_log(ui: Ui) -> None:
    lines = [_decision("alice", "echo"), _decision("bob", "echo"), _decision("alice", "echo"),
             _decision("bob", "get_revenue_metrics", "deny"), _decision("alice", "echo", layer="server"),
             _decision("carol", "quarterly_close", server="finance-reports")]  # fmt: skip
    ui.settings.decision_log.write_text("".join(lines))
    text = ui.client.get(f"/ui/servers/{DEMO}").text
    assert 'data-testid="usage-calls">4<' in text
    echo = re.search(r'<td class="mono">echo</td>\s*<td class="num">(\d+)</td><td class="num">(\d+)</td>', text)
    assert echo is not None and echo.groups() == ("3", "2")
    with ui.settings.decision_log.open("a") as log:
        log.write(_decision("carol", "echo"))
    assert 'data-testid="usage-calls">5<' in ui.client.get(f"/ui/servers/{DEMO}").text


def test_unknown_server_is_a_not_found_page(ui: Ui) -> None:
    for path in ("/ui/servers/com.portcullis/nope", f"/ui/servers/{DEMO}?version=9.9.9", "/ui/servers/no-slash"):
        page = ui.client.get(path)
        assert page.status_code == 404 and "Server not found" in page.text


# --- sign-in and sessions ----------------------------------------------------------------------------------------


def test_development_login_lists_directory_users_and_signs_in(ui: Ui) -> None:
    page = ui.client.get("/ui/login")
    assert page.status_code == 200 and "Dana Diaz" in page.text and "security-reviewers" in page.text
    response = ui.sign_in("dana")
    assert response.status_code == 200 and str(response.url).endswith("/ui/reviews")
    assert 'data-testid="signed-in-user">Dana Diaz<' in response.text
    cookie = _session_cookie(response.history[0].headers["set-cookie"])
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax" and cookie["path"] == "/"
    assert cookie["max-age"] == str(SESSION_MAX_AGE_SECONDS)
    assert not cookie["secure"]  # served over http here


def test_without_dev_login_nobody_can_sign_in_and_the_catalog_still_works(tmp_path: Path, authz: AuthzClient) -> None:
    ui = build_ui(tmp_path, authz, dev_login=False)
    page = ui.client.get("/ui/login")
    assert page.status_code == 404 and "Sign-in is not configured" in page.text
    token = ui.csrf("/")
    refused = ui.client.post("/ui/login", data={"user": "frank", "csrf_token": token})
    assert refused.status_code == 404
    catalog = ui.client.get("/")
    assert catalog.status_code == 200 and "Demo server" in catalog.text
    assert "signed-in-user" not in catalog.text and "Sign in</a>" not in catalog.text


def test_session_cookie_is_secure_when_the_registry_is_served_over_https(tmp_path: Path, authz: AuthzClient) -> None:
    ui = build_ui(tmp_path, authz, public_url="https://registry.example.com")
    assert _session_cookie(ui.client.get("/").headers["set-cookie"])["secure"]


def test_a_tampered_session_cookie_is_an_anonymous_session(ui: Ui) -> None:
    ui.sign_in("frank")
    value = ui.client.cookies[SESSION_COOKIE]
    ui.client.cookies.clear()
    ui.client.cookies.set(SESSION_COOKIE, value)
    assert "signed-in-user" in ui.client.get("/").text
    ui.client.cookies.clear()
    ui.client.cookies.set(SESSION_COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert "signed-in-user" not in ui.client.get("/").text


def _session_cookie(header: str) -> Morsel[str]:
    """The session cookie of a Set-Cookie header, its attributes read case-insensitively."""
    cookies: SimpleCookie = SimpleCookie()
    cookies.load(header)
    return cookies[SESSION_COOKIE]


def test_a_session_cookie_older_than_the_session_max_age_is_an_anonymous_session(
    tmp_path: Path, authz: AuthzClient
) -> None:
    secret = "a-session-secret-for-this-test"
    ui = build_ui(tmp_path, authz, session_secret=secret)
    ui.sign_in("frank")
    signed = ui.client.cookies[SESSION_COOKIE]
    payload = signed.rsplit(".", 2)[0].encode()

    class Signed(TimestampSigner):
        def __init__(self, age: int) -> None:
            super().__init__(secret)
            self.age = age

        def get_timestamp(self) -> int:
            return int(time.time()) - self.age

    for age, signed_in in ((SESSION_MAX_AGE_SECONDS - 60, True), (SESSION_MAX_AGE_SECONDS + 60, False)):
        ui.client.cookies.clear()
        ui.client.cookies.set(SESSION_COOKIE, Signed(age).sign(payload).decode())
        assert ("signed-in-user" in ui.client.get("/").text) is signed_in


def test_sign_in_redirects_only_to_paths_on_this_site(ui: Ui) -> None:
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example", "/\t/evil.example"):
        token = ui.csrf("/ui/login")
        response = ui.client.post(
            "/ui/login", data={"user": "alice", "csrf_token": token, "next": target}, follow_redirects=False
        )
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_sign_out_needs_the_csrf_token_and_ends_the_session(ui: Ui) -> None:
    ui.sign_in("alice")
    assert ui.client.post("/ui/logout", data={}).status_code == 403
    token = ui.csrf("/")
    page = ui.client.post("/ui/logout", data={"csrf_token": token}, follow_redirects=True)
    assert "signed-in-user" not in page.text and "Signed out." in page.text


# --- reviews -----------------------------------------------------------------------------------------------------


def test_post_without_the_csrf_token_is_refused_and_changes_nothing(ui: Ui) -> None:
    ui.sign_in("dana")
    form = {"server": FINANCE, "version": "0.9.0", "review": "security", "decision": "approve"}
    assert ui.client.post("/ui/reviews", data=form).status_code == 403
    assert ui.client.post("/ui/reviews", data={**form, "csrf_token": "forged"}).status_code == 403
    assert ui.client.post("/ui/login", data={"user": "frank"}).status_code == 403
    assert 'data-testid="signed-in-user">Dana Diaz<' in ui.client.get("/").text
    assert ui.client.get(FINANCE_PAGE).text.count("Waiting for a member of") == 3


def test_review_queue_offers_each_reviewer_only_their_groups_reviews(ui: Ui) -> None:
    anonymous = ui.client.get("/ui/reviews").text
    assert 'data-server="com.portcullis.finance/finance-reports"' in anonymous and "review-form" not in anonymous
    ui.sign_in("erin")
    text = ui.client.get("/ui/reviews").text
    assert 'data-testid="review-form-legal"' in text
    assert 'data-testid="review-form-security"' not in text and 'data-testid="review-form-genai"' not in text


def test_three_reviewers_approve_a_pending_server_through_the_form(ui: Ui) -> None:
    for user, review in (("dana", "security"), ("erin", "legal")):
        ui.sign_in(user)
        page = ui.sign_off(review)
        assert f"The {review} review of Finance reports 0.9.0 is approved." in page.text
        assert "pending_review" in ui.client.get(FINANCE_PAGE).text
    ui.sign_in("frank")
    page = ui.sign_off("genai")
    assert "Finance reports 0.9.0 is now approved" in page.text
    assert "Nothing waits for review" in page.text
    detail = ui.client.get(FINANCE_PAGE).text
    assert 'class="badge badge-approved" data-testid="lifecycle">Approved</span>' in detail
    assert "Passed by <span" in detail and ">dana</span>" in detail and ">frank</span>" in detail
    assert "genai looked fine" in detail
    assert ">Finance reports</a>" in ui.client.get("/").text  # now in the available catalog


def test_policy_refusal_is_shown_with_its_reason(ui: Ui) -> None:
    ui.sign_in("alice")  # not a member of security-reviewers: the form is not offered, but the policy decides
    page = ui.sign_off("security")
    assert page.status_code == 200
    assert "The policy refused this sign-off: you are not a member of security-reviewers" in page.text
    assert "(not_in_review_group)" in page.text
    assert ui.client.get(FINANCE_PAGE).text.count("Waiting for a member of") == 3


def test_signing_off_twice_and_unknown_reviews_are_messages(ui: Ui) -> None:
    ui.sign_in("dana")
    ui.sign_off("security")
    again = ui.sign_off("security")
    assert "already signed off by dana" in again.text and 'class="flash flash-error"' in again.text
    unknown = ui.sign_off("astrology")
    assert "Unknown review &#39;astrology&#39;" in unknown.text


def test_rejecting_a_review_rejects_the_version(ui: Ui) -> None:
    ui.sign_in("erin")
    page = ui.sign_off("legal", "reject", reason="personal data without a DPA")
    assert "Finance reports 0.9.0 is now rejected" in page.text
    detail = ui.client.get(FINANCE_PAGE).text
    assert 'class="badge badge-rejected" data-testid="lifecycle">Rejected' in detail
    assert "personal data without a DPA" in detail


def test_signing_off_unauthenticated_asks_to_sign_in(ui: Ui) -> None:
    response = ui.client.post(
        "/ui/reviews",
        data={"csrf_token": ui.csrf("/ui/reviews"), "server": FINANCE, "version": "0.9.0"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")


def test_authorization_service_down_is_a_message_and_nothing_is_written(tmp_path: Path) -> None:
    down = AuthzClient(httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=0.5), credential="x")
    ui = build_ui(tmp_path, down)
    ui.sign_in("dana")
    page = ui.sign_off("security")
    assert "The authorization service is unavailable; nothing was changed." in page.text
    assert ui.client.get(FINANCE_PAGE).text.count("Waiting for a member of") == 3
