"""Browsing in a real Chromium, signed out: W-PAGE-01..06, E2E-01, W-CSP-01."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from browser.web_support import BATCH, Browsing, Server

CSP_REQUIRED = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
)


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _card_names(web: Browsing) -> list[str]:
    return [name.strip() for name in web.page.locator(".card h3").all_inner_texts()]


def test_w_page_01_search_and_facets_signed_out(web: Browsing) -> None:
    """Signed out, the marketplace shows cards (publisher, kind, tags, installs, updated);
    a search, a tag facet and the asset-kind facet narrow the results."""
    web.go("/")
    assert web.page.locator(".card").count() == 12, web.page.content()  # the first page
    first = web.page.locator(".card").first
    assert "installs in 30 days" in first.inner_text() or "install in 30 days" in first.inner_text()
    assert "Updated" in first.inner_text()

    web.page.fill("#q", "triage")
    with web.page.expect_navigation():
        web.page.press("#q", "Enter")
    assert _card_names(web) == ["Support Triage Agent"]
    assert _query(web.page.url)["q"] == ["triage"]

    web.go("/")
    web.page.fill("#q", "")
    web.page.check("input[name=tags][value=finance]")
    with web.page.expect_navigation():
        web.page.click("text=Apply filters")
    assert _card_names(web) == ["Invoice Approval Flow"]
    assert _query(web.page.url)["tags"] == ["finance"]

    web.go("/?assetKind=spec_asset")
    assert _card_names(web) == ["Onboarding Checklist Spec"]
    assert web.page.is_checked("input[name=assetKind][value=spec_asset]")
    web.watched.assert_clean()


def test_w_page_04_e2e_01_sorts_paging_and_the_back_button(web: Browsing) -> None:
    """E2E-01: sorts change the order, cursor paging walks forward and back over every
    batch listing exactly once, the URL carries the whole query, and the back button
    returns to the earlier page with its results."""
    web.go("/?tags=batch&sort=name")
    page_one = _card_names(web)
    assert page_one == sorted(page_one)
    assert len(page_one) == 12
    with web.page.expect_navigation():
        web.page.click("a[rel=next]")
    page_two = _card_names(web)
    assert len(page_one) + len(page_two) == BATCH
    assert not set(page_one) & set(page_two)
    assert page_two == sorted(page_two)
    assert page_one[-1] < page_two[0]
    query = _query(web.page.url)
    assert query["tags"] == ["batch"]
    assert query["sort"] == ["name"]
    assert "cursor" in query
    assert web.page.locator("a[rel=next]").count() == 0

    with web.page.expect_navigation():
        web.page.click("a[rel=prev]")
    assert _card_names(web) == page_one
    with web.page.expect_navigation():
        web.page.click("a[rel=next]")
    web.page.go_back()
    assert _card_names(web) == page_one
    web.page.go_forward()
    assert _card_names(web) == page_two

    shared = web.page.url  # shareable: a fresh page with the same URL shows the same
    other = web.new_page()
    other.goto(shared)
    assert [n.strip() for n in other.locator(".card h3").all_inner_texts()] == page_two

    web.go("/?tags=batch&sort=created")
    newest_first = _card_names(web)
    assert newest_first[0] == f"Batch Agent {BATCH - 1:02d}"
    web.go("/?tags=batch&sort=installs")
    assert web.page.locator(".card").count() == 12
    web.watched.assert_clean()


def test_w_page_02_detail_renders_the_sanitized_description_and_history(web: Browsing) -> None:
    """The detail page shows the rendered description, the latest release, the version
    history (revoked versions marked when asked for) and the publisher card."""
    web.go("/?q=triage")
    with web.page.expect_navigation():
        web.page.click(".card h3 a")
    assert re.search(r"/listings/lst_", web.page.url)
    description = web.page.locator("#description")
    assert description.locator("h1").inner_text() == "Support Triage Agent"
    assert "Latest release" in web.page.locator(".install").inner_text()
    history = web.page.locator(".history").inner_text()
    assert "1.0.0" in history
    assert "1.0.1" not in history
    with web.page.expect_navigation():
        web.page.click("text=Show revoked versions")
    revoked = web.page.locator(".history li.revoked")
    assert "1.0.1" in revoked.inner_text()
    assert "Revoked" in revoked.inner_text()
    assert "Acme Agents" in web.page.locator(".publisher-card").inner_text()
    with web.page.expect_navigation():
        web.page.click(".publisher-card a")
    assert "/publishers/" in web.page.url
    assert "Support Triage Agent" in web.page.locator(".cards").inner_text()
    web.watched.assert_clean()


def test_w_page_03_not_visible_is_the_404_page(web: Browsing, server: Server) -> None:
    """Unknown and draft listings, unknown publishers and unknown paths are the same 404
    page, which carries the request id."""
    draft = _draft_listing(server)
    for path in (
        "/listings/lst_unknown",
        f"/listings/{draft}",
        "/publishers/usr_unknown",
        "/no/such/page",
    ):
        response = web.go(path)
        assert response.status == 404, path
        assert web.page.locator("h1").inner_text() == "Page not found"
        request_id = response.headers["x-request-id"]
        assert request_id in web.page.locator(".request-id").inner_text()
    web.watched.assert_clean(allow_status_errors=True)


def _draft_listing(server: Server) -> str:
    import uuid  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    token = server.cli("tokens", "create", "demo-acme", "--name", "draft").strip()
    response = httpx.post(
        server.url("/v1/publisher/listings"),
        json={"assetKind": "whs_agent", "name": "Secret Draft"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    listing_id: str = response.json()["listing"]["listingId"]
    return listing_id


def test_w_page_05_a_phone_viewport_has_no_sideways_scroll(browser: object, server: Server) -> None:
    """At 390 px wide no page scrolls sideways: marketplace, detail, sign-in, sign-up,
    a 404 page."""
    from browser.web_support import browsing_context  # noqa: PLC0415

    for phone in browsing_context(browser, server, viewport={"width": 390, "height": 844}):
        phone.go("/")
        detail = phone.page.locator(".card h3 a").first.get_attribute("href")
        for path in ("/", str(detail), "/signin", "/signup", "/?tags=batch", "/nope"):
            phone.go(path)
            width = phone.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)


def test_w_page_06_keyboard_only_use(web: Browsing) -> None:
    """Without a mouse: Tab reaches the skip link first, focus is visible, and a search
    can be typed and submitted with the keyboard alone."""
    web.go("/")
    web.page.keyboard.press("Tab")
    focused = web.page.evaluate("document.activeElement.className")
    assert focused == "skip"
    outline = web.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    web.page.keyboard.press("Enter")  # skip to the main content
    for _ in range(20):
        web.page.keyboard.press("Tab")
        if web.page.evaluate("document.activeElement.id") == "q":
            break
    assert web.page.evaluate("document.activeElement.id") == "q"
    web.page.keyboard.type("invoice")
    with web.page.expect_navigation():
        web.page.keyboard.press("Enter")
    assert _card_names(web) == ["Invoice Approval Flow"]
    web.page.keyboard.press("Tab")
    web.page.keyboard.press("Tab")
    tag = web.page.evaluate("document.activeElement.tagName")
    assert tag in ("A", "INPUT", "BUTTON", "SELECT")
    web.watched.assert_clean()


def test_w_csp_01_security_headers_on_every_page(web: Browsing, server: Server) -> None:
    """Every page, error pages and static files included, carries a strict CSP without
    unsafe-inline or unsafe-eval, frame-ancestors 'none', nosniff and a Referrer-Policy;
    pages that depend on the visitor are not cached."""
    web.go("/")
    detail = web.page.locator(".card h3 a").first.get_attribute("href")
    for path in (
        "/",
        "/?q=agent",
        str(detail),
        "/signin",
        "/signup",
        "/nope",
        "/listings/lst_nope",
        "/static/app.css",
    ):
        response = web.go(path)
        headers = response.headers
        csp = headers["content-security-policy"]
        for directive in CSP_REQUIRED:
            assert directive in csp, (path, csp)
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"]
        if not path.startswith("/static"):
            assert headers["cache-control"] == "no-store", path
    web.watched.assert_clean(allow_status_errors=True)
