"""Resilience acceptance over HTTP (real app, SQLite and PostgreSQL): R-IDEMP-01..04,
R-TOK-01..03 and R-PAG-01..02.

Mirrors ``tests/unit/test_app_resilience.py`` at the wire. Concurrency runs on a
real uvicorn server (one ``httpx.Client`` per thread; the ``TestClient`` is not
thread-safe), including two server instances sharing one database. Transient
storage failures are injected by swapping a use-case group of the running app
for one whose unit of work fails its next mutating commit.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import attrs
import httpx
import pytest

from contract import http_harness
from contract.http_checks import (
    assert_error,
    assert_no_internals,
    error_shape,
    walk_pages,
)
from contract.http_harness import Api, Caller
from contract.http_live import serve
from fleetprompt_core import FleetPrompt
from fleetprompt_core.policies.tokens import generate_token
from fleetprompt_core.services.installs import Installs
from fleetprompt_core.services.redemption import Redeemer
from support import listing_payload, release_payload

REPLAYED = "idempotent-replayed"


@attrs.define
class World:
    """A publisher with a published listing, a buyer with an open intent, an admin."""

    api: Api
    publisher: Caller
    buyer: Caller
    admin: Caller
    listing: dict[str, Any]
    release: dict[str, Any]
    intent: dict[str, Any]

    @classmethod
    def build(cls, api: Api) -> World:
        publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
        listing, release = api.published(publisher)
        intent = api.intent(buyer, listing["listingId"], release["releaseId"])
        return cls(api, publisher, buyer, admin, listing, release, intent)

    @property
    def lid(self) -> str:
        return str(self.listing["listingId"])

    @property
    def iid(self) -> str:
        return str(self.intent["installIntentId"])

    def audit(self) -> list[dict[str, Any]]:
        return walk_pages(self.api, "/v1/admin/audit", self.admin, limit=200)


@attrs.frozen
class Write:
    """One retryable write: who sends what where, and its success status."""

    caller: Caller
    method: str
    path: str
    body: object
    status: int

    def send(self, api: Api, key: str | None, body: object = ...) -> httpx.Response:
        sent = self.body if body is ... else body
        return api.post(self.path, self.caller, sent, key=key, method=self.method)


def _writes(w: World) -> dict[str, Write]:
    """Every endpoint that takes an Idempotency-Key (required or accepted), by name."""
    api = w.api
    someone = api.buyer()
    return {
        "B2-create-listing": Write(
            w.publisher, "POST", "/v1/publisher/listings", listing_payload(), 201
        ),
        "B4-update-listing": Write(
            w.publisher, "PATCH", f"/v1/publisher/listings/{w.lid}", {"summary": "Patched."}, 200
        ),
        "B5-change-status": Write(
            w.publisher,
            "POST",
            f"/v1/publisher/listings/{w.lid}/status",
            {"status": "unlisted"},
            200,
        ),
        "B6-publish-release": Write(
            w.publisher,
            "POST",
            f"/v1/publisher/listings/{w.lid}/releases",
            release_payload("2.0.0"),
            201,
        ),
        "B8-revoke-release": Write(
            w.publisher,
            "POST",
            f"/v1/publisher/releases/{w.release['releaseId']}/revoke",
            {"reason": "bad"},
            200,
        ),
        "B9-put-profile": Write(
            w.publisher,
            "PUT",
            "/v1/publisher/profile",
            {"displayName": "Acme", "bioMarkdown": "**hi**"},
            200,
        ),
        "I1-create-intent": Write(
            w.buyer,
            "POST",
            "/v1/install/intents",
            {"listingId": w.lid, "releaseId": w.release["releaseId"], "targetSystem": "whs"},
            201,
        ),
        "I4-issue-token": Write(
            w.buyer, "POST", f"/v1/install/intents/{w.iid}/token", {"ttlMs": 120_000}, 201
        ),
        "I5-cancel-intent": Write(
            w.buyer, "POST", f"/v1/install/intents/{w.iid}/cancel", None, 200
        ),
        "A1-suspend": Write(
            w.admin, "POST", f"/v1/admin/listings/{w.lid}/suspend", {"reason": "spam"}, 200
        ),
        "A2-change-roles": Write(
            w.admin,
            "POST",
            f"/v1/admin/users/{someone.user_id}/roles",
            {"grant": ["publisher"]},
            200,
        ),
        "A3-set-verification": Write(
            w.admin,
            "POST",
            f"/v1/admin/publishers/{w.publisher.user_id}/verification",
            {"status": "verified", "reason": "docs"},
            200,
        ),
    }


#: Every write taking a key, in an order where each one's effect leaves the next possible
#: on one shared world (the suspension last, the cancel after the token issue, ...).
ORDER = (
    "B2-create-listing",
    "B4-update-listing",
    "B6-publish-release",
    "B9-put-profile",
    "I1-create-intent",
    "I4-issue-token",
    "A2-change-roles",
    "A3-set-verification",
    "B5-change-status",
    "I5-cancel-intent",
    "B8-revoke-release",
    "A1-suspend",
)
#: Endpoints whose key is required (§6); B4 and B9 only accept one.
REQUIRED = tuple(case for case in ORDER if case not in ("B4-update-listing", "B9-put-profile"))

#: A different request for the same endpoint (same key ⇒ CONFLICT).
DIFFERENT: dict[str, object] = {
    "B2-create-listing": listing_payload(name="Another name"),
    "B4-update-listing": {"summary": "Other."},
    "B5-change-status": {"status": "draft"},
    "B6-publish-release": release_payload("3.0.0"),
    "B8-revoke-release": {"reason": "worse"},
    "B9-put-profile": {"displayName": "Other"},
    "I1-create-intent": {"listingId": "lst_other", "targetSystem": "whs"},
    "I4-issue-token": {"ttlMs": 180_000},
    "I5-cancel-intent": {},
    "A1-suspend": {"reason": "other"},
    "A2-change-roles": {"grant": ["admin"]},
    "A3-set-verification": {"status": "failed", "reason": "no docs"},
}


# --------------------------------------------------------------------------- R-IDEMP-01


def test_r_idemp_01_replay_returns_the_same_status_and_body(api: Api) -> None:
    """Every keyed write replays its stored status and body, marked, writing nothing."""
    world = World.build(api)
    writes = _writes(world)
    firsts = {}
    for case in ORDER:
        first = writes[case].send(api, f"replay-{case}")
        assert first.status_code == writes[case].status, (case, first.text)
        assert REPLAYED not in first.headers, case
        firsts[case] = first
    audit_after_firsts = world.audit()
    api.clock.advance(60 * 60 * 1000)
    for case in ORDER:
        first = firsts[case]
        expected = first.json()
        if case == "I4-issue-token":
            assert expected["installToken"]
            expected = {**expected, "installToken": None}
        for _ in range(2):
            replay = writes[case].send(api, f"replay-{case}")
            assert replay.status_code == first.status_code, case
            assert replay.headers.get(REPLAYED) == "true", case
            assert replay.json() == expected, case
            assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert world.audit() == audit_after_firsts


# --------------------------------------------------------------------------- R-IDEMP-02


def test_r_idemp_02_same_key_different_request_is_conflict(api: Api) -> None:
    """Same key with another body or path is 409 CONFLICT on every keyed write."""
    world = World.build(api)
    writes = _writes(world)
    other, _ = api.published(world.publisher, name="Other listing")
    for case in ORDER:
        write = writes[case]
        first = write.send(api, "conflict-key")
        assert first.status_code == write.status, (case, first.text)
        audit_after_first = world.audit()
        conflict = write.send(api, "conflict-key", DIFFERENT[case])
        assert_error(conflict, 409, "CONFLICT")
        assert REPLAYED not in conflict.headers, case
        if case == "B5-change-status":  # same endpoint template, another listing
            elsewhere = api.post(
                f"/v1/publisher/listings/{other['listingId']}/status",
                world.publisher,
                {"status": "unlisted"},
                key="conflict-key",
            )
            assert_error(elsewhere, 409, "CONFLICT")
        assert world.audit() == audit_after_first, case
        replay = write.send(api, "conflict-key")
        assert replay.headers.get(REPLAYED) == "true", case


# --------------------------------------------------------------------------- R-IDEMP-03


def test_r_idemp_03_missing_or_invalid_key_is_refused_and_stores_nothing(api: Api) -> None:
    """Missing or invalid keys are 400 on Idempotency-Key; refused requests store nothing."""
    world = World.build(api)
    writes = _writes(world)
    audit_before = world.audit()
    bad_keys: tuple[str | bytes, ...] = ("", "x" * 256, "ключ".encode(), "tab\tkey", "a\x7fb")
    for case in REQUIRED:
        write = writes[case]
        refused = write.send(api, None)
        assert_error(refused, 400, "VALIDATION_FAILED", "Idempotency-Key")
        for bad_key in bad_keys:
            response = api.post(
                write.path,
                write.caller,
                write.body,
                key=None,
                headers={"Idempotency-Key": bad_key},  # type: ignore[dict-item]
                method=write.method,
            )
            assert_error(response, 400, "VALIDATION_FAILED", "Idempotency-Key")
        invalid = write.send(api, f"late-{case}", {"unexpected": True})
        assert_error(invalid, 400, "VALIDATION_FAILED")
    assert world.audit() == audit_before
    for case in REQUIRED:
        write = writes[case]
        ran = write.send(api, f"late-{case}")
        assert ran.status_code == write.status, (case, ran.text)
        assert REPLAYED not in ran.headers, case
    longest = writes["B2-create-listing"].send(api, "k" * 255)  # 255 printable: a valid key
    assert longest.status_code == 201, longest.text


# --------------------------------------------------------------------------- R-IDEMP-04


def _hammer(
    base_urls: list[str], requests: int, send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``requests`` simultaneous calls of ``send``, spread over the servers, one client each."""
    barrier = threading.Barrier(requests)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def worker(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            barrier.wait()
            response = send(client)
            response.read()
        with lock:
            responses.append(response)

    threads = [
        threading.Thread(target=worker, args=(url,))
        for url in itertools.islice(itertools.cycle(base_urls), requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(responses) == requests
    return responses


def _one_winner(responses: list[httpx.Response], status: int) -> list[httpx.Response]:
    """All answers are the success (first or replayed) or an in-progress 409; one ran."""
    ok = [r for r in responses if r.status_code == status]
    for response in responses:
        if response.status_code != status:
            assert_error(response, 409, "CONFLICT")
    fresh = [r for r in ok if REPLAYED not in r.headers]
    assert len(fresh) == 1, [(r.status_code, dict(r.headers)) for r in responses]
    return ok


def test_r_idemp_04_concurrent_duplicates_on_two_servers_create_one_listing(api: Api) -> None:
    """Eight concurrent identical creates on two servers sharing one database: one listing."""
    publisher = api.publisher()
    body = listing_payload(name="Raced listing")
    headers = publisher.headers("race-key")
    with ExitStack() as stack:
        second = stack.enter_context(
            http_harness.open_api("second", api.settings.database_url, clock=api.clock)
        )
        urls = [
            stack.enter_context(serve(api.client.app)),
            stack.enter_context(serve(second.client.app)),
        ]
        responses = _hammer(
            urls, 8, lambda c: c.post("/v1/publisher/listings", json=body, headers=headers)
        )
    ok = _one_winner(responses, 201)
    assert len({r.json()["listing"]["listingId"] for r in ok}) == 1
    listings = api.get("/v1/publisher/listings", publisher).json()["items"]
    assert [item["name"] for item in listings] == ["Raced listing"]


def test_r_idemp_04_concurrent_duplicate_token_issues_mint_one_token(api: Api) -> None:
    """Eight simultaneous token issues with one key mint one token, shown once."""
    world = World.build(api)
    audit_before = world.audit()
    headers = world.buyer.headers("token-race")
    with serve(api.client.app) as url:
        responses = _hammer(
            [url], 8, lambda c: c.post(f"/v1/install/intents/{world.iid}/token", headers=headers)
        )
    ok = _one_winner(responses, 201)
    raws = [r.json()["installToken"] for r in ok]
    assert len([raw for raw in raws if raw]) == 1
    issued = [e for e in world.audit() if e["type"] == "install_token.issued"]
    assert len(issued) == len([e for e in audit_before if e["type"] == "install_token.issued"]) + 1
    (raw,) = [raw for raw in raws if raw]
    assert api.redeem(raw).status_code == 200


# --------------------------------------------------------------------------- R-TOK-01


def test_r_tok_01_token_expiry_boundary(api: Api) -> None:
    """A token redeems 1 ms before expiresAtMs and is the unknown 404 at it; TTL bounds hold."""
    world = World.build(api)
    now = api.clock.now_ms()
    default = api.post(f"/v1/install/intents/{world.iid}/token", world.buyer)
    assert default.json()["expiresAtMs"] == now + 15 * 60 * 1000
    for ttl in (59_999, 3_600_001, 0, -1, "60000", 1.5):
        response = api.post(f"/v1/install/intents/{world.iid}/token", world.buyer, {"ttlMs": ttl})
        assert_error(response, 400, "VALIDATION_FAILED", "ttlMs")
    for ttl in (60_000, 3_600_000):
        response = api.post(f"/v1/install/intents/{world.iid}/token", world.buyer, {"ttlMs": ttl})
        assert response.json()["expiresAtMs"] == now + ttl

    unknown = error_shape(api.redeem(generate_token("fpit_")))
    lid, rid = world.lid, world.release["releaseId"]
    early = api.intent(world.buyer, lid, rid)
    late = api.intent(world.buyer, lid, rid)
    start = api.clock.now_ms()
    tokens = {}
    for intent in (early, late):
        response = api.post(
            f"/v1/install/intents/{intent['installIntentId']}/token",
            world.buyer,
            {"ttlMs": 60_000},
        )
        assert response.json()["expiresAtMs"] == start + 60_000
        tokens[intent["installIntentId"]] = response.json()["installToken"]
    api.clock.set(start + 59_999)
    assert api.redeem(tokens[early["installIntentId"]]).status_code == 200
    api.clock.set(start + 60_000)
    assert error_shape(api.redeem(tokens[late["installIntentId"]])) == unknown
    late_view = api.get(f"/v1/install/intents/{late['installIntentId']}", world.buyer)
    assert late_view.json()["installIntent"]["status"] == "token_issued"


# --------------------------------------------------------------------------- R-TOK-02


def test_r_tok_02_reissue_revokes_earlier_tokens(api: Api) -> None:
    """Each re-issue revokes every earlier token of the intent; cancel revokes the last."""
    world = World.build(api)
    unknown = error_shape(api.redeem(generate_token("fpit_")))
    raws = []
    for _ in range(3):
        raws.append(api.token(world.buyer, world.iid)["installToken"])
        api.clock.advance(1_000)
    issued = [e for e in world.audit() if e["type"] == "install_token.issued"]
    assert [e["details"]["revokedTokens"] for e in reversed(issued)] == [0, 1, 1]
    for raw in raws[:2]:
        assert error_shape(api.redeem(raw)) == unknown
    assert api.redeem(raws[2]).status_code == 200

    other = api.intent(world.buyer, world.lid, world.release["releaseId"])
    newest = api.token(world.buyer, other["installIntentId"])["installToken"]
    cancel = api.post(f"/v1/install/intents/{other['installIntentId']}/cancel", world.buyer)
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["installIntent"]["status"] == "canceled"
    assert error_shape(api.redeem(newest)) == unknown


# --------------------------------------------------------------------------- R-TOK-03


class _Switch:
    """Fails the next ``failures`` commits of units of work that wrote an audit event."""

    def __init__(self) -> None:
        self.failures = 0
        self.raised = 0


class _FlakyUnitOfWork:
    """A unit of work whose commit raises a transient error when the switch says so.

    Only commits of a mutation fail (those that appended an audit event, directly or
    through the redemption's one write, ``tokens.redeem``, which stores its audit row
    itself), never the idempotency claim's own commit, so the failure lands after the
    work was done.
    """

    def __init__(self, inner: Any, switch: _Switch) -> None:
        self._inner = inner
        self._switch = switch
        self._audited = False

    def __enter__(self) -> _FlakyUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        if name == "audit":
            self._audited = True
        if name == "tokens":
            return _AuditingTokens(self._inner.tokens, self)
        return getattr(self._inner, name)

    def mark_audited(self) -> None:
        self._audited = True

    def commit(self) -> None:
        if self._audited and self._switch.failures:
            self._switch.failures -= 1
            self._switch.raised += 1
            raise RuntimeError("transient storage failure: SELECT secret FROM tokens")
        self._inner.commit()


class _AuditingTokens:
    """The token repository, telling its unit of work when a redemption was written."""

    def __init__(self, inner: Any, unit: _FlakyUnitOfWork) -> None:
        self._inner = inner
        self._unit = unit

    def __getattr__(self, name: str) -> Any:
        if name == "redeem":
            self._unit.mark_audited()
        return getattr(self._inner, name)


def _flaky(api: Api) -> tuple[FleetPrompt, _Switch]:
    switch = _Switch()
    runtime = api.fp.runtime
    uow = runtime.uow
    flaky = attrs.evolve(runtime, uow=lambda: _FlakyUnitOfWork(uow(), switch))
    return FleetPrompt(flaky), switch


def test_r_tok_03_redeem_under_transient_failure_leaves_the_token_redeemable(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redeem whose commit fails is a clean 500; the retry redeems once, then 404."""
    world = World.build(api)
    raw = api.token(world.buyer, world.iid)["installToken"]
    flaky, switch = _flaky(api)
    monkeypatch.setattr(api.fp, "redemption", Redeemer(flaky.runtime))
    audit_before = world.audit()
    switch.failures = 1
    failed = api.redeem(raw)
    assert_error(failed, 500, "INTERNAL")
    assert_no_internals(failed.text)
    assert "secret" not in failed.text
    assert switch.raised == 1
    assert world.audit() == audit_before
    view = api.get(f"/v1/install/intents/{world.iid}", world.buyer).json()["installIntent"]
    assert view["status"] == "token_issued"
    assert api.redeem(raw).status_code == 200
    assert_error(api.redeem(raw), 404, "NOT_FOUND")
    redeemed = [e for e in world.audit() if e["type"] == "install_token.redeemed"]
    assert len(redeemed) == 1


def test_r_tok_03_token_issue_under_transient_failure_keeps_the_old_token(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed re-issue keeps the old token; the same-key retry issues one new token."""
    world = World.build(api)
    old = api.token(world.buyer, world.iid)["installToken"]
    flaky, switch = _flaky(api)
    monkeypatch.setattr(api.fp, "installs", Installs(flaky.runtime))
    switch.failures = 1
    failed = api.post(f"/v1/install/intents/{world.iid}/token", world.buyer, key="retry-key")
    assert_error(failed, 500, "INTERNAL")
    assert_no_internals(failed.text)
    retried = api.post(f"/v1/install/intents/{world.iid}/token", world.buyer, key="retry-key")
    assert retried.status_code == 201, retried.text
    assert REPLAYED not in retried.headers
    new = retried.json()["installToken"]
    assert new
    assert_error(api.redeem(old), 404, "NOT_FOUND")
    assert api.redeem(new).status_code == 200


# --------------------------------------------------------------------------- R-PAG-01


def _tampered(cursor: str) -> list[str]:
    body, _, mac = cursor.partition(".")
    flip = {"A": "B"}.get(body[:1], "A")
    return [
        flip + body[1:] + "." + mac,
        body + "." + ("A" if mac[:1] != "A" else "B") + mac[1:],
        body[:-2] + "." + mac,
        cursor + "." + mac,
        body,
        "." + mac,
        cursor[:-1],
        cursor + "=",
        mac + "." + body,
        "ünïcode." + mac,
        "x" * 3000,
        "",
    ]


def test_r_pag_01_cursors_are_stable_and_tamper_evident(api: Api) -> None:
    """On every list endpoint a cursor gives the same page; an edited one is 400 cursor."""
    world = World.build(api)
    for version in ("1.1.0", "1.2.0"):
        api.clock.advance(1)
        api.publish_release(world.publisher, world.lid, version)
    for _ in range(2):
        api.published(world.publisher)
        api.intent(world.buyer, world.lid, world.release["releaseId"])
    sources: dict[str, tuple[str, Caller | None]] = {
        "P1": ("/v1/public/listings/search", None),
        "P3": (f"/v1/public/listings/{world.lid}/releases", None),
        "B1": ("/v1/publisher/listings", world.publisher),
        "B7": (f"/v1/publisher/listings/{world.lid}/releases", world.publisher),
        "I2": ("/v1/install/intents", world.buyer),
        "A4": ("/v1/admin/audit", world.admin),
    }
    for name, (path, caller) in sources.items():
        first = api.get(path, caller, params={"limit": "1"}).json()
        cursor = first["nextCursor"]
        assert isinstance(cursor, str), name
        pages = [
            api.get(path, caller, params={"limit": "1", "cursor": cursor}).json() for _ in range(3)
        ]
        assert pages[0]["items"], name
        assert pages[0]["items"] != first["items"], name
        assert pages[1] == pages[0] == pages[2], name
        for bad in _tampered(cursor):
            response = api.get(path, caller, params={"limit": "1", "cursor": bad})
            assert_error(response, 400, "VALIDATION_FAILED", "cursor")
            if bad:
                assert bad[:40] not in response.text, (name, bad)


# --------------------------------------------------------------------------- R-PAG-02


def _walk(
    api: Api, path: str, caller: Caller | None, params: dict[str, str], between: Callable[[], None]
) -> Iterator[dict[str, Any]]:
    cursor = None
    for _ in range(200):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, caller, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        yield from page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return
        between()
    raise AssertionError("the walk did not end")


def test_r_pag_02_walks_survive_inserts_between_pages(api: Api) -> None:
    """Inserts between pages never drop or repeat a search result or intent, any sort."""
    publisher = api.publisher()
    names = ["mango agent", "Apple agent", "kiwi agent", "banana agent", "Cherry agent"]
    existing = set()
    for index, name in enumerate(names):
        api.clock.advance(index % 2)  # pairs share a timestamp
        listing, _ = api.published(publisher, name=name)
        existing.add(listing["listingId"])
    inserted = itertools.cycle(["aardvark agent", "zebra agent", "mango agent", "Kiwi agent"])
    steps = itertools.count()
    for sort in ("updated", "created", "name", "relevance"):
        inserter = api.publisher()  # its own write budget

        def insert(inserter: Caller = inserter) -> None:
            api.clock.advance(next(steps) % 2)
            api.published(inserter, name=next(inserted))

        params = {"sort": sort, "limit": "2"}
        if sort == "relevance":
            params["q"] = "agent"
        seen = [
            item["listingId"]
            for item in _walk(api, "/v1/public/listings/search", None, params, insert)
        ]
        assert len(seen) == len(set(seen)), sort
        assert existing <= set(seen), sort

    buyer = api.buyer()
    listing_id = sorted(existing)[0]
    release_id = api.get(f"/v1/public/listings/{listing_id}").json()["listingDetail"][
        "latestRelease"
    ]["releaseId"]
    start = []
    for _ in range(5):
        api.clock.advance(next(steps) % 2)
        start.append(api.intent(buyer, listing_id, release_id)["installIntentId"])

    def add_intent() -> None:
        api.clock.advance(next(steps) % 2)
        api.intent(buyer, listing_id, release_id)

    seen = [
        item["installIntentId"]
        for item in _walk(api, "/v1/install/intents", buyer, {"limit": "2"}, add_intent)
    ]
    assert len(seen) == len(set(seen))
    assert [iid for iid in seen if iid in start] == list(reversed(start))
