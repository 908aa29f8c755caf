"""The HTTP contract suites' harness: the real app over SQLite or PostgreSQL.

``Api`` wraps a Litestar ``TestClient`` around ``create_app(settings)`` with a
manual clock, plus the few operator steps a test needs before it can call the
API (users, roles and API tokens come from an operator, never from the API).
Every other step goes through HTTP.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import sqlalchemy as sa
from litestar.testing import TestClient

from databases import empty, postgres_engine, sqlite_engine
from fleetprompt_adapters.memory import ManualClock
from fleetprompt_core import FleetPrompt, Role
from fleetprompt_core.policies.rate_limits import RateLimits
from fleetprompt_http.app import create_app, fleetprompt_of
from fleetprompt_http.client import signed_redeem_request
from fleetprompt_http.settings import Settings
from support import CURSOR_KEY, IMAGE_HOST, listing_payload, release_payload

__all__ = ["REDEEM_SECRET", "Api", "Caller", "open_api"]

REDEEM_SECRET = b"s" * 32
REDEEM_PATH = "/v1/internal/install/redeem"
_keys = itertools.count(1)
_users = itertools.count(1)


def new_key() -> str:
    return f"http-key-{next(_keys)}"


@attrs.frozen
class Caller:
    """A user of the API: its external id, user id and bearer API token."""

    external_id: str
    user_id: str
    token: str = attrs.field(repr=False)

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", **extra}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers


@attrs.define
class Api:
    """The app under test, its client, its clock and its database."""

    name: str
    client: TestClient[Any]
    clock: ManualClock
    settings: Settings

    @property
    def fp(self) -> FleetPrompt:
        return fleetprompt_of(self.client.app)

    # ------------------------------------------------------------------ callers

    def user(self, *roles: Role, display_name: str | None = None) -> Caller:
        external_id = f"user-{next(_users)}"
        user = self.fp.operator.ensure_user(external_id, display_name=display_name, roles=roles)
        token = self.fp.credentials.issue_api_token(external_id).api_token
        return Caller(external_id, user.user_id, token)

    def publisher(self, display_name: str | None = "Acme Agents") -> Caller:
        return self.user(Role.PUBLISHER, display_name=display_name)

    def buyer(self) -> Caller:
        return self.user()

    def admin(self) -> Caller:
        return self.user(Role.ADMIN)

    # ------------------------------------------------------------------ requests

    def get(self, path: str, caller: Caller | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(caller.headers() if caller else {}), **kwargs.pop("headers", {})}
        return self.client.get(path, headers=headers, **kwargs)

    def post(
        self,
        path: str,
        caller: Caller | None = None,
        body: object = None,
        *,
        key: str | None = "auto",
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> httpx.Response:
        """A JSON write; ``key="auto"`` sends a fresh ``Idempotency-Key``, ``None`` none."""
        sent = dict(caller.headers() if caller else {})
        if key is not None:
            sent["Idempotency-Key"] = new_key() if key == "auto" else key
        sent.update(headers or {})
        return self.client.request(method, path, json=body, headers=sent)

    # ------------------------------------------------------------------ flows

    def create_listing(self, publisher: Caller, **overrides: Any) -> dict[str, Any]:
        response = self.post("/v1/publisher/listings", publisher, listing_payload(**overrides))
        assert response.status_code == 201, response.text
        listing: dict[str, Any] = response.json()["listing"]
        return listing

    def publish_release(
        self, publisher: Caller, listing_id: str, version: str = "1.0.0", **overrides: Any
    ) -> dict[str, Any]:
        response = self.post(
            f"/v1/publisher/listings/{listing_id}/releases",
            publisher,
            release_payload(version, **overrides),
        )
        assert response.status_code == 201, response.text
        release: dict[str, Any] = response.json()["release"]
        return release

    def set_status(self, publisher: Caller, listing_id: str, status: str) -> httpx.Response:
        return self.post(
            f"/v1/publisher/listings/{listing_id}/status", publisher, {"status": status}
        )

    def published(
        self, publisher: Caller, version: str = "1.0.0", **overrides: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A published listing with one release."""
        listing = self.create_listing(publisher, **overrides)
        release = self.publish_release(publisher, listing["listingId"], version)
        response = self.set_status(publisher, listing["listingId"], "published")
        assert response.status_code == 200, response.text
        return listing, release

    def intent(
        self, buyer: Caller, listing_id: str, release_id: str, target: str = "whs"
    ) -> dict[str, Any]:
        response = self.post(
            "/v1/install/intents",
            buyer,
            {"listingId": listing_id, "releaseId": release_id, "targetSystem": target},
        )
        assert response.status_code == 201, response.text
        intent: dict[str, Any] = response.json()["installIntent"]
        return intent

    def token(self, buyer: Caller, intent_id: str) -> dict[str, Any]:
        response = self.post(f"/v1/install/intents/{intent_id}/token", buyer)
        assert response.status_code == 201, response.text
        issued: dict[str, Any] = response.json()
        return issued

    def installable(self, target: str = "whs") -> tuple[Caller, dict[str, Any], str]:
        """A buyer, an intent on a published release and a fresh install token."""
        publisher, buyer = self.publisher(), self.buyer()
        listing, release = self.published(publisher)
        intent = self.intent(buyer, listing["listingId"], release["releaseId"], target)
        issued = self.token(buyer, intent["installIntentId"])
        return buyer, intent, issued["installToken"]

    def redeem(
        self,
        install_token: str,
        target: str = "whs",
        *,
        source: str = "whs",
        key: bytes = REDEEM_SECRET,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        """A correctly signed redemption (``headers``/``body`` override parts of it)."""
        signed = signed_redeem_request(
            install_token, target, key=key, source=source, now_ms=self.clock.now_ms()
        )
        sent = {**signed.headers, **(headers or {})}
        return self.client.post(REDEEM_PATH, content=body or signed.body, headers=sent)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redeem_secrets": (REDEEM_SECRET,),
        "cursor_key": CURSOR_KEY,
        "image_hosts": frozenset({IMAGE_HOST}),
        "rate_limits": RateLimits(),
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def open_api(
    name: str, database_url: str, clock: ManualClock | None = None, **overrides: Any
) -> Iterator[Api]:
    """A started app on ``database_url`` (already migrated and emptied by the caller)."""
    clock = clock or ManualClock()
    settings = settings_for(database_url, **overrides)
    app = create_app(settings, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(name, client, clock, settings)


#: name → (engine opener) for the HTTP suites; engines live for the session.
DATABASES: dict[str, Callable[[Path], sa.Engine]] = {
    "sqlite": sqlite_engine,
    "postgres": lambda _directory: postgres_engine(),
}


def database_url(engine: sa.Engine) -> str:
    """The engine's URL with its password (tests run with trust auth)."""
    empty(engine)
    return engine.url.render_as_string(hide_password=False)
