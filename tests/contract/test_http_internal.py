"""X1 over HTTP (§7): I-INT-01..08 against the real app on SQLite and PostgreSQL.

Mirrors ``tests/unit/test_app_redemption.py`` at the wire: browser-shaped calls,
every way the HMAC authentication can fail (one identical 401, no state change),
the exact redemption answer, the one identical 404 for every token that cannot
be redeemed, secret-free answers and audit rows, the per-source rate limit, a
server without a redeem secret, and the shipped ``RedeemClient`` against a real
uvicorn server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from contract.http_checks import (
    assert_error,
    assert_no_internals,
    assert_rate_limited,
    error_shape,
    json_strings,
    walk_pages,
)
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api
from contract.http_live import serve
from fleetprompt_core import Call
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.signing import (
    MAX_SKEW_MS,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    UNAUTHENTICATED_MESSAGE,
    sign,
)
from fleetprompt_core.policies.tokens import generate_token, hash_token
from fleetprompt_http.client import RedeemClient, RedeemFailed, signed_redeem_request

DATABASES = ("sqlite", "postgres")
ApiFactory = Callable[..., AbstractContextManager[Api]]

#: What every authentication failure answers (apart from the request id).
UNAUTHENTICATED_SHAPE = (401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE, {})


# --------------------------------------------------------------------------- helpers


class Shop:
    """One published listing and release, a buyer, and an admin to read the audit log."""

    def __init__(self, api: Api, target: str = "whs") -> None:
        self.api = api
        self.publisher = api.publisher()
        self.buyer = api.buyer()
        self.admin = api.admin()
        self.listing, self.release = api.published(self.publisher)
        self.target = target

    def intent(self, target: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {
            "listingId": self.listing["listingId"],
            "releaseId": self.release["releaseId"],
            "targetSystem": target or self.target,
            **extra,
        }
        response = self.api.post("/v1/install/intents", self.buyer, body)
        assert response.status_code == 201, response.text
        intent: dict[str, Any] = response.json()["installIntent"]
        return intent

    def issue(self, intent_id: str, body: object = None) -> dict[str, Any]:
        response = self.api.post(f"/v1/install/intents/{intent_id}/token", self.buyer, body)
        assert response.status_code == 201, response.text
        issued: dict[str, Any] = response.json()
        return issued

    def token(self, target: str | None = None) -> tuple[dict[str, Any], str]:
        """A fresh intent and its raw install token."""
        intent = self.intent(target)
        return intent, self.issue(intent["installIntentId"])["installToken"]

    def intent_status(self, intent_id: str) -> str:
        response = self.api.get(f"/v1/install/intents/{intent_id}", self.buyer)
        assert response.status_code == 200, response.text
        status: str = response.json()["installIntent"]["status"]
        return status

    def audit(self) -> list[dict[str, Any]]:
        """The whole audit log, newest first, read over HTTP as an admin."""
        return walk_pages(self.api, "/v1/admin/audit", self.admin, limit=200)


def _body(raw: str, target: str = "whs") -> bytes:
    return json.dumps({"installToken": raw, "targetSystem": target}, separators=(",", ":")).encode()


def _headers(body: bytes, now_ms: int, *, key: bytes = REDEEM_SECRET, source: str = "whs") -> dict:
    return {
        "Content-Type": "application/json",
        SOURCE_HEADER: source,
        TIMESTAMP_HEADER: str(now_ms),
        SIGNATURE_HEADER: sign(body, key),
    }


def _send(api: Api, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
    return api.client.post(REDEEM_PATH, content=body, headers=dict(headers))


def _no_cors(response: httpx.Response) -> None:
    cors = sorted(name for name in response.headers if name.lower().startswith("access-control-"))
    assert cors == [], (response.status_code, cors)


def _unknown_token() -> str:
    """A well-formed install token (valid checksum) that was never issued."""
    return generate_token("fpit_")


# --------------------------------------------------------------------------- I-INT-01


BROWSER_MARKERS: dict[str, dict[str, str]] = {
    "origin": {"Origin": "https://evil.example"},
    "origin-null": {"Origin": "null"},
    "origin-same-host": {"Origin": "http://testserver"},
    "cookie": {"Cookie": "session=abc"},
    "empty-cookie": {"Cookie": ""},
    "origin-and-cookie": {"Origin": "https://evil.example", "Cookie": "fp_session=1"},
}


def test_i_int_01_browser_shaped_redeem_is_refused_even_when_signed(api: Api) -> None:
    """A correctly signed redeem with an Origin or a Cookie is the generic 401, no change."""
    shop = Shop(api)
    intent, raw = shop.token()
    audit_before = shop.audit()
    for name, marker in BROWSER_MARKERS.items():
        response = api.redeem(raw, headers=marker)
        assert_error(response, 401, "UNAUTHENTICATED")
        assert error_shape(response) == UNAUTHENTICATED_SHAPE, name
        _no_cors(response)
    assert shop.audit() == audit_before
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"
    redeemed = api.redeem(raw)
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["installIntent"]["status"] == "redeemed"


def test_i_int_01_internal_paths_never_send_cors_headers(api: Api) -> None:
    """No /v1/internal/* answer (preflight, 200, 401, 404, 405) carries a CORS header."""
    shop = Shop(api)
    _, raw = shop.token()
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-whs-delegation-signature",
    }
    responses = [
        api.client.options(REDEEM_PATH, headers=preflight),
        api.client.options("/v1/internal/anything", headers=preflight),
        api.client.request("OPTIONS", REDEEM_PATH),
        api.redeem(raw, headers={"Origin": "https://evil.example"}),
        api.client.post(REDEEM_PATH, json={}, headers={"Origin": "https://evil.example"}),
        api.client.get(REDEEM_PATH, headers={"Origin": "https://evil.example"}),
        api.client.post("/v1/internal/other", headers={"Origin": "https://evil.example"}),
        api.redeem(_unknown_token()),
        api.redeem(raw),
    ]
    assert [r.status_code for r in responses][3:] == [401, 401, 405, 404, 404, 200]
    for response in responses:
        _no_cors(response)
        assert "set-cookie" not in response.headers


# --------------------------------------------------------------------------- I-INT-02


def _bad_auth(raw: str, now: int) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every way a redemption of ``raw`` can fail authentication: name → (body, headers)."""
    body = _body(raw)
    good = _headers(body, now)
    digest = hmac.new(REDEEM_SECRET, body, hashlib.sha256)

    def without(name: str) -> dict[str, str]:
        return {k: v for k, v in good.items() if k != name}

    def with_(name: str, value: str) -> dict[str, str]:
        return {**good, name: value}

    other_body = _body(raw, "agentelic")
    return {
        "no-source": (body, without(SOURCE_HEADER)),
        "empty-source": (body, with_(SOURCE_HEADER, "")),
        "unknown-source": (body, with_(SOURCE_HEADER, "evil")),
        "source-with-suffix": (body, with_(SOURCE_HEADER, "whs2")),
        "no-timestamp": (body, without(TIMESTAMP_HEADER)),
        "empty-timestamp": (body, with_(TIMESTAMP_HEADER, "")),
        "stale-timestamp": (body, with_(TIMESTAMP_HEADER, str(now - MAX_SKEW_MS - 1))),
        "future-timestamp": (body, with_(TIMESTAMP_HEADER, str(now + MAX_SKEW_MS + 1))),
        "timestamp-in-seconds": (body, with_(TIMESTAMP_HEADER, str(now // 1000))),
        "timestamp-not-a-number": (body, with_(TIMESTAMP_HEADER, "yesterday")),
        "timestamp-negative": (body, with_(TIMESTAMP_HEADER, "-1")),
        "timestamp-fraction": (body, with_(TIMESTAMP_HEADER, f"{now}.0")),
        "no-signature": (body, without(SIGNATURE_HEADER)),
        "empty-signature": (body, with_(SIGNATURE_HEADER, "")),
        "wrong-key": (body, with_(SIGNATURE_HEADER, sign(body, b"x" * 32))),
        "secret-as-signature": (body, with_(SIGNATURE_HEADER, "v1=" + REDEEM_SECRET.decode())),
        "signature-over-other-bytes": (
            body,
            with_(SIGNATURE_HEADER, sign(body + b" ", REDEEM_SECRET)),
        ),
        "signature-over-empty-body": (body, with_(SIGNATURE_HEADER, sign(b"", REDEEM_SECRET))),
        "body-swapped-after-signing": (other_body, good),
        "body-with-trailing-space": (body + b" ", good),
        "no-v1-prefix": (body, with_(SIGNATURE_HEADER, digest.hexdigest())),
        "v2-prefix": (body, with_(SIGNATURE_HEADER, "v2=" + digest.hexdigest())),
        "short-hex": (body, with_(SIGNATURE_HEADER, "v1=" + digest.hexdigest()[:63])),
        "long-hex": (body, with_(SIGNATURE_HEADER, "v1=" + digest.hexdigest() + "0")),
        "non-hex": (body, with_(SIGNATURE_HEADER, "v1=" + "g" * 64)),
        "base64-digest": (
            body,
            with_(SIGNATURE_HEADER, "v1=" + base64.b64encode(digest.digest()).decode()),
        ),
        "sha1-hmac": (
            body,
            with_(SIGNATURE_HEADER, "v1=" + hmac.new(REDEEM_SECRET, body, "sha1").hexdigest()),
        ),
        "only-wrong-values": (
            body,
            with_(SIGNATURE_HEADER, f"v1={'0' * 64},v1={sign(body, b'y' * 32)[3:]}"),
        ),
        "oversized-signature-header": (
            body,
            with_(SIGNATURE_HEADER, ",".join(["v1=" + "0" * 64] * 40)),
        ),
    }


def test_i_int_02_bad_authentication_is_one_identical_401_and_changes_nothing(api: Api) -> None:
    """Each auth failure is the same 401 body (but requestId) and leaves token and audit alone."""
    shop = Shop(api)
    intent, raw = shop.token()
    audit_before = shop.audit()
    cases = _bad_auth(raw, api.clock.now_ms())
    header_names: set[tuple[str, ...]] = set()
    request_ids = set()
    for name, (body, headers) in cases.items():
        response = _send(api, body, headers)
        error = assert_error(response, 401, "UNAUTHENTICATED")
        assert error_shape(response) == UNAUTHENTICATED_SHAPE, name
        assert_no_internals(response.text)
        header_names.add(tuple(sorted(response.headers)))
        request_ids.add(error["requestId"])
    assert len(header_names) == 1, header_names
    assert len(request_ids) == len(cases)
    assert shop.audit() == audit_before
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"
    assert api.redeem(raw).status_code == 200


def test_i_int_02_skew_boundary_hex_case_and_several_values_are_accepted(api: Api) -> None:
    """±5 min exactly, upper-case hex and a rotation list with one valid value all redeem."""
    shop = Shop(api)
    now = api.clock.now_ms()

    def signature_variants(body: bytes) -> dict[str, dict[str, str]]:
        good = _headers(body, now)
        hex_digest = sign(body, REDEEM_SECRET)[3:]
        old = sign(body, b"o" * 32)
        return {
            "exactly-5-min-old": {**good, TIMESTAMP_HEADER: str(now - MAX_SKEW_MS)},
            "exactly-5-min-ahead": {**good, TIMESTAMP_HEADER: str(now + MAX_SKEW_MS)},
            "upper-case-hex": {**good, SIGNATURE_HEADER: "v1=" + hex_digest.upper()},
            "mixed-case-hex": {
                **good,
                SIGNATURE_HEADER: "v1=" + hex_digest[:32].upper() + hex_digest[32:],
            },
            "valid-then-old": {**good, SIGNATURE_HEADER: f"v1={hex_digest},{old}"},
            "old-then-valid": {**good, SIGNATURE_HEADER: f"{old},v1={hex_digest}"},
            "spaced-list": {**good, SIGNATURE_HEADER: f"{old} , v1={hex_digest}"},
            "garbage-then-valid": {**good, SIGNATURE_HEADER: f"v1=nothex,v1={hex_digest}"},
            "lower-case-header-names": {k.lower(): v for k, v in good.items()},
        }

    names = list(signature_variants(b"").keys())
    for name in names:
        intent, raw = shop.token()
        body = _body(raw)
        response = _send(api, body, signature_variants(body)[name])
        assert response.status_code == 200, (name, response.text)
        assert response.json()["installIntent"]["installIntentId"] == intent["installIntentId"]


@pytest.mark.parametrize("name", DATABASES)
def test_i_int_02_two_configured_keys_are_both_accepted(api_factory: ApiFactory, name: str) -> None:
    """With two redeem secrets configured (rotation), a request signed with either redeems."""
    new_key, old_key = b"n" * 32, b"o" * 32
    with api_factory(name, redeem_secrets=(new_key, old_key)) as api:
        shop = Shop(api)
        for key in (new_key, old_key):
            _, raw = shop.token()
            response = api.redeem(raw, key=key)
            assert response.status_code == 200, response.text
        _, raw = shop.token()
        refused = api.redeem(raw, key=REDEEM_SECRET)  # not configured on this server
        assert error_shape(refused) == UNAUTHENTICATED_SHAPE


def test_i_int_02_authenticated_but_malformed_body_is_validation_failed(api: Api) -> None:
    """A correctly signed but malformed body is 400 naming its fields, and changes nothing."""
    shop = Shop(api)
    intent, raw = shop.token()
    audit_before = shop.audit()
    now = api.clock.now_ms()
    cases: list[tuple[bytes, str]] = [
        (b"not json", "installToken"),
        (b"[]", "installToken"),
        (b"", "installToken"),
        (b'{"installToken": "x"}', "targetSystem"),
        (b'{"installToken": "x", "targetSystem": "ftp"}', "targetSystem"),
        (b'{"installToken": 5, "targetSystem": "whs"}', "installToken"),
        (
            json.dumps({"installToken": raw, "targetSystem": "whs", "extra": 1}).encode(),
            "extra",
        ),
    ]
    for body, field in cases:
        response = _send(api, body, _headers(body, now))
        assert_error(response, 400, "VALIDATION_FAILED", field)
        assert raw not in response.text
    assert shop.audit() == audit_before
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"
    assert api.redeem(raw).status_code == 200


@pytest.mark.parametrize("name", DATABASES)
def test_i_int_02_server_without_redeem_secret_answers_501(
    api_factory: ApiFactory, name: str
) -> None:
    """No redeem secret configured: X1 is UNSUPPORTED (501) whatever is sent; nothing redeems."""
    with api_factory(name, redeem_secrets=()) as api:
        shop = Shop(api)
        intent, raw = shop.token()
        for response in (
            api.redeem(raw),
            api.redeem(raw, key=b"z" * 32),
            api.client.post(REDEEM_PATH, json={}),
            api.client.post(REDEEM_PATH, content=b"x"),
        ):
            assert_error(response, 501, "UNSUPPORTED")
            _no_cors(response)
        assert shop.intent_status(intent["installIntentId"]) == "token_issued"


# --------------------------------------------------------------------------- I-INT-03


def test_i_int_03_redeem_answers_exactly_the_contract_shape(api: Api) -> None:
    """200 with exactly the §7 shape; token, intent and one system audit row are redeemed."""
    shop = Shop(api, target="agentelic")
    intent = shop.intent(targetContext={"telespaceId": "ts-1", "roomId": "room-1"})
    issued = shop.issue(intent["installIntentId"])
    api.clock.advance(30_000)
    audit_before = shop.audit()
    response = api.redeem(issued["installToken"], "agentelic", source="agentelic")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {"installIntent", "listing", "release"}
    assert answer["listing"] == {
        "listingId": shop.listing["listingId"],
        "assetKind": shop.listing["assetKind"],
        "name": shop.listing["name"],
    }
    assert answer["release"] == {
        key: shop.release[key] for key in ("releaseId", "version", "refs", "compat", "artifacts")
    }
    redeemed = answer["installIntent"]
    assert redeemed == {
        **intent,
        "status": "redeemed",
        "updatedAtMs": api.clock.now_ms(),
    }
    assert redeemed["targetContext"] == {"telespaceId": "ts-1", "roomId": "room-1", "orgId": None}
    buyer_view = api.get(f"/v1/install/intents/{intent['installIntentId']}", shop.buyer)
    assert buyer_view.json()["installIntent"] == redeemed

    audit_after = shop.audit()
    assert audit_after[1:] == audit_before
    event = audit_after[0]
    assert event["type"] == "install_token.redeemed"
    assert event["actor"] == {"type": "system", "userId": None, "system": "agentelic"}
    assert event["requestId"] == response.headers["x-request-id"]
    assert (event["listingId"], event["releaseId"], event["installIntentId"]) == (
        shop.listing["listingId"],
        shop.release["releaseId"],
        intent["installIntentId"],
    )
    assert event["publisherUserId"] == shop.publisher.user_id
    assert event["details"]["targetSystem"] == "agentelic"
    assert event["details"]["source"] == "agentelic"
    # The buyer cannot get another token for a redeemed intent.
    again = api.post(f"/v1/install/intents/{intent['installIntentId']}/token", shop.buyer)
    assert again.status_code == 409, again.text


def test_i_int_03_redeem_client_against_a_real_server(api: Api) -> None:
    """The shipped RedeemClient redeems over real HTTP, then fails with RedeemFailed NOT_FOUND."""
    api.clock.set(int(time.time() * 1000))  # the client signs with the wall clock
    shop = Shop(api)
    intent, raw = shop.token()
    with serve(api.client.app) as base_url:
        client = RedeemClient(base_url, source="whs", key=REDEEM_SECRET, timeout_s=10)
        answer = client.redeem(raw, target_system="whs")
        assert answer["installIntent"]["installIntentId"] == intent["installIntentId"]
        assert answer["installIntent"]["status"] == "redeemed"
        assert answer["release"]["refs"] == shop.release["refs"]
        with pytest.raises(RedeemFailed) as again:
            client.redeem(raw, target_system="whs")
        assert (again.value.status, again.value.code) == (404, "NOT_FOUND")
        assert again.value.request_id is not None
        assert again.value.request_id.startswith("req_")
        assert raw not in str(again.value)
        assert raw not in repr(client)
        assert REDEEM_SECRET.decode() not in repr(client)
        wrong_key = RedeemClient(base_url, source="whs", key=b"w" * 32)
        with pytest.raises(RedeemFailed) as refused:
            wrong_key.redeem(_unknown_token(), target_system="whs")
        assert (refused.value.status, refused.value.code) == (401, "UNAUTHENTICATED")


# --------------------------------------------------------------------------- I-INT-04


def test_i_int_04_expired_token_is_the_unknown_token_404(api: Api) -> None:
    """An expired token answers exactly like an unknown one, and changes nothing."""
    shop = Shop(api)
    intent, raw = shop.token()
    issued_at = api.clock.now_ms()
    unknown = error_shape(api.redeem(_unknown_token()))
    assert unknown[:2] == (404, "NOT_FOUND")
    api.clock.set(issued_at + 15 * 60 * 1000)  # the default TTL
    audit_before = shop.audit()
    response = api.redeem(raw)
    assert_error(response, 404, "NOT_FOUND")
    assert error_shape(response) == unknown
    assert shop.audit() == audit_before
    # The intent itself is still open (24 h): a new token works.
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"
    fresh = shop.issue(intent["installIntentId"])["installToken"]
    assert api.redeem(fresh).status_code == 200
    assert error_shape(api.redeem(raw)) == unknown


def test_i_int_04_token_of_an_expired_intent_is_the_unknown_token_404(api: Api) -> None:
    """A long token issued late in an intent's life stops working when the intent expires."""
    shop = Shop(api)
    intent = shop.intent()
    api.clock.set(intent["expiresAtMs"] - 60_000)
    issued = shop.issue(intent["installIntentId"], {"ttlMs": 3_600_000})
    assert issued["expiresAtMs"] <= intent["expiresAtMs"]
    unknown = error_shape(api.redeem(_unknown_token()))
    api.clock.set(intent["expiresAtMs"])
    assert error_shape(api.redeem(issued["installToken"])) == unknown
    assert shop.intent_status(intent["installIntentId"]) == "expired"


# --------------------------------------------------------------------------- I-INT-05


def test_i_int_05_revoked_and_wrong_target_tokens_are_the_unknown_token_404(api: Api) -> None:
    """Revoked (4 ways) and wrong-target tokens answer the unknown-token 404, no change."""
    shop = Shop(api)
    unknown = error_shape(api.redeem(_unknown_token()))

    reissued = shop.intent()
    first = shop.issue(reissued["installIntentId"])["installToken"]
    second = shop.issue(reissued["installIntentId"])["installToken"]

    canceled, canceled_token = shop.token()
    cancel = api.post(f"/v1/install/intents/{canceled['installIntentId']}/cancel", shop.buyer)
    assert cancel.status_code == 200, cancel.text

    _, wrong_target_token = shop.token()

    other_listing, other_release = api.published(shop.publisher, name="Suspended Agent")
    suspended = api.intent(shop.buyer, other_listing["listingId"], other_release["releaseId"])
    suspended_token = api.token(shop.buyer, suspended["installIntentId"])["installToken"]
    suspend = api.post(
        f"/v1/admin/listings/{other_listing['listingId']}/suspend",
        shop.admin,
        {"reason": "malware"},
    )
    assert suspend.status_code == 200, suspend.text

    _, revoked_release_token = shop.token()
    revoke = api.post(f"/v1/publisher/releases/{shop.release['releaseId']}/revoke", shop.publisher)
    assert revoke.status_code == 200, revoke.text

    audit_before = shop.audit()
    attempts = {
        "re-issued": api.redeem(first),
        "canceled": api.redeem(canceled_token),
        "wrong-target-agentelic": api.redeem(wrong_target_token, "agentelic", source="agentelic"),
        "wrong-target-by-whs": api.redeem(wrong_target_token, "agentromatic"),
        "suspended-listing": api.redeem(suspended_token),
        "revoked-release": api.redeem(revoked_release_token),
        "revoked-release-second": api.redeem(second),
    }
    for name, response in attempts.items():
        assert_error(response, 404, "NOT_FOUND")
        assert error_shape(response) == unknown, name
        assert sorted(response.headers) == sorted(attempts["re-issued"].headers), name
    assert shop.audit() == audit_before
    assert shop.intent_status(canceled["installIntentId"]) == "canceled"
    assert shop.intent_status(reissued["installIntentId"]) == "token_issued"


# --------------------------------------------------------------------------- I-INT-06


def test_i_int_06_redeem_twice_is_not_found(api: Api) -> None:
    """A second redemption, by the same or another source, is the unknown-token 404."""
    shop = Shop(api)
    _, raw = shop.token()
    unknown = error_shape(api.redeem(_unknown_token()))
    assert api.redeem(raw).status_code == 200
    audit_after_first = shop.audit()
    for source in ("whs", "agentelic", "specprompt"):
        response = api.redeem(raw, source=source)
        assert error_shape(response) == unknown, source
    assert shop.audit() == audit_after_first
    assert audit_after_first[0]["actor"]["system"] == "whs"


def test_i_int_06_concurrent_redemptions_over_http_succeed_once(api: Api) -> None:
    """Eight simultaneous signed redemptions of one token on a real server: exactly one 200."""
    shop = Shop(api)
    _, raw = shop.token()
    audit_before = shop.audit()
    signed = signed_redeem_request(
        raw, "whs", key=REDEEM_SECRET, source="whs", now_ms=api.clock.now_ms()
    )
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)
    with serve(api.client.app) as base_url:

        def worker() -> None:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                barrier.wait()
                response = client.post(REDEEM_PATH, content=signed.body, headers=signed.headers)
            with lock:
                statuses.append(response.status_code)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(statuses) == [200] + [404] * 7
    audit_after = shop.audit()
    assert len(audit_after) == len(audit_before) + 1
    assert audit_after[0]["type"] == "install_token.redeemed"


# --------------------------------------------------------------------------- I-INT-07


def test_i_int_07_answers_errors_and_audit_rows_are_secret_free(api: Api) -> None:
    """No answer, refusal or audit row holds the token, its hash, the signature or secret."""
    shop = Shop(api)
    intent, raw = shop.token()
    body = _body(raw)
    headers = _headers(body, api.clock.now_ms())
    signature_hex = headers[SIGNATURE_HEADER][3:]
    secrets = [raw, raw[5:30], hash_token(raw), signature_hex, REDEEM_SECRET.decode()]
    refusals = [
        api.redeem(raw, "agentelic"),
        api.redeem(raw, headers={"Origin": "https://evil.example"}),
        api.redeem(raw, key=b"z" * 32),
        api.redeem(raw, "ftp"),
        api.redeem(raw + "x"),
        api.redeem(raw + "\n"),
        api.redeem(raw * 5),
        _send(api, body + b"  ", headers),
    ]
    success = _send(api, body, headers)
    assert success.status_code == 200, success.text
    refusals.append(_send(api, body, headers))
    assert [r.status_code for r in refusals] == [404, 401, 401, 400, 404, 400, 400, 401, 404]
    for response in (success, *refusals):
        for secret in secrets:
            assert secret not in response.text, (response.status_code, secret)
        for name, value in response.headers.items():
            assert not any(secret in value for secret in secrets), name
    events = shop.audit()
    (event,) = [e for e in events if e["type"] == "install_token.redeemed"]
    assert event["installIntentId"] == intent["installIntentId"]
    assert event["details"]["tokenId"].startswith("itk_")
    stored = api.fp.admin.read_audit(Call.as_user(shop.admin.external_id), {"limit": 200}).items
    texts = json_strings(events) + [repr(e) for e in stored]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)


# --------------------------------------------------------------------------- I-INT-08


@pytest.mark.parametrize("name", DATABASES)
def test_i_int_08_redemption_is_rate_limited_per_source(api_factory: ApiFactory, name: str) -> None:
    """Per-source budget: 429 + Retry-After, no change; other and forged sources unaffected."""
    limits = RateLimits({Action.REDEEM: RateRule(2, 60_000)})
    with api_factory(name, rate_limits=limits) as api:
        shop = Shop(api)
        intent, raw = shop.token()
        # Forged requests naming "whs" fail authentication and spend none of its budget.
        for _ in range(5):
            forged = api.redeem(_unknown_token(), key=b"f" * 32)
            assert_error(forged, 401, "UNAUTHENTICATED")
        for _ in range(2):
            assert api.redeem(_unknown_token()).status_code == 404
        audit_before = shop.audit()
        limited = api.redeem(raw)
        assert assert_rate_limited(limited) == 60
        assert shop.intent_status(intent["installIntentId"]) == "token_issued"
        assert shop.audit() == audit_before
        assert api.redeem(_unknown_token(), "agentelic", source="agentelic").status_code == 404
        api.clock.advance(59_000)
        assert assert_rate_limited(api.redeem(raw)) == 1
        api.clock.advance(1_000)
        redeemed = api.redeem(raw)
        assert redeemed.status_code == 200, redeemed.text
        assert shop.intent_status(intent["installIntentId"]) == "redeemed"
