"""Accounts, sessions, CSRF and sign-in limits in a real Chromium against a real server:
W-ACCT-01..03 and 05, W-SESS-01..04, W-CSRF-01..02, W-RL-01..02, and the redeem
endpoint refusing a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser.web_support import (
    ADMIN,
    ADMIN_PASSWORD,
    BUYER,
    BUYER_PASSWORD,
    PASSWORD,
    Browsing,
    Server,
    browsing_context,
    running_server,
    unique,
)


def _sign_up(web: Browsing, username: str, password: str = PASSWORD, **fields: str) -> Any:
    web.go("/signup")
    web.page.fill("#f-username", username)
    for name, value in fields.items():
        web.page.fill(f"#f-{name}", value)
    web.page.fill("#f-password", password)
    with web.page.expect_navigation() as navigation:
        web.page.click("main button[type=submit]")
    return navigation.value


def test_w_acct_01_sign_up_signs_the_new_user_in(web: Browsing) -> None:
    """Sign-up with username, e-mail and display name lands on the account page, signed
    in, with no role yet; the form uses the password managers' autocomplete tokens."""
    web.go("/signup")
    assert web.page.get_attribute("#f-username", "autocomplete") == "username"
    assert web.page.get_attribute("#f-email", "autocomplete") == "email"
    assert web.page.get_attribute("#f-password", "autocomplete") == "new-password"
    name = unique("ann")
    _sign_up(web, name, email=f"{name}@example.com", displayName="Ann Example")
    assert web.page.url.endswith("/account?done=welcome")
    assert "Welcome" in web.page.locator(".alert.ok").inner_text()
    facts = web.page.locator(".facts").inner_text()
    assert name in facts
    assert "none yet" in facts
    assert "Ann Example" in web.page.locator("header").inner_text()
    web.watched.assert_clean()


def test_w_acct_02_sign_in_by_username_or_email_and_back_to_the_page(
    web: Browsing, server: Server
) -> None:
    """Signed out, a protected page leads to sign-in and back; the e-mail address signs
    in too; the sign-in form uses username/current-password autocomplete."""
    name = unique("bea")
    _sign_up(web, name, email=f"{name}@example.com")
    web.context.clear_cookies()
    web.go("/installs")
    assert "/signin?next=" in web.page.url
    assert web.page.get_attribute("#identifier", "autocomplete") == "username"
    assert web.page.get_attribute("#password", "autocomplete") == "current-password"
    web.page.fill("#identifier", f"{name.upper()}@EXAMPLE.COM")
    web.page.fill("#password", PASSWORD)
    with web.page.expect_navigation():
        web.page.click("main button[type=submit]")
    assert web.page.url == server.url("/installs")
    assert web.page.locator("h1").inner_text() == "My installs"
    web.watched.assert_clean()


def test_w_acct_03_password_rules_show_next_to_the_field_and_keep_the_form(
    web: Browsing,
) -> None:
    """A short or common password is refused next to the password field; what was typed
    elsewhere is kept (the password is not echoed back); nothing is created."""
    name = unique("cat")
    for weak in ("short pass", "passwordpassword", "qwertyuiopasdfgh"):
        response = _sign_up(web, name, password=weak, displayName="Cat")
        assert response.status == 400
        error = web.page.locator("#password-error").inner_text()
        assert "password" not in error.lower() or weak not in error
        assert web.page.input_value("#f-username") == name
        assert web.page.input_value("#f-displayName") == "Cat"
        assert web.page.input_value("#f-password") == ""
    web.context.clear_cookies()
    web.go("/signin")
    web.page.fill("#identifier", name)
    web.page.fill("#password", "short pass")
    with web.page.expect_navigation():
        web.page.click("main button[type=submit]")
    assert web.page.url.endswith("/signin")
    web.watched.assert_clean(allow_status_errors=True)


def test_w_acct_05_an_operator_made_admin_signs_in(web: Browsing) -> None:
    """The admin created with `fleetprompt users create root --admin --password-stdin`
    signs in on the web and reaches the admin page with its audit log."""
    web.sign_in(ADMIN, ADMIN_PASSWORD)
    web.go("/admin")
    assert web.page.locator("h1").inner_text() == "Admin"
    assert "account.signed_in" in web.page.locator("table").last.inner_text()
    web.page.fill("#a-type", "account.created")
    with web.page.expect_navigation():
        web.page.click("text=Filter")
    assert "type=account.created" in web.page.url
    rows = web.page.locator("table").last.locator("tbody tr")
    assert rows.count() >= 1
    assert all("account.created" in row for row in rows.all_inner_texts())
    web.watched.assert_clean()


def test_w_sess_01_sign_in_rotates_the_session_id(web: Browsing, other_web: Browsing) -> None:
    """Signing in again replaces the session cookie; the old value signs nobody in."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    first = web.session_cookie()
    web.sign_in(BUYER, BUYER_PASSWORD)
    second = web.session_cookie()
    assert first["value"] != second["value"]
    other_web.context.add_cookies([first])
    other_web.go("/account")
    assert "/signin" in other_web.page.url


def test_w_sess_02_session_cookie_flags(web: Browsing) -> None:
    """The session cookie is HttpOnly and SameSite=Lax, invisible to page scripts; on
    this plain-http loopback server (`fleetprompt serve` on 127.0.0.1) it is not Secure,
    by design (ADR 0019; every other host gets Secure and the __Host- name)."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    cookie = web.session_cookie()
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["secure"] is False
    assert cookie["name"] == "fp_session"
    assert "fp_session" not in web.page.evaluate("document.cookie")


def test_w_sess_03_sign_out_ends_the_session(web: Browsing, other_web: Browsing) -> None:
    """After sign-out the same cookie value, replayed elsewhere, signs nobody in."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    cookie = web.session_cookie()
    with web.page.expect_navigation():
        web.page.click("text=Sign out")
    assert web.page.locator("header").inner_text().count("Sign in") == 1
    other_web.context.add_cookies([cookie])
    other_web.go("/account")
    assert "/signin" in other_web.page.url


def test_w_sess_04_a_password_change_ends_every_session(web: Browsing, other_web: Browsing) -> None:
    """Signed in twice; changing the password in one browser signs the other out and
    keeps the first signed in; the new password works, the old one no longer."""
    name = unique("dan")
    _sign_up(web, name)
    other_web.sign_in(name, PASSWORD)
    web.go("/account")
    web.page.fill("#f-currentPassword", PASSWORD)
    web.page.fill("#f-newPassword", "the brand new passphrase 2")
    with web.page.expect_navigation():
        web.page.click("form[action='/account/password'] button")
    assert "password was changed" in web.page.locator(".alert.ok").inner_text()
    other_web.go("/account")
    assert "/signin" in other_web.page.url
    web.go("/account")
    assert web.page.locator("h1").inner_text() == "Your account"
    other_web.sign_in(name, "the brand new passphrase 2")
    web.watched.assert_clean()


def test_w_csrf_01_unsafe_request_without_token_is_refused_and_changes_nothing(
    web: Browsing,
) -> None:
    """A signed-in form posted without its CSRF token (or with another session's) is the
    403 page and the display name stays as it was."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    web.go("/account")
    before = web.page.input_value("#f-displayName")
    for tamper in (
        "document.querySelector(\"form[action='/account/name'] input[name=csrf]\").remove()",
        "document.querySelector(\"form[action='/account/name'] input[name=csrf]\").value = 'x'",
    ):
        web.go("/account")
        web.page.fill("#f-displayName", "Changed By CSRF")
        web.page.evaluate(tamper)
        with web.page.expect_navigation() as navigation:
            web.page.click("form[action='/account/name'] button")
        assert navigation.value.status == 403
        assert "came from another site" in web.page.inner_text("main")
    web.go("/account")
    assert web.page.input_value("#f-displayName") == before
    web.watched.assert_clean(allow_status_errors=True)


def test_w_csrf_01_a_cross_site_form_is_refused(
    web: Browsing, server: Server, tmp_path: Path
) -> None:
    """A form on another site posting to the account page with the visitor's cookies is
    refused (the browser says cross-site), and the visitor stays signed in."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    attack = (
        f'<form id="f" method="post" action="{server.url("/account/name")}">'
        '<input name="displayName" value="pwned"></form>'
    )
    evil = web.new_page()
    evil.route(
        "http://evil.example/", lambda route: route.fulfill(body=attack, content_type="text/html")
    )
    evil.goto("http://evil.example/")
    with evil.expect_navigation() as navigation:
        evil.evaluate("document.getElementById('f').submit()")
    assert navigation.value.status == 403
    web.go("/account")
    assert web.page.input_value("#f-displayName") != "pwned"


def test_w_csrf_02_a_cookie_never_authenticates_the_api(web: Browsing, server: Server) -> None:
    """With a live session cookie, /v1 calls from the page are still UNAUTHENTICATED, and
    the redeem endpoint refuses the browser-originated request."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    answers = web.page.evaluate(
        """async () => {
          const intents = await fetch('/v1/install/intents', {credentials: 'include'});
          const profile = await fetch('/v1/publisher/profile', {credentials: 'include'});
          const redeem = await fetch('/v1/internal/install/redeem', {
            method: 'POST', credentials: 'include',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({installToken: 'fpit_x', targetSystem: 'whs'})});
          return [intents.status, (await intents.json()).error.code,
                  profile.status, redeem.status, (await redeem.json()).error.code];
        }"""
    )
    assert answers == [401, "UNAUTHENTICATED", 401, 401, "UNAUTHENTICATED"]
    response = web.context.request.get(server.url("/v1/install/intents"))
    assert response.status == 401


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server whose sign-in limit is 3 a minute (per client and per account)."""
    with running_server(tmp_path_factory.mktemp("limited"), RATE_LIMITS="login=3/60") as live:
        live.cli("users", "create", "lim", "--password-stdin", stdin=PASSWORD)
        yield live


def test_w_rl_01_sign_in_is_rate_limited(browser: Any, limited_server: Server) -> None:
    """Past the limit the sign-in page answers 429 with Retry-After, even for the right
    password."""
    for web in browsing_context(browser, limited_server):
        statuses = []
        for password in ("wrong password one!!", "wrong password two!!", "wrong password 3!!!"):
            web.go("/signin")
            web.page.fill("#identifier", "lim")
            web.page.fill("#password", password)
            with web.page.expect_navigation() as navigation:
                web.page.click("main button[type=submit]")
            statuses.append(navigation.value.status)
        assert statuses == [401, 401, 401]
        web.go("/signin")
        web.page.fill("#identifier", "lim")
        web.page.fill("#password", PASSWORD)
        with web.page.expect_navigation() as navigation:
            web.page.click("main button[type=submit]")
        assert navigation.value.status == 429
        assert int(navigation.value.headers["retry-after"]) >= 1
        assert web.page.locator("h1").inner_text() == "Slow down"
        assert web.page.locator(".request-id code").inner_text().startswith("req_")


def test_w_rl_02_wrong_user_and_wrong_password_answer_alike(web: Browsing) -> None:
    """An unknown username and a wrong password give the same status and message."""
    answers = []
    for identifier in (BUYER, "no-such-user-anywhere"):
        web.go("/signin")
        web.page.fill("#identifier", identifier)
        web.page.fill("#password", "definitely not the password")
        with web.page.expect_navigation() as navigation:
            web.page.click("main button[type=submit]")
        answers.append((navigation.value.status, web.page.locator(".alert").inner_text()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
