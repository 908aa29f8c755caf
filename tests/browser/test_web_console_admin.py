"""The console's form errors, the admin's moderation and verification, API tokens on
the account page, and one session shared by two server processes (W-PAGE-03,
W-SESS, §12's console, admin and account pages)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
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
    running_server,
    unique,
)


def _submit(page: Any, selector: str) -> Any:
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value


def test_console_field_errors_sit_next_to_their_fields_and_keep_the_form(
    web: Browsing,
) -> None:
    """A listing with no name and an http: docs link is refused: each message sits by its
    field, every typed value is kept, nothing is created."""
    web.sign_in(PUBLISHER, PUBLISHER_PASSWORD)
    web.go("/console")
    before = web.page.locator("tbody tr").count()
    web.go("/console/new")
    web.page.fill("#f-name", "   ")
    web.page.fill("#f-summary", "Kept summary")
    web.page.fill("#f-tags", "kept, tags")
    web.page.fill("#f-docsUrl", "http://insecure.example.com")
    response = _submit(web.page, "button[value=save]")
    assert response.status == 400
    assert web.page.locator("#name-error").inner_text()
    assert web.page.locator("#docsUrl-error").inner_text()
    assert web.page.get_attribute("#f-name", "aria-invalid") == "true"
    assert web.page.input_value("#f-summary") == "Kept summary"
    assert web.page.input_value("#f-tags") == "kept, tags"
    assert web.page.input_value("#f-docsUrl") == "http://insecure.example.com"
    web.go("/console")
    assert web.page.locator("tbody tr").count() == before
    web.watched.assert_clean(allow_status_errors=True)


def test_w_page_03_admin_moderation_and_verification(
    web: Browsing, other_web: Browsing, server: Server
) -> None:
    """An admin verifies a publisher (the badge appears on its cards) and suspends a
    listing (its page becomes the same 404 page); lifting the suspension leaves it
    unlisted, still not visible."""
    other_web.sign_in(ADMIN, ADMIN_PASSWORD)
    other_web.go("/admin")
    other_web.page.fill("#ver-user", "demo-flows")
    other_web.page.select_option("#ver-status", "verified")
    other_web.page.fill("#ver-reason", "Checked by the browser suite.")
    _submit(other_web.page, "form[action='/admin/verification'] button")
    assert "verification was recorded" in other_web.page.inner_text(".alert.ok")

    web.go("/?verified=true")
    cards = web.page.locator(".card")
    assert cards.count() >= 1
    assert all("Verified" in text for text in cards.all_inner_texts())
    assert all("Flowworks" in text for text in cards.all_inner_texts())

    web.go("/?q=invoice")
    web.page.click(".card h3 a")
    web.page.wait_for_url(re.compile(r"/listings/"))
    listing_path = web.page.url.replace(server.base_url, "")
    listing_id = listing_path.rsplit("/", 1)[1]

    other_web.go("/admin")
    other_web.page.fill("#mod-listing", listing_id)
    other_web.page.fill("#mod-reason", "Suspended by the browser suite.")
    _submit(other_web.page, "form[action='/admin/moderation'] button")
    assert "suspended" in other_web.page.inner_text(".alert.ok")
    assert web.go(listing_path).status == 404
    assert web.page.locator("h1").inner_text() == "Page not found"

    other_web.go("/admin")
    other_web.page.fill("#mod-listing", listing_id)
    other_web.page.select_option("#mod-action", "unsuspend")
    _submit(other_web.page, "form[action='/admin/moderation'] button")
    assert web.go(listing_path).status == 404  # unlisted now: still not public
    _restore(server, listing_id)
    web.watched.assert_clean(allow_status_errors=True)
    other_web.watched.assert_clean()


def _restore(server: Server, listing_id: str) -> None:
    """Publish the unlisted listing again, so other tests see the demo catalogue whole."""
    import uuid  # noqa: PLC0415

    token = server.cli("tokens", "create", "demo-flows", "--name", "restore").strip()
    response = httpx.post(
        server.url(f"/v1/publisher/listings/{listing_id}/status"),
        json={"status": "published"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 200, response.text


def test_account_page_api_tokens_are_shown_once_and_revocable(
    web: Browsing, server: Server
) -> None:
    """A token made on the account page is shown once, works as a bearer credential,
    is listed without its value, and stops working once revoked there."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    web.go("/account")
    name = unique("laptop-")
    web.page.fill("#f-name", name)
    web.page.fill("#f-expiresInDays", "30")
    _submit(web.page, "form[action='/account/tokens'] button")
    token = web.page.inner_text("#new-token").strip()
    assert token.startswith("fpat_")
    me = httpx.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    web.go("/account")
    assert token not in web.page.content()
    row = web.page.locator("tbody tr", has_text=name)
    assert "active" in row.inner_text()
    with web.page.expect_navigation():
        row.locator("button").click()
    assert "revoked" in web.page.inner_text(".alert.ok")
    assert "revoked" in web.page.locator("tbody tr", has_text=name).inner_text()
    again = httpx.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401
    web.watched.assert_clean()


@pytest.fixture
def second_process(server: Server, tmp_path: Any) -> Iterator[Server]:
    """Another `fleetprompt serve` process on the same database file."""
    with running_server(tmp_path, DATABASE_URL=server.env["FLEETPROMPT_DATABASE_URL"]) as other:
        yield other


def test_w_sess_a_session_is_shared_by_every_process_of_one_database(
    web: Browsing, second_process: Server
) -> None:
    """Signed in on one process, the next request served by another still knows the
    person; signing out there ends the session on the first too."""
    web.sign_in(BUYER, BUYER_PASSWORD)
    second = web.new_page()
    second.goto(second_process.url("/account"))  # cookies ignore the port
    assert second.locator("h1").inner_text() == "Your account"
    with second.expect_navigation():
        second.click("text=Sign out")
    web.go("/account")
    assert "/signin" in web.page.url
