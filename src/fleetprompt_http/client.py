"""Redeem an install token from a target system's server (§7), correctly signed.

A target system (WHS, Agentromatic, Agentelic, ...) receives an install token
from its user and redeems it with FleetPrompt over a server-to-server call::

    from fleetprompt_http.client import RedeemClient

    client = RedeemClient("https://fleetprompt.example.com", source="whs", key=SECRET)
    answer = client.redeem(install_token, target_system="whs")
    # answer["release"]["refs"] → the upstream ids to install, under the target's own authz

The signature is ``v1=`` + hex HMAC-SHA256 of the exact body bytes sent, with
the timestamp in milliseconds; :func:`signed_redeem_request` builds both for
callers that use their own HTTP client. Only the standard library is used.
"""

from __future__ import annotations

import json
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
) -> SignedRequest:
    """Body ``{"installToken", "targetSystem"}`` and its signed headers."""
    body = json.dumps(
        {"installToken": install_token, "targetSystem": target_system}, separators=(",", ":")
    ).encode("utf-8")
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    headers = {"Content-Type": "application/json", **signed_headers(body, key, source, stamp)}
    return SignedRequest(body, headers)


class RedeemFailed(Exception):
    """FleetPrompt refused the redemption; ``code`` is the envelope's error code."""

    def __init__(self, status: int, code: str, request_id: str | None) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        super().__init__(f"redeem failed: HTTP {status} {code} (request id {request_id})")


@attrs.frozen
class RedeemClient:
    """Redeems install tokens against one FleetPrompt server."""

    base_url: str
    source: str
    key: bytes = attrs.field(repr=False)
    timeout_s: float = 10.0

    def redeem(self, install_token: str, target_system: str) -> dict[str, Any]:
        """The redemption answer (``installIntent``, ``listing``, ``release``), or
        :class:`RedeemFailed` (``NOT_FOUND`` for any token that cannot be redeemed)."""
        signed = signed_redeem_request(
            install_token, target_system, key=self.key, source=self.source
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
            raise RedeemFailed(error.code, code, request_id) from None
