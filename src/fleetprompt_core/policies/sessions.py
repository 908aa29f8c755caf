"""Browser sessions: the session token and the CSRF token bound to it (§8, §12).

A session token is a FleetPrompt token (``fpbs_`` + 256 random bits +
checksum, :mod:`.tokens`); the browser holds it in an ``HttpOnly`` cookie and
the server stores only its SHA-256. The CSRF token of a session is derived
from the session token (an HMAC of it under a fixed label), so it needs no
storage, changes whenever the session does (rotation on sign-in), and cannot
be computed by a page that cannot read the ``HttpOnly`` cookie. Forms of a
signed-in page carry it in a hidden field; every unsafe request that the
cookie authenticates must present it (compared in constant time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

__all__ = ["SESSION_TOKEN_PREFIX", "csrf_token_for", "csrf_token_matches"]

SESSION_TOKEN_PREFIX: Final = "fpbs_"  # noqa: S105 - a public prefix, not a secret
_CSRF_LABEL: Final = b"fleetprompt csrf v1"


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of the session whose raw token is ``session_token`` (43 characters)."""
    digest = hmac.new(
        session_token.encode("utf-8", "surrogatepass"), _CSRF_LABEL, hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_token_matches(session_token: str, presented: str | None) -> bool:
    """Whether ``presented`` is the CSRF token of ``session_token`` (constant time)."""
    if not presented or len(presented) > 128:
        return False
    return hmac.compare_digest(
        csrf_token_for(session_token).encode("ascii"),
        presented.encode("utf-8", "surrogatepass"),
    )
