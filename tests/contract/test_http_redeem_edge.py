"""The redemption edge over HTTP (issue 14 items 2, 6, 8, 10, 15; contract §7, §14).

Duplicated delegation headers, the verified source in the access log, a reason
code for every refusal (in the log, never in the answer), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.http_checks import assert_error, error_shape
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api
from contract.http_live import serve
from contract.test_cli import SERVE_TIMEOUT_S, _clean_environment, _free_port, _script
from contract.test_http_internal import UNAUTHENTICATED_SHAPE, Shop, _unknown_token
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.signing import (
    MAX_SKEW_MS,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    RedeemFailure,
    sign,
)
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_http.client import RedeemClient
from fleetprompt_http.logs import FIELDS
from support import listing_payload, store_open_claim


def _body(raw: str, target: str = "whs") -> bytes:
    return json.dumps({"installToken": raw, "targetSystem": target}).encode()


def _signed(api: Api, body: bytes, **overrides: str) -> list[tuple[str, str]]:
    headers = {
        "Content-Type": "application/json",
        SOURCE_HEADER: "whs",
        TIMESTAMP_HEADER: str(api.clock.now_ms()),
        SIGNATURE_HEADER: sign(body, REDEEM_SECRET),
        **overrides,
    }
    return list(headers.items())


def _send(api: Api, body: bytes, headers: list[tuple[str, str]]) -> httpx.Response:
    return api.client.post(REDEEM_PATH, content=body, headers=headers)


def _send_live(url: str, body: bytes, headers: list[tuple[str, str]]) -> httpx.Response:
    """Over a real socket: every header line arrives as sent, duplicates included."""
    return httpx.post(url + REDEEM_PATH, content=body, headers=headers, timeout=10)


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The structured fields of every access-log line written during the test."""
    caplog.set_level(logging.INFO, logger="fleetprompt.access")
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(dict(getattr(record, FIELDS)))

    handler = Collect()
    logging.getLogger("fleetprompt.access").addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger("fleetprompt.access").removeHandler(handler)


def _line(access: list[dict[str, Any]], response: httpx.Response) -> dict[str, Any]:
    (line,) = [f for f in access if f["requestId"] == response.headers["x-request-id"]]
    return line


def test_duplicate_delegation_headers_are_refused_and_logs_name_the_verified_source_only(
    api: Api, access: list[dict[str, Any]]
) -> None:
    """Issue 14 item 2: a second ``X-WHS-Delegation-*`` value (even one that would verify)
    is the generic 401 with no state change, and the access log never names an unverified
    source; a good redeem logs the verified one."""
    shop = Shop(api)
    intent, raw = shop.token()
    body = _body(raw)
    good = _signed(api, body)
    audit_before = shop.audit()
    spoofed = [(SOURCE_HEADER, "attacker-spoofed-source"), *good]
    cases = {
        "source": spoofed,
        "source-twice-same": [(SOURCE_HEADER, "whs"), *good],
        "timestamp": [(TIMESTAMP_HEADER, str(api.clock.now_ms())), *good],
        "signature": [*good, (SIGNATURE_HEADER, sign(body, REDEEM_SECRET))],
    }
    with serve(api.client.app) as url:
        for name, headers in cases.items():
            response = _send_live(url, body, headers)
            assert_error(response, 401, "UNAUTHENTICATED")
            assert error_shape(response) == UNAUTHENTICATED_SHAPE, name
            line = _line(access, response)
            assert line["caller"] is None, name
            assert line["reason"] == RedeemFailure.DUPLICATE_HEADER, name
        # What an intermediary makes of two header lines: one value, joined by a comma.
        others = [header for header in good if header[0] != SOURCE_HEADER]
        joined = _send(api, body, [(SOURCE_HEADER, "attacker-spoofed-source, whs"), *others])
        assert error_shape(joined) == UNAUTHENTICATED_SHAPE
        assert _line(access, joined)["reason"] == RedeemFailure.DUPLICATE_HEADER
    assert "attacker-spoofed-source" not in repr(access)
    assert shop.audit() == audit_before
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"

    redeemed = _send(api, body, good)
    assert redeemed.status_code == 200, redeemed.text
    assert _line(access, redeemed)["caller"] == "source:whs"
    assert _line(access, redeemed)["reason"] is None


def test_every_redeem_refusal_logs_a_reason_code_the_client_never_sees(
    api: Api, access: list[dict[str, Any]]
) -> None:
    """Issue 14 item 8: each way a redeem fails is logged with its own reason code; the
    answers stay the one generic 401 or the one 404 and never carry the code."""
    shop = Shop(api)
    _, raw = shop.token()
    _, other_target = shop.token("agentelic")
    body = _body(raw)
    now = api.clock.now_ms()
    digest = sign(body, REDEEM_SECRET)
    unauthenticated: dict[RedeemFailure, tuple[bytes, list[tuple[str, str]]]] = {
        RedeemFailure.DUPLICATE_HEADER: (body, [(SOURCE_HEADER, "whs"), *_signed(api, body)]),
        RedeemFailure.BROWSER_CONTEXT: (body, [*_signed(api, body), ("Origin", "https://x.test")]),
        RedeemFailure.MISSING_HEADER: (
            body,
            [h for h in _signed(api, body) if h[0] != TIMESTAMP_HEADER],
        ),
        RedeemFailure.UNKNOWN_SOURCE: (body, _signed(api, body, **{SOURCE_HEADER: "evil"})),
        RedeemFailure.MALFORMED_TIMESTAMP: (
            body,
            _signed(api, body, **{TIMESTAMP_HEADER: "yesterday"}),
        ),
        RedeemFailure.TIMESTAMP_SKEW: (
            body,
            _signed(api, body, **{TIMESTAMP_HEADER: str(now - MAX_SKEW_MS - 1)}),
        ),
        RedeemFailure.MALFORMED_SIGNATURE: (
            body,
            _signed(api, body, **{SIGNATURE_HEADER: digest[3:]}),
        ),
        RedeemFailure.BAD_SIGNATURE: (
            body,
            _signed(api, body, **{SIGNATURE_HEADER: sign(body, b"x" * 32)}),
        ),
    }
    for reason, (sent, headers) in unauthenticated.items():
        response = _send(api, sent, headers)
        assert error_shape(response) == UNAUTHENTICATED_SHAPE, reason
        assert reason.value not in response.text
        assert _line(access, response)["reason"] == reason

    not_found = {
        RedeemFailure.MALFORMED_TOKEN: _body("fpit_not-a-real-token"),
        RedeemFailure.UNKNOWN_TOKEN: _body(_unknown_token()),
        RedeemFailure.WRONG_TARGET: _body(other_target, "whs"),
    }
    shapes = set()
    for reason, sent in not_found.items():
        response = _send(api, sent, _signed(api, sent))
        assert_error(response, 404, "NOT_FOUND")
        shapes.add(json.dumps(error_shape(response)))
        assert reason.value not in response.text
        assert _line(access, response)["reason"] == reason
    assert _send(api, body, _signed(api, body)).status_code == 200
    again = _send(api, body, _signed(api, body))
    shapes.add(json.dumps(error_shape(again)))
    assert _line(access, again)["reason"] == RedeemFailure.TOKEN_NOT_ISSUED
    assert len(shapes) == 1


def test_r_idemp_03_in_progress_conflict_carries_retry_after(api: Api) -> None:
    """Issue 14 item 15a: the "still in progress" 409 says when to retry (``Retry-After``);
    the retry after the first request finished replays it."""
    publisher = api.publisher()
    payload = listing_payload(name="In flight")
    digest = idempotency.request_hash(idempotency.Operation.LISTING_CREATE, {}, payload)
    store_open_claim(
        api.fp.runtime, publisher.user_id, idempotency.Operation.LISTING_CREATE, "k-1", digest
    )
    response = api.post("/v1/publisher/listings", publisher, payload, key="k-1")
    assert_error(response, 409, "CONFLICT")
    assert response.json()["error"]["details"]["hint"] == "in progress"
    assert response.headers["retry-after"] == str(idempotency.IN_PROGRESS_RETRY_AFTER_S)
    other = api.post("/v1/publisher/listings", publisher, listing_payload(name="B"), key="k-1")
    assert_error(other, 409, "CONFLICT")
    assert "retry-after" not in other.headers  # a different request: retrying cannot help


def test_server_warns_at_start_naming_the_variable_when_redemption_is_off(
    api_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14 item 15c: without a redeem secret the server starts, warns once naming
    ``FLEETPROMPT_INTERNAL_REDEEM_SECRET``, and X1 answers 501; with one it says nothing."""
    caplog.set_level(logging.WARNING, logger="fleetprompt.server")
    with api_factory("sqlite", redeem_secrets=()) as api:
        assert api.client.post(REDEEM_PATH, json={}).status_code == 501
    warnings = [r for r in caplog.records if r.name == "fleetprompt.server"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "FLEETPROMPT_INTERNAL_REDEEM_SECRET" in warnings[0].getMessage()
    caplog.clear()
    with api_factory("sqlite"):
        pass
    assert [r for r in caplog.records if r.name == "fleetprompt.server"] == []


FAILURE_LIMITS = RateLimits({Action.AUTH_FAILURE: RateRule(3, 60_000)})


def test_s_rl_failed_bearer_authentications_are_counted_per_client_then_429(
    api_factory: Any, access: list[dict[str, Any]]
) -> None:
    """Issue 14 item 6: bad bearer tokens are counted per client address; past the limit
    every credential from that address — a valid one too — is 429 with ``Retry-After``
    and is not checked; anonymous reads go on; the window passing frees the address."""
    with api_factory("sqlite", rate_limits=FAILURE_LIMITS) as api:
        buyer = api.buyer()
        bad = {"Authorization": "Bearer fpat_" + "x" * 40}
        for _ in range(3):
            assert_error(api.get("/v1/install/intents", headers=bad), 401, "UNAUTHENTICATED")
        refused = api.get("/v1/install/intents", buyer)
        assert_error(refused, 429, "RATE_LIMITED")
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert _line(access, refused)["reason"] == "too_many_failures"
        assert api.get("/v1/public/listings/search").status_code == 200
        api.clock.advance(60_000)
        assert api.get("/v1/install/intents", buyer).status_code == 200


def test_s_rl_failed_redeem_authentications_are_counted_per_source_then_429(
    api_factory: Any, access: list[dict[str, Any]]
) -> None:
    """Issue 14 item 6: badly signed redeems are counted per source; past the limit even a
    correctly signed redeem from that source is 429 and changes nothing, while another
    source is unaffected."""
    with api_factory("sqlite", rate_limits=FAILURE_LIMITS) as api:
        shop = Shop(api)
        intent, raw = shop.token()
        body = _body(raw)
        wrong = _signed(api, body, **{SIGNATURE_HEADER: sign(body, b"x" * 32)})
        for _ in range(3):
            assert error_shape(_send(api, body, wrong)) == UNAUTHENTICATED_SHAPE
        refused = _send(api, body, _signed(api, body))
        assert_error(refused, 429, "RATE_LIMITED")
        assert "retry-after" in refused.headers
        assert _line(access, refused)["reason"] == "too_many_failures"
        assert shop.intent_status(intent["installIntentId"]) == "token_issued"
        _, other = shop.token("agentelic")
        other_body = _body(other, "agentelic")
        by_agentelic = _signed(api, other_body, **{SOURCE_HEADER: "agentelic"})
        assert _send(api, other_body, by_agentelic).status_code == 200
        api.clock.advance(60_000)
        assert _send(api, body, _signed(api, body)).status_code == 200


def test_s_rl_serve_ignores_x_forwarded_for_by_default(tmp_path: Path) -> None:
    """Issue 14 item 12: ``fleetprompt serve`` with default settings counts the peer address:
    searches with rotating ``X-Forwarded-For`` values share one limit (they all passed a
    limit of 120 before)."""
    port = _free_port()
    env = _clean_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        RATE_LIMITS="search=3/60",
        LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(
        [_script(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            assert process.poll() is None, "fleetprompt serve exited"
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fleetprompt serve did not answer"
                time.sleep(0.1)
        statuses = [
            httpx.get(
                base + "/v1/public/listings/search",
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                timeout=5,
            ).status_code
            for n in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------- X-RED-01


def _keyed(api: Api, body: bytes, key: str, **overrides: str) -> list[tuple[str, str]]:
    return [*_signed(api, body, **overrides), ("Idempotency-Key", key)]


def test_x_red_01_redeem_with_idempotency_key_replays_its_answer(api: Api) -> None:
    """Contract §14 X-RED-01: a redeem with an ``Idempotency-Key`` sent again (same source,
    same body, same key, within the window) answers the stored answer with
    ``Idempotent-Replayed: true`` and one audit event; every other second redemption is the
    unknown-token 404 (I-INT-06); the key with another body is 409."""
    shop = Shop(api)
    intent, raw = shop.token()
    body = _body(raw)
    never_issued = _body(_unknown_token())
    unknown = error_shape(_send(api, never_issued, _signed(api, never_issued)))
    first = _send(api, body, _keyed(api, body, "whs-retry-1"))
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    api.clock.advance(60_000)
    again = _send(api, body, _keyed(api, body, "whs-retry-1"))
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.json()["installIntent"]["installIntentId"] == intent["installIntentId"]
    others = {
        "no key": _send(api, body, _signed(api, body)),
        "other key": _send(api, body, _keyed(api, body, "whs-retry-2")),
        "other source": _send(
            api, body, _keyed(api, body, "whs-retry-1", **{SOURCE_HEADER: "agentelic"})
        ),
    }
    for name, response in others.items():
        assert error_shape(response) == unknown, name
    _, other_raw = shop.token()
    other_body = _body(other_raw)
    reused = _send(api, other_body, _keyed(api, other_body, "whs-retry-1"))
    assert_error(reused, 409, "CONFLICT")
    api.clock.advance(15 * 60_000)
    expired = _send(api, body, _keyed(api, body, "whs-retry-1"))
    assert error_shape(expired) == unknown
    redeemed = [e for e in shop.audit() if e["type"] == "install_token.redeemed"]
    assert len(redeemed) == 1


def test_r_tok_03_redeem_past_the_deadline_is_503_and_changes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 10: a redemption that cannot commit within the server's deadline
    (``FLEETPROMPT_REDEEM_DEADLINE_MS``) rolls back and answers 503 UNAVAILABLE with
    ``Retry-After``; the retry with the same key then redeems, once."""
    shop = Shop(api)
    intent, raw = shop.token()
    body = _body(raw)
    audit_before = shop.audit()
    redeemer = api.fp.redemption
    original = redeemer._redeem_in

    def stalled(*args: Any, **kwargs: Any) -> Any:
        api.clock.advance(api.settings.redeem_deadline_ms + 1)  # the database "stalled"
        return original(*args, **kwargs)

    monkeypatch.setattr(redeemer, "_redeem_in", stalled)
    late = _send(api, body, _keyed(api, body, "k-late"))
    assert_error(late, 503, "UNAVAILABLE")
    assert int(late.headers["retry-after"]) >= 1
    assert shop.audit() == audit_before
    assert shop.intent_status(intent["installIntentId"]) == "token_issued"
    monkeypatch.setattr(redeemer, "_redeem_in", original)
    retried = _send(api, body, _keyed(api, body, "k-late"))
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert shop.intent_status(intent["installIntentId"]) == "redeemed"


def test_r_tok_03_redeem_client_retries_a_lost_answer_and_gets_it_replayed(
    api_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 10 in real life: the server answers after the client gave up; the
    shipped ``RedeemClient`` retries with the same ``Idempotency-Key`` and body and gets the
    refs from the stored answer, not a 404 for a burnt token; one redemption is audited."""
    with api_factory("sqlite") as api:
        api.clock.set(int(time.time() * 1000))  # the client signs with the wall clock
        shop = Shop(api)
        intent, raw = shop.token()
        redeemer = api.fp.redemption
        original = redeemer._redeem_in
        calls: list[int] = []

        def slow_first(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                time.sleep(1.5)  # longer than the client waits
            return original(*args, **kwargs)

        monkeypatch.setattr(redeemer, "_redeem_in", slow_first)
        with serve(api.client.app) as url:
            client = RedeemClient(
                url, source="whs", key=REDEEM_SECRET, timeout_s=1.0, retries=3, backoff_s=0.1
            )
            answer = client.redeem(raw, target_system="whs")
        assert answer["installIntent"]["installIntentId"] == intent["installIntentId"]
        assert answer["release"]["refs"] == shop.release["refs"]
        assert len(calls) == 1  # the retries were answered from the record
        redeemed = [e for e in shop.audit() if e["type"] == "install_token.redeemed"]
        assert len(redeemed) == 1
