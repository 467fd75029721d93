"""Fixtures of the UI tests: a logged-in TestClient helper, and for browser tests a real ``rapport serve``
over a seeded SQLite file with Debian's chromium driving it (one server and browser per test session)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from rapport.accounts import passwords
from rapport.config import Settings
from rapport.runtime import build_runtime
from tests.support.browser import PageWatch, launch_options
from tests.support.databases import SqliteFactory
from tests.support.server import RapportServer
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash with argon2id at its lowest cost here (0.5 s per hash at the default cost on a small CI box).

    Still the real argon2 code path; the cost parameters travel inside each hash, so verification is
    unchanged. The browser tests' server is a separate process and keeps the default cost.
    """
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass(frozen=True)
class UiServer:
    """A running server, its database and the two workspaces seeded in it."""

    url: str
    database_url: str
    tenant: Tenant
    other: Tenant


@pytest.fixture(scope="session")
def ui_server(sqlite_factory: SqliteFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """``rapport serve`` on a free 127.0.0.1 port over a fresh migrated SQLite file with two workspaces."""
    workdir = tmp_path_factory.mktemp("ui-server")
    url = sqlite_factory.new_url(workdir)
    runtime = build_runtime(Settings(database_url=url, secret_key="seed-secret-0123456789", db_pool_size=1))
    try:
        tenant = make_tenant(runtime, "acme")
        other = make_tenant(runtime, "globex")
    finally:
        runtime.close()
    server = RapportServer(url, workdir=workdir, env={"RAPPORT_LOG_LEVEL": "WARNING"}).start()
    try:
        yield UiServer(url=server.url, database_url=url, tenant=tenant, other=other)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    """The Playwright driver for the session."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless, resolving nothing but 127.0.0.1."""
    browser = playwright_driver.chromium.launch(**launch_options())
    yield browser
    browser.close()


@pytest.fixture
def browser_context(chromium: Browser, ui_server: UiServer) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) pointed at the server."""
    context = chromium.new_context(
        base_url=ui_server.url,
        viewport={"width": 1280, "height": 800},
        locale="en-GB",
        reduced_motion="reduce",
    )
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def watched_page(browser_context: BrowserContext) -> Iterator[PageWatch]:
    """A page whose console errors and uncaught exceptions fail the test."""
    watch = PageWatch(browser_context.new_page()).attach()
    yield watch
    watch.assert_clean()


def browser_login(page: Page, email: str, password: str) -> None:
    """Log in through the login form and wait for the dashboard."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/(\?.*)?$"))


@pytest.fixture
def browser_context_phone(chromium: Browser, ui_server: UiServer) -> Iterator[PageWatch]:
    """A watched page in a 375 px wide phone-sized viewport."""
    context = chromium.new_context(
        base_url=ui_server.url,
        viewport={"width": 375, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        locale="en-GB",
        reduced_motion="reduce",
    )
    context.set_default_timeout(10_000)
    watch = PageWatch(context.new_page()).attach()
    yield watch
    context.close()
    watch.assert_clean()
