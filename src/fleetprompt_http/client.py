"""Redeem an install token from a target system's server (§7), correctly signed.

A target system (WHS, Agentromatic, Agentelic, ...) receives an install token
from its user and redeems it with FleetPrompt over a server-to-server call::

    from fleetprompt_http.client import RedeemClient

    client = RedeemClient("https://fleetprompt.example.com", source="whs", key=SECRET)
    answer = client.redeem(install_token, target_system="whs")
    # answer["release"]["refs"] → the upstream ids to install, under the target's own authz

Every call carries an ``Idempotency-Key`` and is retried with it after a
timeout or a transient answer, so a lost answer is replayed, not lost.

The signature is ``v1=`` + hex HMAC-SHA256 of the exact body bytes sent, with
the timestamp in milliseconds; :func:`signed_redeem_request` builds both for
callers that use their own HTTP client. Only the standard library is used.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

import attrs

from fleetprompt_core.policies.signing import signed_headers

__all__ = ["REDEEM_PATH", "RedeemClient", "RedeemFailed", "SignedRequest", "signed_redeem_request"]

REDEEM_PATH: Final = "/v1/internal/install/redeem"


@attrs.frozen
class SignedRequest:
    """The exact bytes to send and the headers that sign them."""

    body: bytes
    headers: Mapping[str, str]


def signed_redeem_request(
    install_token: str,
    target_system: str,
    *,
    key: bytes,
    source: str,
    now_ms: int | None = None,
    idempotency_key: str | None = None,
) -> SignedRequest:
    """Body ``{"installToken", "targetSystem"}`` and its signed headers.

    The body bytes depend only on the token and the target, so a retry signs the
    same bytes (with a fresh timestamp) and, with the same ``idempotency_key``,
    is recognised as the same request.
    """
    body = json.dumps(
        {"installToken": install_token, "targetSystem": target_system}, separators=(",", ":")
    ).encode("utf-8")
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    headers = {"Content-Type": "application/json", **signed_headers(body, key, source, stamp)}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return SignedRequest(body, headers)


class RedeemFailed(Exception):
    """FleetPrompt refused the redemption; ``code`` is the envelope's error code."""

    def __init__(self, status: int, code: str, request_id: str | None) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        #: The server's ``Retry-After`` in seconds, when it sent one.
        self.retry_after_s: float | None = None
        super().__init__(f"redeem failed: HTTP {status} {code} (request id {request_id})")


#: Answers worth retrying with the same key: rate limited, still in progress, unavailable.
_RETRIED_STATUSES: Final = frozenset({409, 429, 503})
#: The longest pause between two attempts, whatever ``Retry-After`` says.
_MAX_PAUSE_S: Final = 5.0


@attrs.frozen
class RedeemClient:
    """Redeems install tokens against one FleetPrompt server.

    Every :meth:`redeem` carries an ``Idempotency-Key`` and is retried, with
    the same key and the same body, after a timeout, a dropped connection or
    an answer that says to retry (``503``, ``429``, ``409`` in progress), at
    most ``retries`` times. A redemption whose answer was lost on the way
    back is therefore answered again from the server's record (within its
    15-minute window), instead of the retry finding the token already used.
    """

    base_url: str
    source: str
    key: bytes = attrs.field(repr=False)
    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5

    def redeem(
        self, install_token: str, target_system: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """The redemption answer (``installIntent``, ``listing``, ``release``), or
        :class:`RedeemFailed` (``NOT_FOUND`` for any token that cannot be redeemed).

        ``idempotency_key`` defaults to a new random key per call; pass your own
        to retry a call of yours across process restarts.
        """
        idempotency_key = idempotency_key or secrets.token_urlsafe(24)
        attempt = 0
        while True:
            try:
                return self._send(install_token, target_system, idempotency_key)
            except RedeemFailed as failed:
                transient = failed.status in _RETRIED_STATUSES and not (
                    failed.status == 409 and failed.retry_after_s is None  # another request
                )
                if not transient or attempt >= self.retries:
                    raise
                pause = failed.retry_after_s
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
            ):
                if attempt >= self.retries:
                    raise
                pause = None
            attempt += 1
            backoff = self.backoff_s * 2 ** (attempt - 1)
            time.sleep(min(_MAX_PAUSE_S, backoff if pause is None else max(pause, backoff)))

    def _send(self, install_token: str, target_system: str, idempotency_key: str) -> dict[str, Any]:
        signed = signed_redeem_request(
            install_token,
            target_system,
            key=self.key,
            source=self.source,
            idempotency_key=idempotency_key,
        )
        request = urllib.request.Request(  # noqa: S310 - the operator configures the URL
            self.base_url.rstrip("/") + REDEEM_PATH,
            data=signed.body,
            headers=dict(signed.headers),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            with error:
                try:
                    envelope = json.loads(error.read())["error"]
                    code, request_id = str(envelope["code"]), envelope.get("requestId")
                except (ValueError, KeyError, TypeError):
                    code, request_id = "UNKNOWN", error.headers.get("X-Request-Id")
                retry_after = error.headers.get("Retry-After", "")
            failed = RedeemFailed(error.code, code, request_id)
            failed.retry_after_s = float(retry_after) if retry_after.isdigit() else None
            raise failed from None
