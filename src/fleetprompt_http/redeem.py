"""Reading a redeem request's headers (§7): the HTTP side of the HMAC scheme.

The core's :class:`~fleetprompt_core.policies.signing.RedeemVerifier` verifies
values; this module reads them from the raw ASGI header list, where a header
sent twice is still visible (a mapping would keep one of the values and hide
the other):

* the three ``X-WHS-Delegation-*`` values, and whether any of them came more
  than once (refused: which of two sources would be the caller?). A source or
  timestamp holding a comma counts too: that is how an intermediary joins two
  values of one header (RFC 9110 §5.3). The signature header is a
  comma-separated list by definition (key rotation), so it is never "joined";
* whether the request looks like it came from a browser: an ``Origin``, any
  cookie, or the ``Sec-Fetch-*`` metadata browsers attach to every request
  they make. Servers send none of these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from fleetprompt_core.policies.signing import SIGNATURE_HEADER, SOURCE_HEADER, TIMESTAMP_HEADER

__all__ = ["RedeemHeaders", "read_redeem_headers"]

_SOURCE: Final = SOURCE_HEADER.lower().encode("ascii")
_TIMESTAMP: Final = TIMESTAMP_HEADER.lower().encode("ascii")
_SIGNATURE: Final = SIGNATURE_HEADER.lower().encode("ascii")
_DELEGATION: Final = (_SOURCE, _TIMESTAMP, _SIGNATURE)
#: Headers whose value can never hold a comma: one there means two values were joined.
_SINGLE: Final = (_SOURCE, _TIMESTAMP)
_BROWSER: Final = frozenset(
    {b"origin", b"cookie", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest"}
)


@attrs.frozen
class RedeemHeaders:
    """What the verifier needs from a redeem request's headers."""

    source: str | None = None
    timestamp: str | None = None
    signature: str | None = None
    browser_context: bool = False
    duplicate_header: bool = False


def read_redeem_headers(headers: Iterable[tuple[bytes, bytes]]) -> RedeemHeaders:
    """Read ASGI ``(name, value)`` pairs (names lower-case, as ASGI servers give them)."""
    values: dict[bytes, list[str]] = {name: [] for name in _DELEGATION}
    browser = False
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name in values:
            values[name].append(raw_value.decode("latin-1"))
        elif name in _BROWSER:
            browser = True

    def one(name: bytes) -> str | None:
        found = values[name]
        return found[0] if len(found) == 1 else None

    return RedeemHeaders(
        source=one(_SOURCE),
        timestamp=one(_TIMESTAMP),
        signature=one(_SIGNATURE),
        browser_context=browser,
        duplicate_header=any(len(found) > 1 for found in values.values())
        or any("," in value for name in _SINGLE for value in values[name]),
    )
