"""The server-to-server HMAC scheme of internal redemption (§7).

A target system's server calls ``POST /v1/internal/install/redeem`` with three
headers::

    X-WHS-Delegation-Source:    whs
    X-WHS-Delegation-Timestamp: 1732521600000          (epoch milliseconds)
    X-WHS-Delegation-Signature: v1=<hex HMAC-SHA256(key, raw body bytes)>

:func:`signed_headers` builds them (client side); :class:`RedeemVerifier`
checks them (server side) over the exact raw body bytes, before anything
parses the body. Every failure raises the same
:class:`~fleetprompt_core.base.errors.Unauthenticated` with one generic
message, so a caller never learns which check failed.

Key rotation: the verifier holds several keys and the client may send several
comma-separated ``v1=`` values; one match with any key suffices.

What the scheme does not do (by contract): the signature binds only the body,
not the timestamp or the source. Anyone who captures a signed request (which
TLS prevents) can replay it with a fresh timestamp, inside or outside the
skew window; the timestamp check only refuses stale requests from honest
clients and naive replays of whole captured requests. Replays are harmless
because the body carries a single-use install token: a second redemption of
the same token answers ``NOT_FOUND`` and changes nothing. A future ``v2``
scheme should sign ``timestamp + "." + source + "." + body``.

Nothing in this module puts a key, a signature or a body in an exception
message or a ``repr``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re

import attrs

from fleetprompt_core.base.errors import Unauthenticated

__all__ = [
    "DEFAULT_SOURCES",
    "MAX_SIGNATURE_ITEMS",
    "MAX_SKEW_MS",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "SOURCE_HEADER",
    "TIMESTAMP_HEADER",
    "UNAUTHENTICATED_MESSAGE",
    "RedeemFailure",
    "RedeemVerifier",
    "sign",
    "signed_headers",
]

SOURCE_HEADER = "X-WHS-Delegation-Source"
TIMESTAMP_HEADER = "X-WHS-Delegation-Timestamp"
SIGNATURE_HEADER = "X-WHS-Delegation-Signature"

DEFAULT_SOURCES = frozenset({"whs", "agentromatic", "agentelic", "specprompt"})
"""Sources allowed to redeem when the operator configures none (§7)."""

MAX_SKEW_MS = 300_000
"""Largest accepted distance between the request timestamp and server time (±5 min)."""

MIN_SECRET_BYTES = 32
"""Shortest accepted HMAC key; the server refuses to start with a shorter one."""

MAX_SIGNATURE_ITEMS = 8
"""Only the first this-many comma-separated items of the signature header are considered."""

UNAUTHENTICATED_MESSAGE = "The request could not be authenticated."
"""The one message of every verification failure."""


class RedeemFailure(enum.StrEnum):
    """Why a redemption was refused: logged by the server, never sent to the caller.

    The caller always gets the one generic ``UNAUTHENTICATED`` (the first
    group) or the one ``NOT_FOUND`` (the second); the operator debugging an
    integration reads the code in the access log's ``reason`` field.
    """

    DUPLICATE_HEADER = "duplicate_header"
    BROWSER_CONTEXT = "browser_context"
    MISSING_HEADER = "missing_header"
    UNKNOWN_SOURCE = "unknown_source"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    TIMESTAMP_SKEW = "timestamp_skew"
    MALFORMED_SIGNATURE = "malformed_signature"
    BAD_SIGNATURE = "bad_signature"
    TOO_MANY_FAILURES = "too_many_failures"
    # NOT_FOUND
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105 - a reason code
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a reason code
    TOKEN_NOT_ISSUED = "token_not_issued"  # noqa: S105 - redeemed, revoked or expired by status
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason code
    WRONG_TARGET = "wrong_target"
    INTENT_CLOSED = "intent_closed"
    NOT_INSTALLABLE = "not_installable"
    LOST_RACE = "lost_race"
    # UNAVAILABLE
    DEADLINE_PASSED = "deadline_passed"


_SCHEME = "v1"
_PREFIX = _SCHEME + "="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
# Enough for MAX_SIGNATURE_ITEMS items of "v1=<64 hex>" with generous spacing.
_MAX_SIGNATURE_HEADER_LENGTH = 1024


def sign(body: bytes, key: bytes) -> str:
    """Return ``"v1=" + hex(HMAC-SHA256(key, body))``, the signature header value."""
    return _PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, key: bytes, source: str, now_ms: int) -> dict[str, str]:
    """Return the three headers a target system sends with *body* (client helper).

    *body* must be the exact bytes that go on the wire.
    """
    return {
        SOURCE_HEADER: source,
        TIMESTAMP_HEADER: str(now_ms),
        SIGNATURE_HEADER: sign(body, key),
    }


def _check_keys(_instance: object, _attribute: object, keys: tuple[bytes, ...]) -> None:
    if not isinstance(keys, tuple):
        raise TypeError("redeem keys must be a tuple of bytes")
    if not keys:
        raise ValueError("at least one redeem key is required")
    for position, key in enumerate(keys, start=1):
        if not isinstance(key, bytes):
            raise TypeError(f"redeem key {position} of {len(keys)} is not bytes")
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(
                f"redeem key {position} of {len(keys)} is shorter than {MIN_SECRET_BYTES} bytes"
            )


def _check_sources(_instance: object, _attribute: object, sources: frozenset[str]) -> None:
    if not isinstance(sources, frozenset):
        raise TypeError("allowed redeem sources must be a frozenset of str")
    if not sources:
        raise ValueError("at least one redeem source must be allowed")
    if not all(isinstance(source, str) and source for source in sources):
        raise ValueError("redeem sources must be non-empty strings")


def _check_skew(_instance: object, _attribute: object, max_skew_ms: int) -> None:
    if isinstance(max_skew_ms, bool) or not isinstance(max_skew_ms, int) or max_skew_ms <= 0:
        raise ValueError("max_skew_ms must be a positive integer")


@attrs.frozen
class RedeemVerifier:
    """Verifies the headers of an internal redemption request (§7).

    ``keys`` are the HMAC keys currently accepted (more than one during a key
    rotation), each at least :data:`MIN_SECRET_BYTES` long; they never appear
    in the ``repr``. Construction raises :class:`ValueError` (or
    :class:`TypeError` for a wrong type) naming the problem, never the key.
    """

    keys: tuple[bytes, ...] = attrs.field(repr=False, validator=_check_keys)
    allowed_sources: frozenset[str] = attrs.field(default=DEFAULT_SOURCES, validator=_check_sources)
    max_skew_ms: int = attrs.field(default=MAX_SKEW_MS, validator=_check_skew)

    def verify(
        self,
        *,
        body: bytes,
        source: str | None,
        timestamp: str | None,
        signature: str | None,
        now_ms: int,
        browser_context: bool = False,
        duplicate_header: bool = False,
    ) -> str:
        """Return the verified source, or raise ``Unauthenticated``.

        The transport has already read the request: *source*, *timestamp* and
        *signature* are the header values (``None`` when absent), *body* the
        exact raw body, *browser_context* whether the request looks like it
        came from a browser (an ``Origin``, a cookie, ...) and
        *duplicate_header* whether a delegation header came more than once.
        Whatever fails, the exception and its message are the same; its
        ``reason`` (a :class:`RedeemFailure`) is for the server's log.
        """
        reason = self._failure(
            body, source, timestamp, signature, now_ms, browser_context, duplicate_header
        )
        if reason is not None:
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE, reason=reason.value) from None
        assert source is not None
        return source

    def _failure(
        self,
        body: bytes,
        source: str | None,
        timestamp: str | None,
        signature: str | None,
        now_ms: int,
        browser_context: bool,
        duplicate_header: bool,
    ) -> RedeemFailure | None:
        if duplicate_header:
            return RedeemFailure.DUPLICATE_HEADER
        if browser_context:
            return RedeemFailure.BROWSER_CONTEXT
        if not (
            isinstance(body, bytes)
            and isinstance(source, str)
            and isinstance(timestamp, str)
            and isinstance(signature, str)
        ):
            return RedeemFailure.MISSING_HEADER
        if source not in self.allowed_sources:
            return RedeemFailure.UNKNOWN_SOURCE
        if _TIMESTAMP.fullmatch(timestamp) is None:
            return RedeemFailure.MALFORMED_TIMESTAMP
        if abs(now_ms - int(timestamp)) > self.max_skew_ms:
            return RedeemFailure.TIMESTAMP_SKEW
        return self._signature_failure(body, signature)

    def _signature_failure(self, body: bytes, signature: str) -> RedeemFailure | None:
        if len(signature) > _MAX_SIGNATURE_HEADER_LENGTH:
            return RedeemFailure.MALFORMED_SIGNATURE
        candidates = [
            digest.lower().encode("ascii")
            for digest in _v1_digests(signature)
            if _HEX_DIGEST.fullmatch(digest) is not None
        ]
        if not candidates:
            return RedeemFailure.MALFORMED_SIGNATURE
        expected = [
            hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii") for key in self.keys
        ]
        matched = False
        for candidate in candidates:
            for digest in expected:
                matched |= hmac.compare_digest(candidate, digest)
        return None if matched else RedeemFailure.BAD_SIGNATURE


def _v1_digests(header: str) -> list[str]:
    """The values of the ``v1=`` items among the first items of *header*."""
    items = header.split(",", MAX_SIGNATURE_ITEMS)[:MAX_SIGNATURE_ITEMS]
    return [item.strip()[len(_PREFIX) :] for item in items if item.strip().startswith(_PREFIX)]
