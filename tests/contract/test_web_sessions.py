"""The web pages' session cookie and CSRF rules over the real app (no browser needed):
W-SESS-02 (the default cookie is Secure with the __Host- name), W-SESS-05 (idle and
absolute expiry through the cookie), W-CSRF-01 (cross-site and token-less posts are
refused and change nothing), W-CSRF-02 (a cookie never authenticates /v1 or /mcp)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from fleetprompt_adapters.memory import ManualClock
from fleetprompt_core.base.enums import Role
from fleetprompt_http.app import create_app, fleetprompt_of
from fleetprompt_http.settings import Settings, WebSettings

PASSWORD = "a password for the session tests"
HTML = {"accept": "text/html"}


def _client(clock: ManualClock, **web: Any) -> Iterator[TestClient[Any]]:
    settings = Settings(
        database_url="memory://",
        web=WebSettings(session_idle_minutes=60, session_max_hours=24, **web),
        rate_limits=None,
        redeem_secrets=(b"a redeem secret of at least 32 bytes",),
    )
    app = create_app(settings, clock=clock)
    fleetprompt = fleetprompt_of(app)
    fleetprompt.operator.ensure_user("alice", roles=[Role.PUBLISHER])
    fleetprompt.accounts.set_password("alice", PASSWORD)
    with TestClient(app, base_url="https://fleetprompt.test") as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(clock: ManualClock) -> Iterator[TestClient[Any]]:
    yield from _client(clock)


def _sign_in(client: TestClient[Any]) -> Any:
    response = client.post(
        "/signin", data={"identifier": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return response


def _signed_in(client: TestClient[Any]) -> bool:
    response = client.get("/account", headers=HTML, follow_redirects=False)
    return response.status_code == 200


def test_w_sess_02_the_default_cookie_is_secure_httponly_lax_and_host_prefixed(
    client: TestClient[Any],
) -> None:
    """Unless configured off, the session cookie is __Host-fp_session; Secure; HttpOnly;
    SameSite=Lax; Path=/; no Domain."""
    cookie = _sign_in(client).headers["set-cookie"]
    assert cookie.startswith("__Host-fp_session=fpbs_")
    parts = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert {"secure", "httponly", "path", "samesite"} <= parts
    assert "domain" not in parts
    assert "samesite=lax" in cookie.lower()
    assert _signed_in(client)


def test_w_sess_05_idle_and_absolute_expiry_sign_the_browser_out(
    client: TestClient[Any], clock: ManualClock
) -> None:
    """An hour without a request ends the session; used every half hour it still ends
    24 h after sign-in."""
    _sign_in(client)
    clock.advance(59 * 60_000)
    assert _signed_in(client)
    clock.advance(61 * 60_000)
    assert not _signed_in(client)
    _sign_in(client)
    for _ in range(47):
        clock.advance(30 * 60_000)
        assert _signed_in(client)
    clock.advance(30 * 60_000)
    assert not _signed_in(client)


def test_w_csrf_01_cross_site_and_token_less_posts_change_nothing(
    client: TestClient[Any],
) -> None:
    """A signed-in post without the CSRF token, with another token, from another origin
    or marked cross-site by the browser is 403 and the name stays."""
    _sign_in(client)
    page = client.get("/account", headers=HTML).text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    for data, headers in (
        ({"displayName": "X"}, {}),
        ({"displayName": "X", "csrf": "forged"}, {}),
        ({"displayName": "X", "csrf": csrf}, {"origin": "https://evil.example"}),
        ({"displayName": "X", "csrf": csrf}, {"sec-fetch-site": "cross-site"}),
        ({"displayName": "X", "csrf": csrf}, {"sec-fetch-site": "same-site"}),
    ):
        response = client.post("/account/name", data=data, headers={**HTML, **headers})
        assert response.status_code == 403, (data, headers)
        assert "X-Request-Id".lower() in response.headers
    fleetprompt = fleetprompt_of(client.app)
    assert fleetprompt.operator.ensure_user("alice").display_name is None
    ok = client.post(
        "/account/name",
        data={"displayName": "Alice", "csrf": csrf},
        headers={"sec-fetch-site": "same-origin"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert fleetprompt.operator.ensure_user("alice").display_name == "Alice"


def test_w_csrf_02_a_cookie_never_authenticates_the_api_or_mcp(
    client: TestClient[Any],
) -> None:
    """With a valid session cookie, /v1 answers UNAUTHENTICATED and /mcp's signed-in
    tools stay out of reach; the redeem endpoint refuses a request carrying a cookie."""
    _sign_in(client)
    for path in ("/v1/install/intents", "/v1/publisher/listings", "/v1/publisher/profile"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    redeem = client.post(
        "/v1/internal/install/redeem", json={"installToken": "fpit_x", "targetSystem": "whs"}
    )
    assert redeem.status_code == 401
    assert redeem.json()["error"]["code"] == "UNAUTHENTICATED"


def test_w_sess_plain_cookie_only_when_configured(clock: ManualClock) -> None:
    """cookie_secure=False (plain-http loopback) drops Secure and the __Host- prefix."""
    for client in _client(clock, cookie_secure=False):
        cookie = _sign_in(client).headers["set-cookie"]
        assert cookie.startswith("fp_session=")
        assert "secure" not in cookie.lower()
        assert "httponly" in cookie.lower()
