"""The web UI in a real headless Chromium, against the registry and the authorization service over real HTTP.

Three reviewers sign in (development login) and approve the pending finance server through the review queue;
it becomes Approved. A screenshot of every step goes to `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from authz_service.http_app import create_app as create_authz_app
from authz_service.runtime import Runtime
from authz_service.settings import Settings as AuthzSettings
from portcullis.processes import wait_http
from portcullis.testing import free_port
from registry.app import create_app
from registry.settings import RegistrySettings

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("PORTCULLIS_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"the browser test needs Chromium at {CHROMIUM} here (CI installs Debian's chromium)")
if not CHROMIUM.exists():
    pytest.skip(f"the browser test needs Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
SERVICE_SECRET = "registry-browser-test-credential"
FINANCE = "com.portcullis.finance/finance-reports"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free local port, in a background thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", timeout=20)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    decisions = tmp_path / "decisions.jsonl"
    authz_settings = AuthzSettings(
        policy_dir=ROOT / "policies",
        catalog_file=ROOT / "config" / "catalog.yaml",
        decision_log=decisions,
        key_dir=tmp_path / "authz-keys",
        service_credentials={"registry": SecretStr(SERVICE_SECRET)},
        watch=False,
    )
    runtime = Runtime(authz_settings)
    try:
        with serve(create_authz_app(runtime)) as authz_url:
            settings = RegistrySettings(
                database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
                seed_dir=ROOT / "config" / "servers",
                dev_login=True,
                directory_file=ROOT / "config" / "directory.yaml",
                decision_log=decisions,
                authz_url=authz_url,
                authz_credential=SecretStr(SERVICE_SECRET),
                issuer=authz_url,
                jwks_url=f"{authz_url}/.well-known/jwks.json",
            )
            app = create_app(settings)
            with serve(app) as url:
                yield url
            app.state.registry.engine.dispose()
    finally:
        runtime.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
    ]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_as(page: Page, user: str, name: str) -> None:
    if page.get_by_test_id("signed-in-user").count():
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("Signed out.")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_test_id(f"login-{user}").click()
    expect(page.get_by_test_id("signed-in-user")).to_have_text(name)


def approve(page: Page, review: str, reason: str) -> None:
    page.get_by_role("link", name=re.compile("Review queue")).click()
    item = page.locator(f'[data-server="{FINANCE}"]')
    form = item.get_by_test_id(f"review-form-{review}")
    form.get_by_placeholder("Reason").fill(reason)
    form.get_by_role("button", name="Approve").click()


def test_reviewers_find_and_approve_the_pending_finance_server_in_a_browser(
    registry_url: str, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=registry_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    page.goto(registry_url)
    expect(page.get_by_role("link", name="Demo server")).to_be_visible()
    expect(page.get_by_role("link", name="Finance reports")).to_have_count(0)  # pending: not available yet
    shot(page, "01-catalog")

    page.get_by_label("Status", exact=True).select_option("all")  # applies on change
    page.wait_for_url(re.compile(r"status=all"))
    page.get_by_placeholder("Search by name").fill("finance")
    page.get_by_placeholder("Search by name").press("Enter")
    page.wait_for_url(re.compile(r"q=finance"))
    expect(page.get_by_test_id("server-card")).to_have_count(1)
    shot(page, "02-search-finance")

    page.get_by_role("link", name="Finance reports").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Finance reports")
    expect(page.get_by_test_id("lifecycle").first).to_have_text("Pending review")
    expect(page.get_by_test_id("health")).to_contain_text("Not checked")  # a pending server's upstream is not probed
    expect(page.get_by_test_id("snippet-vscode")).to_contain_text('"type": "http"')
    page.locator('[data-copy="snippet-claude-code"]').click()
    expect(page.locator('[data-copy="snippet-claude-code"]')).to_have_text("Copied")
    shot(page, "03-finance-pending")

    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_test_id("login-dana")).to_be_visible()
    shot(page, "04-dev-login")
    page.get_by_test_id("login-dana").click()
    expect(page.get_by_test_id("signed-in-user")).to_have_text("Dana Diaz")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Finance reports")  # back where she was

    approve(page, "security", "No secrets in responses; least-privilege upstream credentials.")
    expect(page.get_by_text("The security review of Finance reports 0.9.0 is approved.")).to_be_visible()
    shot(page, "05-security-approved-by-dana")

    sign_in_as(page, "erin", "Erin Evans")
    approve(page, "legal", "Internal financial data; retention documented.")
    expect(page.get_by_text("The legal review of Finance reports 0.9.0 is approved.")).to_be_visible()
    shot(page, "06-legal-approved-by-erin")

    sign_in_as(page, "frank", "Frank Fischer")
    page.get_by_role("link", name=re.compile("Review queue")).click()
    shot(page, "07-queue-for-frank")
    approve(page, "genai", "Tool descriptions are accurate; no prompt injection surface.")
    expect(page.get_by_text("Finance reports 0.9.0 is now approved")).to_be_visible()
    expect(page.get_by_text("Nothing waits for review")).to_be_visible()
    shot(page, "08-genai-approved-by-frank")

    page.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("link", name="Finance reports")).to_be_visible()
    page.get_by_role("link", name="Finance reports").click()
    expect(page.get_by_test_id("lifecycle").first).to_have_text("Approved")
    expect(page.get_by_test_id("reviews")).to_contain_text("Passed by dana")
    expect(page.get_by_test_id("reviews")).to_contain_text("Passed by erin")
    expect(page.get_by_test_id("reviews")).to_contain_text("Passed by frank")
    expect(page.get_by_test_id("history")).to_contain_text("every required review passed")
    shot(page, "09-finance-approved")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(registry_url)
    shot(page, "10-catalog-mobile")
    assert errors == [], errors
    context.close()
