"""Plumbing of the browser suite: ``fleetprompt serve`` processes and a headless Chromium.

One server process per session (on a fresh SQLite file, filled by the CLI's
``demo`` and a batch of listings published over the API), one Chromium per
session (Debian's ``chromium``, through playwright's ``executable_path``;
never ``playwright install``), a fresh browser context per test. Every page
a test opens records console errors, CSP violations and dialogs; a test
fails if any appear (:class:`Watched`).

Skipped, with the reason, when playwright or the ``chromium`` binary is
missing (``.ci/run`` installs the browser).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

ADMIN = "root"
ADMIN_PASSWORD = "operator made this admin passphrase"
BUYER = "demo-buyer"
BUYER_PASSWORD = "buyer passphrase for the browser"
PUBLISHER = "demo-acme"
PUBLISHER_PASSWORD = "acme publisher passphrase here"
REDEEM_SECRET = "browser-suite-redeem-secret-of-32-bytes!"
BATCH = 14  # more than one page of the marketplace (12 cards)
START_TIMEOUT_S = 30.0


def fleetprompt_path() -> str:
    """The installed console script (absolute), as a person would run it."""
    path = Path(sysconfig.get_path("scripts")) / "fleetprompt"
    if not path.exists():
        pytest.skip("the fleetprompt console script is not installed (pip install -e .)")
    return str(path)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium package)")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.frozen
class Server:
    base_url: str
    env: dict[str, str]

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [fleetprompt_path(), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def url(self, path: str) -> str:
        return self.base_url + path


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if the server is still busy after 20 s."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:  # a loaded machine, a keep-alive connection
        process.kill()
        process.wait()


def _start(env: dict[str, str], log: Any) -> tuple[subprocess.Popen[bytes], Server]:
    """Start ``fleetprompt serve`` on a free port; another process may take the port
    between the probe and the bind, so a server that exits is started again elsewhere,
    and the one answering must be ours (alive, serving the web pages)."""
    for _ in range(3):
        port = _free_port()
        server = Server(f"http://127.0.0.1:{port}", env)
        process = subprocess.Popen(
            [fleetprompt_path(), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(server.url("/signin"), timeout=1) as answer:  # noqa: S310
                    ours = "text/html" in answer.headers.get("content-type", "")
            except OSError:
                time.sleep(0.1)
                continue
            time.sleep(0.3)
            if ours and process.poll() is None:
                return process, server
            break
        _stop(process)
    raise RuntimeError("fleetprompt serve did not start")


@contextlib.contextmanager
def running_server(tmp: Path, **variables: str) -> Iterator[Server]:
    """``fleetprompt serve`` on a fresh SQLite file, as a person would start it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update(
        {
            "FLEETPROMPT_DATABASE_URL": f"sqlite:///{tmp / 'fleetprompt.db'}",
            "FLEETPROMPT_INTERNAL_REDEEM_SECRET": REDEEM_SECRET,
            "FLEETPROMPT_IMAGE_HOSTS": "images.example.com",
            "FLEETPROMPT_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"FLEETPROMPT_{name}": value for name, value in variables.items()})
    server = Server("", env)
    server.cli("db", "upgrade")
    log = (tmp / "server.log").open("w")
    process, server = _start(env, log)
    try:
        yield server
    finally:
        _stop(process)
        log.close()


def publish_batch(server: Server, token: str) -> None:
    """``BATCH`` published listings tagged ``batch``, over the JSON API."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(
                path, json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert response.status_code in (200, 201), response.text
            result: dict[str, Any] = response.json()
            return result

        for n in range(BATCH):
            listing = post(
                "/v1/publisher/listings",
                {
                    "assetKind": "whs_agent",
                    "name": f"Batch Agent {n:02d}",
                    "summary": f"Batch agent number {n}.",
                    "tags": ["batch"],
                    "categories": ["bulk"],
                },
            )["listing"]["listingId"]
            post(
                f"/v1/publisher/listings/{listing}/releases",
                {"version": "1.0.0", "refs": {"whsAgentId": f"batch-{n}"}},
            )
            post(f"/v1/publisher/listings/{listing}/status", {"status": "published"})


class Watched:
    """What the pages of one context showed that they should not have."""

    def __init__(self) -> None:
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []

    def attach(self, page: Any) -> Any:
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

        def dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        return page

    def assert_clean(self, *, allow_status_errors: bool = False) -> None:
        errors = [
            e
            for e in self.console_errors
            if not (allow_status_errors and "the server responded with a status of" in e)
        ]
        assert not errors, errors
        assert not self.page_errors, self.page_errors
        assert not self.dialogs, self.dialogs


@attrs.define
class Browsing:
    """A fresh browser context with one page; ``new_page`` opens more (same cookies)."""

    context: Any
    page: Any
    watched: Watched
    server: Server

    def go(self, path: str) -> Any:
        return self.page.goto(self.server.url(path))

    def new_page(self) -> Any:
        return self.watched.attach(self.context.new_page())

    def sign_in(self, username: str, password: str, page: Any = None) -> None:
        page = page or self.page
        page.goto(self.server.url("/signin"))
        page.fill("#identifier", username)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "/signin" not in page.url, page.content()

    def session_cookie(self) -> dict[str, Any]:
        (cookie,) = [c for c in self.context.cookies() if c["name"].endswith("fp_session")]
        return dict(cookie)


def browsing_context(browser: Any, server: Server, **options: Any) -> Iterator[Browsing]:
    context = browser.new_context(**options)
    watched = Watched()
    page = watched.attach(context.new_page())
    try:
        yield Browsing(context, page, watched, server)
    finally:
        context.close()


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


PASSWORD = "a long enough browser passphrase"


#: A password that passes the rules, for accounts the tests sign up.
PASSWORD = "a long enough browser passphrase"
