"""Fixtures of the browser suite (see ``web_support.py``): one server process per session,
one Chromium per module, a fresh browser context per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser.web_support import (
    ADMIN,
    ADMIN_PASSWORD,
    BUYER,
    BUYER_PASSWORD,
    PUBLISHER,
    PUBLISHER_PASSWORD,
    Browsing,
    Server,
    browsing_context,
    chromium_path,
    publish_batch,
    running_server,
)

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: demo marketplace, an operator-made admin, passwords for the
    demo buyer and publisher, and a batch of listings for paging."""
    with running_server(
        tmp_path_factory.mktemp("browser"), RATE_LIMITS="login=200/60,search=2000/60"
    ) as live:
        live.cli("demo")
        live.cli("users", "create", ADMIN, "--admin", "--password-stdin", stdin=ADMIN_PASSWORD)
        live.cli("users", "set-password", BUYER, "--password-stdin", stdin=BUYER_PASSWORD)
        live.cli("users", "set-password", PUBLISHER, "--password-stdin", stdin=PUBLISHER_PASSWORD)
        token = live.cli("tokens", "create", PUBLISHER, "--name", "browser-suite").strip()
        publish_batch(live, token)
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Playwright's sync API runs an event loop on this
    thread while it is open, so it must close before the suite's other modules (which
    call ``asyncio.run``) run: a session-wide browser broke every later asyncio test."""
    executable = chromium_path()
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def web(browser: Any, server: Server) -> Iterator[Browsing]:
    """A fresh, signed-out browser context (desktop size)."""
    yield from browsing_context(browser, server, viewport={"width": 1280, "height": 900})


@pytest.fixture
def other_web(browser: Any, server: Server) -> Iterator[Browsing]:
    """A second, independent browser (another person, or the same person elsewhere)."""
    yield from browsing_context(browser, server, viewport={"width": 1280, "height": 900})
