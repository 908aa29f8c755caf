"""Issue 14 item 5: the security headers every response carries, and the API
docs served from the package.

One middleware (the server's entry point) writes them: ``nosniff``, a
``Referrer-Policy``, a ``Content-Security-Policy`` with ``frame-ancestors
'none'`` on every answer (routing errors included), ``Cache-Control: no-store``
on everything but the public catalogue and the docs (so a raw install token
never sits in a cache), HSTS only when configured. The headers do not depend on
the store, so these run on SQLite only.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, get
from litestar.testing import TestClient

from contract.http_harness import Api
from contract.http_live import serve
from fleetprompt_http.apidocs import SWAGGER_UI_VERSION
from fleetprompt_http.security_headers import (
    Caching,
    ContentPolicy,
    SecurityHeaders,
    declare,
)
from fleetprompt_http.settings import ConfigError, Settings

ApiFactory = Callable[..., AbstractContextManager[Api]]
UNKNOWN_LISTING = "lst_01JUNKNOWN000000000000000"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def api(api_factory: ApiFactory) -> Iterator[Api]:
    with api_factory("sqlite") as opened:
        yield opened


def _directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def _assert_common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    directives = _directives(response)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'none'"]
    joined = response.headers["content-security-policy"]
    assert "unsafe-inline" not in joined
    assert "unsafe-eval" not in joined
    # One value each: nothing appended twice by two layers.
    for name in ("x-content-type-options", "content-security-policy", "cache-control"):
        assert len(response.headers.get_list(name)) <= 1, name


def test_every_answer_carries_nosniff_csp_and_referrer_policy(api: Api) -> None:
    """Success, domain errors, routing errors (404, 405), health and docs all carry
    the headers; JSON gets the policy that lets nothing load; no HSTS unless set."""
    publisher = api.publisher()
    listing = api.create_listing(publisher)
    responses = [
        api.get("/healthz"),
        api.get("/v1/public/listings/search"),
        api.get(f"/v1/public/listings/{UNKNOWN_LISTING}"),
        api.get(f"/v1/publisher/listings/{listing['listingId']}", publisher),
        api.get("/v1/publisher/listings"),  # 401
        api.get("/no/such/path"),  # 404 from the router
        api.client.delete("/healthz"),  # 405 from the router
        api.post("/v1/publisher/listings", publisher, {"name": ""}),  # 400
        api.get("/schema/openapi.json"),
        api.get("/schema/swagger"),
    ]
    for response in responses:
        _assert_common(response)
        assert "strict-transport-security" not in response.headers
    for response in responses[:8]:
        assert _directives(response) == {
            "default-src": ["'none'"],
            "frame-ancestors": ["'none'"],
            "base-uri": ["'none'"],
            "form-action": ["'none'"],
        }, response.request.url


def test_private_and_token_bearing_answers_are_no_store(api: Api) -> None:
    """The answer that carries a raw install token, the owner's views, the buyer's
    intents, health and every error are ``no-store``; the public catalogue is not
    (the same bytes for every caller; its cache headers are its own)."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    issued = api.post(f"/v1/install/intents/{intent['installIntentId']}/token", buyer)
    assert issued.status_code == 201
    assert issued.json()["installToken"]
    private = [
        issued,
        api.get(f"/v1/install/intents/{intent['installIntentId']}", buyer),
        api.get("/v1/install/intents", buyer),
        api.get(f"/v1/publisher/listings/{listing['listingId']}", publisher),
        api.get("/v1/publisher/listings", publisher),
        api.get("/healthz"),
        api.get(f"/v1/public/listings/{UNKNOWN_LISTING}"),  # an error, even on a public route
        api.get("/no/such/path"),
    ]
    for response in private:
        assert response.headers["cache-control"] == "no-store", response.request.url
    public = api.get(f"/v1/public/listings/{listing['listingId']}", buyer)
    assert public.status_code == 200
    assert "no-store" not in public.headers.get("cache-control", "")


def test_a_route_declares_its_policy_and_the_middleware_enforces_it() -> None:
    """A page route gets the strict page policy (self + the allowed image hosts, no
    inline code); a private route's own ``Cache-Control`` is replaced by
    ``no-store``; a public route keeps its own; a handler cannot weaken the CSP."""

    @get("/page", opt=declare(ContentPolicy.PAGE, Caching.PUBLIC), sync_to_thread=False)
    def page() -> str:
        return "<p>hi</p>"

    @get("/leaky", sync_to_thread=False)
    def leaky() -> dict[str, str]:
        return {"token": "x"}

    headers = SecurityHeaders(image_hosts={"img.example.com", "*.cdn.example"})

    class Server(Litestar):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def stamped(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = headers.apply(
                        scope, message["status"], message.get("headers", ())
                    )
                await send(message)

            await super().__call__(scope, receive, stamped)

    @get("/cached", opt=declare(caching=Caching.PUBLIC), sync_to_thread=False)
    def cached() -> Response[dict[str, str]]:
        return Response(
            {"a": "b"},
            headers={"Cache-Control": "public, max-age=60", "Content-Security-Policy": "x"},
        )

    @get("/cached-private", sync_to_thread=False)
    def cached_private() -> Response[dict[str, str]]:
        return Response({"a": "b"}, headers={"Cache-Control": "public, max-age=60"})

    app = Server(route_handlers=[page, leaky, cached, cached_private])
    with TestClient(app) as client:
        shown = client.get("/page")
        directives = _directives(shown)
        assert directives["script-src"] == ["'self'"]
        assert directives["style-src"] == ["'self'"]
        assert directives["img-src"] == [
            "'self'",
            "https://*.cdn.example:*",
            "https://img.example.com:*",
        ]
        assert directives["frame-ancestors"] == ["'none'"]
        _assert_common(shown)
        assert "cache-control" not in shown.headers
        assert client.get("/leaky").headers["cache-control"] == "no-store"
        kept = client.get("/cached")
        assert kept.headers["cache-control"] == "public, max-age=60"
        assert kept.headers["content-security-policy"] != "x"
        _assert_common(kept)
        assert client.get("/cached-private").headers["cache-control"] == "no-store"


def test_hsts_is_sent_only_when_configured(api_factory: ApiFactory) -> None:
    """``FLEETPROMPT_HSTS_MAX_AGE`` turns on ``Strict-Transport-Security``; bad values
    stop the server at start naming the variable."""
    with api_factory("sqlite", hsts_max_age_s=31_536_000) as api:
        for response in (api.get("/healthz"), api.get("/no/such/path")):
            assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert Settings.from_env({}).hsts_max_age_s == 0
    assert Settings.from_env({"FLEETPROMPT_HSTS_MAX_AGE": "600"}).hsts_max_age_s == 600
    for bad in ("-1", "1e6", "soon", str(10**9)):
        with pytest.raises(ConfigError, match="FLEETPROMPT_HSTS_MAX_AGE"):
            Settings.from_env({"FLEETPROMPT_HSTS_MAX_AGE": bad})


def test_api_docs_load_only_packaged_assets_and_no_inline_script(api: Api) -> None:
    """``/schema`` and ``/schema/swagger`` reference only the server's own assets (no
    CDN, no inline script), which the package serves; unknown asset names are 404."""
    for path in ("/schema", "/schema/swagger"):
        page = api.get(path)
        assert page.status_code == 200
        text = page.text
        assert "http://" not in text
        assert "https://" not in text
        assert "<style" not in text
        assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []
        sources = re.findall(r'(?:src|href)="([^"]+)"', text)
        assert sources
        for source in sources:
            assert source.startswith(f"/schema/assets/{SWAGGER_UI_VERSION}/")
            asset = api.get(source)
            assert asset.status_code == 200, source
            assert asset.content
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
        directives = _directives(page)
        assert directives["script-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
    licence = api.get(f"/schema/assets/{SWAGGER_UI_VERSION}/LICENSE")
    assert licence.status_code == 200
    assert "Apache License" in licence.text
    for missing in (
        f"/schema/assets/{SWAGGER_UI_VERSION}/index.html",
        f"/schema/assets/{SWAGGER_UI_VERSION}/..%2F__init__.py",
        "/schema/assets/0.0.1/init.js",
    ):
        assert api.get(missing).status_code == 404, missing


@pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs a chromium binary (Debian's /usr/bin/chromium)"
)
def test_api_docs_render_under_their_policy_with_no_outside_request(api: Api) -> None:
    """In a real browser, Swagger UI renders the operations with no CSP violation and
    without a single request leaving the server (works air-gapped)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
    with serve(api.client.app) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            console: list[str] = []
            outside: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith((base, "data:")) else outside.append(request.url)
                ),
            )
            page.goto(f"{base}/schema/swagger")
            page.wait_for_selector(".opblock", timeout=15_000)
            assert page.locator(".opblock").count() > 10
            violations = [text for text in console if "Content Security Policy" in text]
            assert violations == []
            assert outside == []
        finally:
            browser.close()
