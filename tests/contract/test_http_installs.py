"""The buyer's side of an install over HTTP (I1–I5, X1) on SQLite and PostgreSQL:
I-INST-01..06, E2E-03, E2E-04."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import attrs
import httpx
import pytest

from contract.http_checks import assert_error, error_shape
from contract.http_harness import Api, Caller
from contract.http_live import serve
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX, has_valid_checksum
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services.installs import Installs

INTENTS = "/v1/install/intents"
UNKNOWN_INTENT = "ii_01JUNKNOWN000000000000000"
DAY_MS = 24 * 60 * 60 * 1000
TTL_DEFAULT_MS = 15 * 60 * 1000
#: Longest a test waits for a request it expects to finish (it fails instead of hanging).
JOIN_S = 30.0

INTENT_KEYS = {
    "installIntentId",
    "buyerUserId",
    "listingId",
    "releaseId",
    "targetSystem",
    "targetContext",
    "status",
    "expiresAtMs",
    "createdAtMs",
    "updatedAtMs",
}
ISSUED_KEYS = {"installIntentId", "installToken", "expiresAtMs", "redeem"}


def _create(api: Api, buyer: Caller | None, body: object, **kw: Any) -> httpx.Response:
    return api.post(INTENTS, buyer, body, **kw)


def _intent(api: Api, buyer: Caller, intent_id: str) -> dict[str, Any]:
    response = api.get(f"{INTENTS}/{intent_id}", buyer)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"installIntent"}
    intent: dict[str, Any] = response.json()["installIntent"]
    return intent


def _issue(api: Api, buyer: Caller, intent_id: str, body: object = None, **kw: Any) -> Any:
    return api.post(f"{INTENTS}/{intent_id}/token", buyer, body, **kw)


def _cancel(api: Api, buyer: Caller, intent_id: str, **kw: Any) -> httpx.Response:
    return api.post(f"{INTENTS}/{intent_id}/cancel", buyer, None, **kw)


def _listed(api: Api, buyer: Caller, **params: str) -> list[str]:
    response = api.get(INTENTS, buyer, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "nextCursor"}
    return [item["installIntentId"] for item in page["items"]]


def _audit(api: Api, **params: str) -> list[dict[str, Any]]:
    response = api.get("/v1/admin/audit", api.admin(), params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --------------------------------------------------------------------------- I-INST-01


def test_i_inst_01_create_intent_answers_201_with_the_intent(api: Api) -> None:
    """I1 answers 201 {"installIntent"}: the caller's, newest release, created, 24 h, audited."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, _old = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    api.clock.advance(1)
    newest = api.publish_release(publisher, listing_id, "1.1.0")
    api.clock.advance(1_000)
    response = _create(
        api,
        buyer,
        {
            "listingId": listing_id,
            "targetSystem": "agentelic",
            "targetContext": {"telespaceId": "ts-1", "roomId": " room-7 ", "orgId": "org-9"},
        },
    )
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    assert set(response.json()) == {"installIntent"}
    intent = response.json()["installIntent"]
    now = api.clock.now_ms()
    assert set(intent) == INTENT_KEYS
    assert intent["installIntentId"].startswith("ii_")
    assert intent["buyerUserId"] == buyer.user_id
    assert intent["listingId"] == listing_id
    assert intent["releaseId"] == newest["releaseId"]
    assert intent["targetSystem"] == "agentelic"
    assert intent["targetContext"] == {"telespaceId": "ts-1", "roomId": "room-7", "orgId": "org-9"}
    assert intent["status"] == "created"
    assert intent["createdAtMs"] == intent["updatedAtMs"] == now
    assert intent["expiresAtMs"] == now + DAY_MS
    assert _intent(api, buyer, intent["installIntentId"]) == intent
    events = _audit(api, type="install_intent.created")
    assert [e["installIntentId"] for e in events] == [intent["installIntentId"]]
    assert events[0]["actor"]["userId"] == buyer.user_id


def test_i_inst_01_explicit_release_and_sign_in_required(api: Api) -> None:
    """A buyer may pick an older release; anonymous or bad-token callers get 401, no intent."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, old = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    api.publish_release(publisher, listing_id, "1.1.0")
    intent = api.intent(buyer, listing_id, old["releaseId"])
    assert intent["releaseId"] == old["releaseId"]
    body = {"listingId": listing_id, "targetSystem": "whs"}
    assert_error(_create(api, None, body), 401, "UNAUTHENTICATED")
    assert_error(_create(api, None, body, key=None), 401, "UNAUTHENTICATED")
    bad = {"Authorization": "Bearer fpat_forged"}
    assert_error(_create(api, None, body, headers=bad), 401, "UNAUTHENTICATED")
    assert_error(api.get(f"{INTENTS}/{intent['installIntentId']}"), 401, "UNAUTHENTICATED")
    assert _listed(api, buyer) == [intent["installIntentId"]]


# --------------------------------------------------------------------------- I-INST-02


def test_i_inst_02_list_intents_shows_own_intents_by_observed_status(api: Api) -> None:
    """I2 lists the caller's intents only, newest first, filtered by the status observed now."""
    publisher, buyer, other = api.publisher(), api.buyer(), api.buyer()
    listing, release = api.published(publisher)
    listing_id, release_id = listing["listingId"], release["releaseId"]
    foreign = api.intent(other, listing_id, release_id)
    old = api.intent(buyer, listing_id, release_id)
    api.clock.advance(DAY_MS - 10)
    issued = api.intent(buyer, listing_id, release_id)
    api.token(buyer, issued["installIntentId"])
    canceled = api.intent(buyer, listing_id, release_id)
    assert _cancel(api, buyer, canceled["installIntentId"]).status_code == 200
    api.clock.advance(10)  # ``old`` is now past its expiry

    page = api.get(INTENTS, buyer).json()
    assert [i["installIntentId"] for i in page["items"]] == [
        canceled["installIntentId"],
        issued["installIntentId"],
        old["installIntentId"],
    ]
    assert page["nextCursor"] is None
    assert all(set(item) == INTENT_KEYS for item in page["items"])
    assert {item["buyerUserId"] for item in page["items"]} == {buyer.user_id}
    assert [i["status"] for i in page["items"]] == ["canceled", "token_issued", "expired"]
    assert _listed(api, buyer, status="expired") == [old["installIntentId"]]
    assert _listed(api, buyer, status="created") == []
    assert _listed(api, buyer, status="token_issued") == [issued["installIntentId"]]
    assert _listed(api, buyer, status="canceled") == [canceled["installIntentId"]]
    assert _listed(api, buyer, status="redeemed") == []
    assert _intent(api, buyer, old["installIntentId"])["status"] == "expired"
    assert _listed(api, other) == [foreign["installIntentId"]]
    assert_error(
        api.get(INTENTS, buyer, params={"status": "lost"}), 400, "VALIDATION_FAILED", "status"
    )


# --------------------------------------------------------------------------- I-INST-03


def test_i_inst_03_token_ttl_defaults_to_15_minutes_and_is_bounded(api: Api) -> None:
    """I4 answers 201 with the §5 shape; TTL defaults to 15 min, accepts 60 s..1 h, else 400."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    intent_id = intent["installIntentId"]
    now = api.clock.now_ms()
    response = _issue(api, buyer, intent_id)
    assert response.status_code == 201, response.text
    issued = response.json()
    assert set(issued) == ISSUED_KEYS
    assert issued["installIntentId"] == intent_id
    assert issued["expiresAtMs"] == now + TTL_DEFAULT_MS
    assert issued["redeem"] == {"mode": "server_to_server", "targetSystem": "whs"}
    token = issued["installToken"]
    assert isinstance(token, str)
    assert token.startswith(INSTALL_TOKEN_PREFIX)
    assert has_valid_checksum(token)
    assert _intent(api, buyer, intent_id)["status"] == "token_issued"
    for ttl in (60_000, 3_600_000):
        ok = _issue(api, buyer, intent_id, {"ttlMs": ttl})
        assert ok.status_code == 201, ok.text
        assert ok.json()["expiresAtMs"] == now + ttl
        assert ok.json()["installToken"] != token
    for bad_ttl in (59_999, 3_600_001, 0, -1, "60000", 60_000.5, True, [60_000]):
        refused = _issue(api, buyer, intent_id, {"ttlMs": bad_ttl})
        assert_error(refused, 400, "VALIDATION_FAILED", "ttlMs")
        assert [f["fieldName"] for f in refused.json()["error"]["details"]["fields"]] == ["ttlMs"]
    assert_error(
        _issue(api, buyer, intent_id, key=None), 400, "VALIDATION_FAILED", "Idempotency-Key"
    )
    issued_events = _audit(api, type="install_token.issued")
    assert len(issued_events) == 3


def test_i_inst_03_token_never_outlives_its_intent(api: Api) -> None:
    """A token expires no later than its intent; an expired intent gets no token (409)."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    api.clock.advance(DAY_MS - 120_000)
    late = _issue(api, buyer, intent["installIntentId"], {"ttlMs": 3_600_000})
    assert late.status_code == 201, late.text
    assert late.json()["expiresAtMs"] == intent["expiresAtMs"]
    api.clock.advance(120_000)
    assert_error(_issue(api, buyer, intent["installIntentId"]), 409, "CONFLICT")
    assert _intent(api, buyer, intent["installIntentId"])["status"] == "expired"


# --------------------------------------------------------------------------- I-INST-04


def test_i_inst_04_foreign_intent_is_not_found(api: Api) -> None:
    """Anyone else's I3/I4/I5 on an intent is the unknown-id NOT_FOUND, and changes nothing."""
    publisher, owner, intruder = api.publisher(), api.buyer(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(owner, listing["listingId"], release["releaseId"])
    issued = api.token(owner, intent["installIntentId"])
    before = _intent(api, owner, intent["installIntentId"])

    def operations(intent_id: str, caller: Caller = intruder) -> dict[str, httpx.Response]:
        return {
            "get": api.get(f"{INTENTS}/{intent_id}", caller),
            "token": _issue(api, caller, intent_id),
            "cancel": _cancel(api, caller, intent_id),
        }

    unknown = operations(UNKNOWN_INTENT)
    # Neither another buyer, nor the listing's publisher, nor an admin reads a buyer's intent.
    for caller in (intruder, publisher, api.admin()):
        foreign = operations(intent["installIntentId"], caller)
        for name, response in foreign.items():
            assert_error(response, 404, "NOT_FOUND")
            assert error_shape(response) == error_shape(unknown[name]), name
            assert intent["installIntentId"] not in response.text
    assert _intent(api, owner, intent["installIntentId"]) == before
    assert _listed(api, intruder) == []
    # The owner's token was not revoked by the intruder's attempts.
    redeemed = api.redeem(issued["installToken"])
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["installIntent"]["installIntentId"] == intent["installIntentId"]


# --------------------------------------------------------------------------- I-INST-05


def test_i_inst_05_bad_listing_release_or_revoked_release_is_refused(api: Api) -> None:
    """I1 needs a published release of a published listing: NOT_FOUND, CONFLICT or 400 else."""
    publisher, admin, buyer = api.publisher(), api.admin(), api.buyer()
    listing, release = api.published(publisher)
    listing_id = listing["listingId"]
    _other, other_release = api.published(publisher)
    draft = api.create_listing(publisher)
    draft_release = api.publish_release(publisher, draft["listingId"])
    unlisted, _ = api.published(publisher)
    assert api.set_status(publisher, unlisted["listingId"], "unlisted").status_code == 200
    suspended, _ = api.published(publisher)
    moderated = api.post(
        f"/v1/admin/listings/{suspended['listingId']}/suspend", admin, {"reason": "spam"}
    )
    assert moderated.status_code == 200, moderated.text
    revoked_only, revoked_release = api.published(publisher)
    api.clock.advance(1)
    for release_id in (revoked_release["releaseId"],):
        revoke = api.post(f"/v1/publisher/releases/{release_id}/revoke", publisher, {})
        assert revoke.status_code == 200, revoke.text
    sibling = api.publish_release(publisher, listing_id, "0.9.0")
    revoke = api.post(f"/v1/publisher/releases/{sibling['releaseId']}/revoke", publisher, {})
    assert revoke.status_code == 200, revoke.text

    def attempt(**payload: object) -> httpx.Response:
        return _create(api, buyer, {"targetSystem": "whs", **payload})

    not_found = [
        attempt(listingId="lst_01JUNKNOWN000000000000000"),
        attempt(listingId=draft["listingId"]),
        attempt(listingId=draft["listingId"], releaseId=draft_release["releaseId"]),
        attempt(listingId=unlisted["listingId"]),
        attempt(listingId=suspended["listingId"]),
        attempt(listingId=listing_id, releaseId=other_release["releaseId"]),
        attempt(listingId=listing_id, releaseId=draft_release["releaseId"]),
        attempt(listingId=listing_id, releaseId="rel_01JUNKNOWN000000000000000"),
    ]
    for response in not_found:
        assert_error(response, 404, "NOT_FOUND")
    listing_shapes = {repr(error_shape(r)) for r in not_found[:5]}
    assert len(listing_shapes) == 1, listing_shapes
    assert_error(attempt(listingId=listing_id, releaseId=sibling["releaseId"]), 409, "CONFLICT")
    assert_error(attempt(listingId=revoked_only["listingId"]), 409, "CONFLICT")
    for payload, field in (
        ({"listingId": listing_id, "targetSystem": "github"}, "targetSystem"),
        ({"targetSystem": "whs"}, "listingId"),
        (
            {"listingId": listing_id, "targetSystem": "whs", "targetContext": {"x": 1}},
            "targetContext.x",
        ),
        (
            {"listingId": listing_id, "targetSystem": "whs", "targetContext": {"orgId": "o" * 201}},
            "targetContext.orgId",
        ),
        (
            {"listingId": listing_id, "targetSystem": "whs", "buyerUserId": buyer.user_id},
            "buyerUserId",
        ),
    ):
        refused = _create(api, buyer, payload)
        assert_error(refused, 400, "VALIDATION_FAILED", field)
        assert [f["fieldName"] for f in refused.json()["error"]["details"]["fields"]] == [field]
    assert_error(_create(api, buyer, ["not", "an", "object"]), 400, "VALIDATION_FAILED")
    assert _listed(api, buyer) == []
    assert api.intent(buyer, listing_id, release["releaseId"])["releaseId"] == release["releaseId"]


# --------------------------------------------------------------------------- I-INST-06


def test_i_inst_06_intent_creation_replays_the_same_answer(api: Api) -> None:
    """I1 under one key replays status, body and Idempotent-Replayed; another body is 409."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    body = {
        "listingId": listing["listingId"],
        "releaseId": release["releaseId"],
        "targetSystem": "whs",
    }
    key = "intent-key-1"
    first = _create(api, buyer, body, key=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    api.clock.advance(5_000)
    again = _create(api, buyer, dict(reversed(list(body.items()))), key=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.content == first.content
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    conflict = _create(api, buyer, {**body, "targetSystem": "agentelic"}, key=key)
    error = assert_error(conflict, 409, "CONFLICT")
    assert "idempotent-replayed" not in conflict.headers
    assert error["details"].get("hint")
    assert_error(_create(api, buyer, body, key=None), 400, "VALIDATION_FAILED", "Idempotency-Key")
    for bad_key in ("", "x" * 256, "has\ttab"):
        refused = _create(api, buyer, body, key=bad_key)
        assert_error(refused, 400, "VALIDATION_FAILED", "Idempotency-Key")
    assert _listed(api, buyer) == [first.json()["installIntent"]["installIntentId"]]
    assert len(_audit(api, type="install_intent.created")) == 1
    # The key's scope is the caller: another buyer's same key is a new intent.
    other = api.buyer()
    theirs = _create(api, other, body, key=key)
    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["installIntent"]["buyerUserId"] == other.user_id


def test_i_inst_06_token_issue_and_cancel_replay_without_a_second_effect(api: Api) -> None:
    """I4 replays with installToken null and no second token; I5 replays the canceled intent."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    intent_id = intent["installIntentId"]
    key = "token-key-1"
    first = _issue(api, buyer, intent_id, {"ttlMs": 300_000}, key=key)
    assert first.status_code == 201, first.text
    token = first.json()["installToken"]
    assert isinstance(token, str)
    api.clock.advance(1_000)
    again = _issue(api, buyer, intent_id, {"ttlMs": 300_000}, key=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == {**first.json(), "installToken": None}
    assert token not in again.text
    assert_error(_issue(api, buyer, intent_id, {"ttlMs": 600_000}, key=key), 409, "CONFLICT")
    assert len(_audit(api, type="install_token.issued")) == 1

    cancel_key = "cancel-key-1"
    canceled = _cancel(api, buyer, intent_id, key=cancel_key)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["installIntent"]["status"] == "canceled"
    replay = _cancel(api, buyer, intent_id, key=cancel_key)
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == canceled.json()
    assert len(_audit(api, type="install_intent.canceled")) == 1
    assert_error(_cancel(api, buyer, intent_id), 409, "CONFLICT")
    assert_error(
        _cancel(api, buyer, intent_id, key=None), 400, "VALIDATION_FAILED", "Idempotency-Key"
    )
    # Canceling revoked the issued token.
    assert_error(api.redeem(token), 404, "NOT_FOUND")


class _Gate:
    """Holds the first commit through a gated runtime until the test lets it go."""

    def __init__(self) -> None:
        self.armed = True
        self.running, self.proceed = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            first, self.armed = self.armed, False
        if first:
            self.running.set()
            assert self.proceed.wait(JOIN_S), "the test never let the first request commit"


class _GatedUnitOfWork:
    """A unit of work whose commit waits at the gate (everything else is the store's)."""

    def __init__(self, inner: Any, gate: _Gate) -> None:
        self._inner, self._gate = inner, gate

    def __enter__(self) -> _GatedUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit(self) -> None:
        self._gate.hold()
        self._inner.commit()


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_i_inst_06_a_duplicate_intent_while_the_first_runs_is_409_in_progress(
    api_factory: Callable[..., AbstractContextManager[Api]],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """§6 over HTTP: while the first intent creation under a key is still running (held
    before its commit), the same request is 409 CONFLICT (hint in progress, Retry-After)
    at once, on SQLite as on PostgreSQL, and creates nothing; once the first answered 201,
    the same request replays it, and exactly one intent exists. Two use-case threads: with
    SQLite's default of one, the duplicate waits for the thread, and so for the first."""
    with api_factory(name, threads=2) as api:
        _duplicate_while_running(api, monkeypatch)


def _duplicate_while_running(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    body = {
        "listingId": listing["listingId"],
        "releaseId": release["releaseId"],
        "targetSystem": "whs",
    }
    gate = _Gate()
    runtime = api.fp.runtime
    store_uow = runtime.uow
    gated = attrs.evolve(runtime, uow=lambda: _GatedUnitOfWork(store_uow(), gate))
    monkeypatch.setattr(api.fp, "installs", Installs(gated))
    headers = buyer.headers("intent-in-flight")
    answers: dict[str, httpx.Response] = {}

    def send(name: str, url: str) -> None:
        with httpx.Client(base_url=url, timeout=JOIN_S) as client:
            answers[name] = client.post(INTENTS, json=body, headers=headers)

    with serve(api.client.app) as url:
        first = threading.Thread(target=send, args=("first", url))
        first.start()
        try:
            assert gate.running.wait(JOIN_S)
            send("duplicate", url)
            assert first.is_alive()  # answered while the first was still running
        finally:
            gate.proceed.set()
            first.join(JOIN_S)
    assert not first.is_alive()
    refused = answers["duplicate"]
    error = assert_error(refused, 409, "CONFLICT")
    assert error["details"]["hint"] == "in progress"
    assert refused.headers["retry-after"] == str(idempotency.IN_PROGRESS_RETRY_AFTER_S)
    original = answers["first"]
    assert original.status_code == 201, original.text
    assert "idempotent-replayed" not in original.headers
    replay = _create(api, buyer, body, key="intent-in-flight")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == original.json()
    assert _listed(api, buyer) == [original.json()["installIntent"]["installIntentId"]]
    assert len(_audit(api, type="install_intent.created")) == 1


# --------------------------------------------------------------------------- E2E-03


def test_e2e_03_buyer_creates_an_intent_and_gets_a_token(api: Api) -> None:
    """A buyer finds a listing, creates an intent, gets a token once; a retry shows it no more."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    (hit,) = api.get("/v1/public/listings/search", buyer, params={"q": "triage"}).json()["items"]
    detail = api.get(f"/v1/public/listings/{hit['listingId']}", buyer).json()["listingDetail"]
    latest = detail["latestRelease"]
    created = _create(
        api,
        buyer,
        {
            "listingId": hit["listingId"],
            "releaseId": latest["releaseId"],
            "targetSystem": "agentelic",
            "targetContext": {"telespaceId": "ts-42", "roomId": "room-1"},
        },
    )
    assert created.status_code == 201, created.text
    intent = created.json()["installIntent"]
    assert intent["status"] == "created"
    assert intent["releaseId"] == release["releaseId"]
    assert intent["targetContext"] == {"telespaceId": "ts-42", "roomId": "room-1", "orgId": None}
    assert _listed(api, buyer) == [intent["installIntentId"]]

    key = "e2e-token"
    issued = _issue(api, buyer, intent["installIntentId"], {"ttlMs": 300_000}, key=key)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["installToken"].startswith(INSTALL_TOKEN_PREFIX)
    assert body["redeem"] == {"mode": "server_to_server", "targetSystem": "agentelic"}
    assert body["expiresAtMs"] == api.clock.now_ms() + 300_000
    assert _intent(api, buyer, intent["installIntentId"])["status"] == "token_issued"
    shown_again = _issue(api, buyer, intent["installIntentId"], {"ttlMs": 300_000}, key=key)
    assert shown_again.headers["idempotent-replayed"] == "true"
    assert shown_again.json()["installToken"] is None
    # The raw token appears in no other response.
    for response in (
        api.get(INTENTS, buyer),
        api.get(f"{INTENTS}/{intent['installIntentId']}", buyer),
        api.get("/v1/admin/audit", api.admin()),
        api.get(f"/v1/public/listings/{listing['listingId']}"),
    ):
        assert response.status_code == 200
        assert body["installToken"] not in response.text
    stats = api.get(f"/v1/public/listings/{listing['listingId']}").json()
    assert stats["listingDetail"]["listing"]["stats"] == {"installAttempts30d": 1}


# --------------------------------------------------------------------------- E2E-04


def test_e2e_04_server_to_server_redeem_twice(api: Api) -> None:
    """A signed X1 redeems once with the §7 shape; the identical retry is the unknown-token 404."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"], "whs")
    token = api.token(buyer, intent["installIntentId"])["installToken"]

    api.clock.advance(1_000)
    first = api.redeem(token, "whs", source="whs")
    assert first.status_code == 200, first.text
    redemption = first.json()
    assert set(redemption) == {"installIntent", "listing", "release"}
    assert set(redemption["installIntent"]) == INTENT_KEYS
    assert redemption["installIntent"]["installIntentId"] == intent["installIntentId"]
    assert redemption["installIntent"]["status"] == "redeemed"
    assert redemption["installIntent"]["buyerUserId"] == buyer.user_id
    assert redemption["listing"] == {
        "listingId": listing["listingId"],
        "assetKind": "whs_agent",
        "name": "Support Triage Agent",
    }
    assert set(redemption["release"]) == {"releaseId", "version", "refs", "compat", "artifacts"}
    assert redemption["release"]["releaseId"] == release["releaseId"]
    assert redemption["release"]["version"] == "1.0.0"
    assert redemption["release"]["refs"] == release["refs"]
    assert redemption["release"]["compat"] == release["compat"]
    assert redemption["release"]["artifacts"] == release["artifacts"]
    assert token not in first.text
    assert not {h.lower() for h in first.headers} & {
        "access-control-allow-origin",
        "access-control-allow-credentials",
    }

    api.clock.advance(2_000)
    second = api.redeem(token, "whs", source="whs")
    unknown = api.redeem(INSTALL_TOKEN_PREFIX + "A" * 43, "whs", source="whs")
    assert_error(second, 404, "NOT_FOUND")
    assert_error(unknown, 404, "NOT_FOUND")
    assert error_shape(second) == error_shape(unknown)
    assert token not in second.text
    assert _intent(api, buyer, intent["installIntentId"])["status"] == "redeemed"
    redeemed = _audit(api, type="install_token.redeemed")
    assert len(redeemed) == 1
    assert redeemed[0]["installIntentId"] == intent["installIntentId"]
    assert redeemed[0]["requestId"] == first.headers["x-request-id"]
    assert redeemed[0]["actor"]["type"] == "system"
    # A redeemed intent takes no new token.
    assert_error(_issue(api, buyer, intent["installIntentId"]), 409, "CONFLICT")


def test_a_created_listing_or_intent_answers_201_with_its_location(api: Api) -> None:
    """``Location`` on 201 is the path of the new resource (the same on a replay)."""
    publisher, buyer = api.publisher(), api.buyer()
    created = api.post("/v1/publisher/listings", publisher, {"assetKind": "whs_agent", "name": "L"})
    assert created.status_code == 201, created.text
    listing_id = created.json()["listing"]["listingId"]
    assert created.headers["location"] == f"/v1/publisher/listings/{listing_id}"
    fetched = api.get(created.headers["location"], publisher)
    assert fetched.json()["listing"]["listingId"] == listing_id
    listing, release = api.published(publisher)
    body = {"listingId": listing["listingId"], "releaseId": release["releaseId"]}
    first = api.post("/v1/install/intents", buyer, {**body, "targetSystem": "whs"}, key="loc-1")
    again = api.post("/v1/install/intents", buyer, {**body, "targetSystem": "whs"}, key="loc-1")
    intent_id = first.json()["installIntent"]["installIntentId"]
    assert first.headers["location"] == f"/v1/install/intents/{intent_id}"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert api.get(first.headers["location"], buyer).status_code == 200
    token = api.post(f"/v1/install/intents/{intent_id}/token", buyer)
    assert token.status_code == 201
    assert "location" not in token.headers  # a token has no URL of its own
