"""The §5 error envelope on every error path of every endpoint (real app, SQLite and
PostgreSQL).

``ROUTES`` describes each endpoint of §5 (P1–P3, B1–B9, I1–I5, X1, A1–A4, H1);
:func:`cases` turns a route into every error it can reach — no credentials, a bad
bearer, the wrong role, an unknown id, an invalid body or query, unreadable JSON, a
missing ``Idempotency-Key``, a non-JSON media type, a body over 256 KiB, a wrong
method — and each answer must be the envelope with ``requestId`` equal to the
``X-Request-Id`` header and nothing of the server's insides (traceback, SQL,
exception names). A test checks that the table covers every route the app serves.
An unexpected exception in a use case is a bare ``INTERNAL`` in the answer and in
the logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import attrs
import httpx
import pytest

from contract.http_checks import assert_error, assert_no_internals
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api, Caller
from contract.http_live import captured_logs
from fleetprompt_core.policies.signing import signed_headers
from fleetprompt_core.policies.tokens import generate_token
from support import listing_payload, release_payload

UNKNOWN: Final = {
    "listing": "lst_01JUNKNOWN000000000000000",
    "release": "rel_01JUNKNOWN000000000000000",
    "intent": "ii_01JUNKNOWN000000000000000",
    "user": "usr_01JUNKNOWN000000000000000",
    "publisher": "usr_01JUNKNOWN000000000000000",
}
TOO_LARGE_BODY: Final = b'{"name": "' + b"x" * (256 * 1024) + b'"}'
BAD_BEARER: Final = {"Authorization": "Bearer fpat_not-a-real-token"}


@attrs.define
class World:
    """The resources an endpoint's path can name, owned by the right callers."""

    api: Api
    publisher: Caller
    buyer: Caller
    admin: Caller
    ids: dict[str, str]

    @classmethod
    def build(cls, api: Api) -> World:
        publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
        listing, release = api.published(publisher)
        intent = api.intent(buyer, listing["listingId"], release["releaseId"])
        ids = {
            "listing": listing["listingId"],
            "release": release["releaseId"],
            "intent": intent["installIntentId"],
            "user": buyer.user_id,
            "publisher": publisher.user_id,
        }
        return cls(api, publisher, buyer, admin, ids)

    def caller(self, role: str | None) -> Caller | None:
        return {"publisher": self.publisher, "buyer": self.buyer, "admin": self.admin}.get(
            role or ""
        )


@attrs.frozen
class Route:
    """One endpoint of §5 and what its error paths need."""

    id: str
    method: str
    #: The path with ``{listing}``, ``{release}``, ``{intent}``, ``{user}`` or ``{publisher}``.
    path: str
    #: Who may call it: ``None`` (anyone), ``"buyer"`` (any signed-in user), ``"publisher"``,
    #: ``"admin"``.
    who: str | None
    #: A valid JSON body (``None``: the endpoint reads no body).
    body: Callable[[World], object] | None = None
    #: An invalid body (or query, for a GET) and the field it fails on.
    invalid: tuple[object, str] | None = None
    key_required: bool = False
    #: A method the path does not have.
    wrong_method: str = "DELETE"


def _id(name: str) -> str:
    return "{" + name + "}"


ROUTES: Final = (
    Route(
        "P1",
        "GET",
        "/v1/public/listings/search",
        None,
        invalid=({"limit": "0"}, "limit"),
        wrong_method="POST",
    ),
    Route("P2", "GET", f"/v1/public/listings/{_id('listing')}", None),
    Route(
        "P3",
        "GET",
        f"/v1/public/listings/{_id('listing')}/releases",
        None,
        invalid=({"limit": "201"}, "limit"),
        wrong_method="POST",
    ),
    Route(
        "B1",
        "GET",
        "/v1/publisher/listings",
        "publisher",
        invalid=({"status": "bogus"}, "status"),
    ),
    Route(
        "B2",
        "POST",
        "/v1/publisher/listings",
        "publisher",
        body=lambda w: listing_payload(),
        invalid=(listing_payload(name=""), "name"),
        key_required=True,
    ),
    Route("B3", "GET", f"/v1/publisher/listings/{_id('listing')}", "publisher"),
    Route(
        "B4",
        "PATCH",
        f"/v1/publisher/listings/{_id('listing')}",
        "publisher",
        body=lambda w: {"summary": "New."},
        invalid=({"name": ""}, "name"),
    ),
    Route(
        "B5",
        "POST",
        f"/v1/publisher/listings/{_id('listing')}/status",
        "publisher",
        body=lambda w: {"status": "unlisted"},
        invalid=({"status": "bogus"}, "status"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "B6",
        "POST",
        f"/v1/publisher/listings/{_id('listing')}/releases",
        "publisher",
        body=lambda w: release_payload("2.0.0"),
        invalid=(release_payload("not a version!"), "version"),
        key_required=True,
    ),
    Route(
        "B7",
        "GET",
        f"/v1/publisher/listings/{_id('listing')}/releases",
        "publisher",
        invalid=({"limit": "abc"}, "limit"),
    ),
    Route(
        "B8",
        "POST",
        f"/v1/publisher/releases/{_id('release')}/revoke",
        "publisher",
        body=lambda w: {"reason": "bad"},
        invalid=({"reason": 5}, "reason"),
        key_required=True,
        wrong_method="GET",
    ),
    Route("B9-get", "GET", "/v1/publisher/profile", "publisher"),
    Route(
        "B9-put",
        "PUT",
        "/v1/publisher/profile",
        "publisher",
        body=lambda w: {"displayName": "Acme"},
        invalid=({"displayName": ""}, "displayName"),
    ),
    Route(
        "I1",
        "POST",
        "/v1/install/intents",
        "buyer",
        body=lambda w: {"listingId": w.ids["listing"], "targetSystem": "whs"},
        invalid=({"listingId": "lst_x", "targetSystem": "ftp"}, "targetSystem"),
        key_required=True,
    ),
    Route(
        "I2",
        "GET",
        "/v1/install/intents",
        "buyer",
        invalid=({"status": "bogus"}, "status"),
    ),
    Route("I3", "GET", f"/v1/install/intents/{_id('intent')}", "buyer"),
    Route(
        "I4",
        "POST",
        f"/v1/install/intents/{_id('intent')}/token",
        "buyer",
        body=lambda w: {"ttlMs": 120_000},
        invalid=({"ttlMs": 1}, "ttlMs"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "I5",
        "POST",
        f"/v1/install/intents/{_id('intent')}/cancel",
        "buyer",
        body=lambda w: {},
        invalid=({"unexpected": 1}, "unexpected"),
        key_required=True,
        wrong_method="GET",
    ),
    Route("X1", "POST", REDEEM_PATH, "system", wrong_method="GET"),
    Route(
        "A1-suspend",
        "POST",
        f"/v1/admin/listings/{_id('listing')}/suspend",
        "admin",
        body=lambda w: {"reason": "spam"},
        invalid=({"reason": 5}, "reason"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "A1-unsuspend",
        "POST",
        f"/v1/admin/listings/{_id('listing')}/unsuspend",
        "admin",
        body=lambda w: {},
        invalid=({"reason": ["x"]}, "reason"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "A2",
        "POST",
        f"/v1/admin/users/{_id('user')}/roles",
        "admin",
        body=lambda w: {"grant": ["publisher"]},
        invalid=({"grant": ["emperor"]}, "grant[0]"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "A3",
        "POST",
        f"/v1/admin/publishers/{_id('publisher')}/verification",
        "admin",
        body=lambda w: {"status": "verified"},
        invalid=({"status": "bogus"}, "status"),
        key_required=True,
        wrong_method="GET",
    ),
    Route(
        "A4",
        "GET",
        "/v1/admin/audit",
        "admin",
        invalid=({"limit": "0"}, "limit"),
        wrong_method="POST",
    ),
    Route("H1", "GET", "/healthz", None, wrong_method="POST"),
    # §13: the RFC 9728 metadata of /mcp (the MCP transport itself is tested in test_mcp.py).
    Route("M1", "GET", "/.well-known/oauth-protected-resource/mcp", None, wrong_method="POST"),
    # Readiness (issue 14 item 11): an operations endpoint beside §5's table.
    Route("H2", "GET", "/readyz", None, wrong_method="POST"),
    # Who am I (issue 15): beside §5's table.
    Route("ME", "GET", "/v1/me", "buyer", wrong_method="POST"),
)


@attrs.frozen
class Case:
    """One request and the error it must answer."""

    name: str
    method: str
    path: str
    status: int
    code: str
    field: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    #: Send ``content`` in chunks, without a Content-Length.
    chunked: bool = False

    def body(self) -> bytes | Iterator[bytes] | None:
        if self.content is None or not self.chunked:
            return self.content
        content = self.content
        return (content[i : i + 16_384] for i in range(0, len(content), 16_384))


def _path(route: Route, ids: Mapping[str, str]) -> str:
    path = route.path
    for name, value in ids.items():
        path = path.replace(_id(name), value)
    return path


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _redeem_cases(world: World) -> list[Case]:
    """X1's error paths: authentication is the HMAC signature, not a bearer."""
    now = world.api.clock.now_ms()

    def signed(body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            **signed_headers(body, REDEEM_SECRET, "whs", now),
        }

    unknown = _json({"installToken": generate_token("fpit_"), "targetSystem": "whs"})
    invalid = _json({"installToken": 5, "targetSystem": "whs"})
    return [
        Case(
            "no-credentials",
            "POST",
            REDEEM_PATH,
            401,
            "UNAUTHENTICATED",
            headers={"Content-Type": "application/json"},
            content=unknown,
        ),
        Case(
            "bad-signature",
            "POST",
            REDEEM_PATH,
            401,
            "UNAUTHENTICATED",
            headers={**signed(unknown), "X-WHS-Delegation-Signature": "v1=" + "0" * 64},
            content=unknown,
        ),
        Case(
            "bearer-instead-of-signature",
            "POST",
            REDEEM_PATH,
            401,
            "UNAUTHENTICATED",
            headers={**world.admin.headers(), "Content-Type": "application/json"},
            content=unknown,
        ),
        Case(
            "unknown-token",
            "POST",
            REDEEM_PATH,
            404,
            "NOT_FOUND",
            headers=signed(unknown),
            content=unknown,
        ),
        Case(
            "invalid-body",
            "POST",
            REDEEM_PATH,
            400,
            "VALIDATION_FAILED",
            "installToken",
            headers=signed(invalid),
            content=invalid,
        ),
        Case(
            "invalid-json",
            "POST",
            REDEEM_PATH,
            400,
            "VALIDATION_FAILED",
            "installToken",
            headers=signed(b"{not json"),
            content=b"{not json",
        ),
        Case(
            "too-large",
            "POST",
            REDEEM_PATH,
            413,
            "TOO_LARGE",
            headers=signed(TOO_LARGE_BODY),
            content=TOO_LARGE_BODY,
        ),
        Case(
            "too-large-chunked",
            "POST",
            REDEEM_PATH,
            413,
            "TOO_LARGE",
            headers=signed(TOO_LARGE_BODY),
            content=TOO_LARGE_BODY,
            chunked=True,
        ),
        Case("wrong-method", "GET", REDEEM_PATH, 405, "UNSUPPORTED"),
    ]


def cases(route: Route, world: World) -> list[Case]:
    """Every error ``route`` can reach, with its expected status, code and field."""
    if route.id == "X1":
        return _redeem_cases(world)
    path = _path(route, world.ids)
    caller = world.caller(route.who)
    own = dict(caller.headers() if caller else {})
    key = {"Idempotency-Key": f"envelope-{route.id}"} if route.body is not None else {}
    json_type = {"Content-Type": "application/json"}
    body = _json(route.body(world)) if route.body is not None else None
    found: list[Case] = []

    def add(name: str, status: int, code: str, field: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {**own, **key, **(json_type if body else {})})
        kw.setdefault("content", body)
        found.append(
            Case(
                name,
                kw.pop("method", route.method),
                kw.pop("path", path),
                status,
                code,
                field,
                **kw,
            )
        )

    if route.who is not None:
        add("no-credentials", 401, "UNAUTHENTICATED", headers={**key, **json_type})
    if route.id not in ("H1", "H2"):
        add("bad-bearer", 401, "UNAUTHENTICATED", headers={**BAD_BEARER, **key, **json_type})
        add(
            "bad-scheme",
            401,
            "UNAUTHENTICATED",
            headers={"Authorization": "Basic dXNlcjpwYXNz", **key, **json_type},
        )
    if route.who == "publisher":
        add(
            "wrong-role", 403, "UNAUTHORIZED", headers={**world.buyer.headers(), **key, **json_type}
        )
    if route.who == "admin":
        add(
            "wrong-role",
            403,
            "UNAUTHORIZED",
            headers={**world.publisher.headers(), **key, **json_type},
        )
    if "{" in route.path:
        add("unknown-id", 404, "NOT_FOUND", path=_path(route, UNKNOWN))
    if route.invalid is not None:
        invalid, field = route.invalid
        if route.body is None:
            add("invalid-query", 400, "VALIDATION_FAILED", field, params=invalid)
        else:
            add("invalid-body", 400, "VALIDATION_FAILED", field, content=_json(invalid))
    if route.body is not None:
        add("invalid-json", 400, "VALIDATION_FAILED", "body", content=b"{not json")
        add("json-array", 400, "VALIDATION_FAILED", "body", content=b"[]")
        add("non-json", 415, "UNSUPPORTED", headers={**own, **key, "Content-Type": "text/plain"})
        add(
            "form-encoded",
            415,
            "UNSUPPORTED",
            headers={**own, **key, "Content-Type": "application/x-www-form-urlencoded"},
            content=b"name=x",
        )
        add("too-large", 413, "TOO_LARGE", content=TOO_LARGE_BODY)
        add("too-large-chunked", 413, "TOO_LARGE", content=TOO_LARGE_BODY, chunked=True)
    if route.key_required:
        add(
            "missing-key", 400, "VALIDATION_FAILED", "Idempotency-Key", headers={**own, **json_type}
        )
    add("wrong-method", 405, "UNSUPPORTED", method=route.wrong_method, content=None)
    return found


def _check(response: httpx.Response, case: Case) -> None:
    assert_error(response, case.status, case.code, case.field)
    assert_no_internals(response.text)
    assert "set-cookie" not in response.headers


#: The routes by surface: one app and world per group keeps the table fast.
GROUPS: Final = {
    "P1-P3": ("P",),
    "B1-B9": ("B",),
    "I1-I5": ("I",),
    "X1": ("X",),
    "A1-A4": ("A",),
    "H1": ("H",),
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_error_path_of_every_endpoint_answers_the_envelope(api: Api, group: str) -> None:
    """Every reachable error of every endpoint is the clean §5 envelope with its request id."""
    world = World.build(api)
    routes = [route for route in ROUTES if route.id.startswith(GROUPS[group])]
    assert routes, group
    failures = []
    for route in routes:
        table = cases(route, world)
        assert table, route.id
        for case in table:
            response = api.client.request(
                case.method,
                case.path,
                content=case.body(),
                headers=dict(case.headers),
                params=case.params,
            )
            try:
                _check(response, case)
            except AssertionError as error:
                failures.append(f"{route.id} {case.name}: {error}")
    assert not failures, "\n".join(failures)


def test_the_route_table_covers_every_endpoint_the_app_serves(api: Api) -> None:
    """Every (method, path) the app serves, but the OpenAPI and web pages, is in ROUTES."""
    served = set()
    for route in api.client.app.routes:
        path = route.path
        handlers = getattr(route, "route_handlers", ())
        if path.startswith(("/schema", "/static")) or any(
            h.fn.__module__.startswith("fleetprompt_http.web") for h in handlers
        ):
            continue
        for method in getattr(route, "methods", ()):
            if method not in ("OPTIONS", "HEAD"):
                served.add((method, path.replace(":str}", "}")))
    table = set()
    for route in ROUTES:
        path = route.path
        for placeholder, name in (
            ("{listing}", "{listing_id}"),
            ("{release}", "{release_id}"),
            ("{intent}", "{install_intent_id}"),
            ("{user}", "{user_id}"),
            ("{publisher}", "{publisher_id}"),
        ):
            path = path.replace(placeholder, name)
        table.add((route.method, path))
    assert served == table


UNKNOWN_PATHS: Final = (
    ("GET", "/nope"),
    ("GET", "/v1"),
    ("POST", "/v1/public/listings"),
    ("GET", "/v1/public/listings/a/b/c"),
    ("DELETE", "/v1/internal/install"),
    ("GET", "/v1/admin"),
    ("GET", "/v2/public/listings/search"),
    ("GET", "/v1/public/listings/search/../../../etc/passwd"),
    ("PATCH", "/v1/install/intents/ii_x/token/extra"),
)


def test_unknown_paths_answer_the_not_found_envelope(api: Api) -> None:
    """A path no route serves is the NOT_FOUND envelope with the header's request id."""
    for method, path in UNKNOWN_PATHS:
        response = api.client.request(method, path, headers=BAD_BEARER)
        assert_error(response, 404, "NOT_FOUND")
        assert_no_internals(response.text)


def test_every_response_carries_a_fresh_request_id(api: Api) -> None:
    """Every response, success too, carries its own server-made X-Request-Id."""
    responses = [
        api.get("/healthz"),
        api.get("/v1/public/listings/search"),
        api.get("/healthz", headers={"X-Request-Id": "req_chosen_by_client"}),
        api.get("/nope", headers={"X-Request-Id": "req_chosen_by_client"}),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    assert "req_chosen_by_client" not in ids
    assert all(i.startswith("req_") for i in ids)
    assert responses[0].json() == {"ok": True, "version": responses[0].json()["version"]}


def test_405_answers_name_the_allowed_methods(api: Api) -> None:
    """A wrong method's 405 carries an Allow header listing the path's methods (RFC 9110)."""
    for method, path, allowed in (
        ("DELETE", "/v1/publisher/listings", {"GET", "POST"}),
        ("GET", "/v1/publisher/releases/rel_x/revoke", {"POST"}),
        ("POST", "/healthz", {"GET"}),
        ("GET", REDEEM_PATH, {"POST"}),
    ):
        response = api.client.request(method, path)
        assert_error(response, 405, "UNSUPPORTED")
        allow = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
        assert allowed <= allow, (method, path, dict(response.headers))


def test_x1_refuses_a_non_json_media_type_even_when_signed(api: Api) -> None:
    """X1 takes JSON only: a signed text/plain or form body is 415 and redeems nothing."""
    buyer, intent, raw = api.installable()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = api.redeem(raw, headers={"Content-Type": content_type})
        assert_error(response, 415, "UNSUPPORTED")
    view = api.get(f"/v1/install/intents/{intent['installIntentId']}", buyer)
    assert view.json()["installIntent"]["status"] == "token_issued"


def test_an_unexpected_exception_is_a_bare_internal_error(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A use case raising is a bare 500 INTERNAL: no message or traceback in answer or logs."""
    secret_message = "SELECT secret FROM users WHERE token = 'fpit_leak'"

    def explode(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError(secret_message)

    publisher = api.publisher()
    monkeypatch.setattr(api.fp.catalog, "search", explode)
    monkeypatch.setattr(api.fp.publishing, "create_listing", explode)
    with captured_logs("DEBUG") as logs:
        responses = [
            api.get("/v1/public/listings/search"),
            api.post("/v1/publisher/listings", publisher, listing_payload()),
        ]
    for response in responses:
        error = assert_error(response, 500, "INTERNAL")
        assert error["message"] == "Internal error."
        assert error["details"] == {}
        assert_no_internals(response.text)
        for fragment in ("SELECT", "secret", "fpit_leak", "RuntimeError", "explode"):
            assert fragment not in response.text
    text = logs.text
    for fragment in ("SELECT secret", "fpit_leak", "Traceback", 'File "', "explode"):
        assert fragment not in text, fragment
    records = logs.records()
    for response in responses:
        request_id = response.headers["x-request-id"]
        mine = [r for r in records if r.get("requestId") == request_id]
        assert any(r.get("status") == 500 for r in mine), mine
        assert any(r.get("level") == "error" for r in mine), mine
