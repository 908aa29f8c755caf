"""Keyset pagination with opaque, tamper-evident cursors (ADR 0001).

A cursor carries the sort key of the last item of a page, never an offset. It
is signed with an HMAC key together with the *scope* of the listing it came
from (endpoint, caller and filters), so a cursor that was edited, truncated or
taken from another query is rejected as ``VALIDATION_FAILED`` on ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Final, Generic, TypeVar

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import ValidationFailed

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorCodec",
    "Page",
    "Position",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
_VERSION: Final = 1
_MAC_BYTES: Final = 16
_MAX_CURSOR_CHARS: Final = limits.CURSOR_MAX

T = TypeVar("T")
Position = tuple[int | str, ...]


@attrs.frozen
class Page(Generic[T]):
    """One page of a list: its ``items`` and the cursor of the next page (``None`` on the last)."""

    items: tuple[T, ...]
    next_cursor: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class CursorCodec:
    """Encodes and verifies cursors. ``key`` must be shared by every server process."""

    key: bytes = attrs.field(repr=False)

    @key.validator
    def _check_key(self, _attribute: object, value: bytes) -> None:
        if len(value) < 16:
            raise ValueError("the cursor key must be at least 16 bytes")

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode("utf-8", "surrogatepass") + b"\x00" + payload
        return hmac.new(self.key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, scope: str, position: Position) -> str:
        """An opaque, signed cursor for ``position`` in the list named by ``scope``."""
        payload = json.dumps([_VERSION, list(position)], separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._mac(scope, payload))

    def decode(self, scope: str, cursor: str, shape: Sequence[type]) -> Position:
        """The position in ``cursor``; ``shape`` gives the type of each component."""
        invalid = ValidationFailed.single(
            "cursor", "The cursor is malformed or does not belong to this query."
        )
        if not cursor or len(cursor) > _MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise invalid
        body, mac = cursor.split(".")
        try:
            payload = _unb64(body)
            given_mac = _unb64(mac)
        except (binascii.Error, ValueError):
            raise invalid from None
        if _b64(payload) != body or _b64(given_mac) != mac:
            raise invalid  # only the canonical spelling is accepted: no padding, no slack bits
        if not hmac.compare_digest(given_mac, self._mac(scope, payload)):
            raise invalid
        try:
            version, values = json.loads(payload)
        except (ValueError, TypeError):
            raise invalid from None
        if version != _VERSION or not isinstance(values, list) or len(values) != len(shape):
            raise invalid
        for value, kind in zip(values, shape, strict=True):
            if type(value) is not kind:
                raise invalid
        return tuple(values)
