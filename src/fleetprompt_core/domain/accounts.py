"""Built-in accounts and browser sessions (§8, §12), as frozen attrs classes.

An :class:`Account` is a way to sign in as an existing :class:`~.model.User`
(one account per user): a username, an optional e-mail address, and the
argon2id hash of the password. A :class:`BrowserSession` is one signed-in
browser; only the SHA-256 of its random session token is stored, like every
other bearer secret (ADR 0005), so a copy of the database signs nobody in.
"""

from __future__ import annotations

import attrs

__all__ = ["Account", "BrowserSession"]


@attrs.frozen
class Account:
    """A built-in account of the bundled web pages (§12): a user's sign-in email and argon2id
    password hash.
    """

    user_id: str
    #: Normalised (lower case); unique.
    username: str
    #: Normalised (lower case); unique when present. Sign-in accepts it like the username.
    email: str | None
    #: An argon2id PHC string (``$argon2id$v=19$m=...``); never the password.
    password_hash: str = attrs.field(repr=False)
    password_changed_at_ms: int
    created_at_ms: int
    updated_at_ms: int

    def with_password_hash(self, password_hash: str, now_ms: int, *, changed: bool) -> Account:
        """A new hash: a password change (``changed``) or a rehash of the same password."""
        return attrs.evolve(
            self,
            password_hash=password_hash,
            password_changed_at_ms=now_ms if changed else self.password_changed_at_ms,
            updated_at_ms=now_ms,
        )


@attrs.frozen
class BrowserSession:
    """One signed-in browser. Expired once idle too long or past its absolute end."""

    #: SHA-256 of the raw session token (the cookie value); the primary key.
    session_hash: str = attrs.field(repr=False)
    user_id: str
    created_at_ms: int
    last_seen_at_ms: int
    #: The absolute end, fixed at sign-in.
    expires_at_ms: int

    def is_active(self, now_ms: int, idle_ms: int) -> bool:
        return now_ms < self.expires_at_ms and now_ms < self.last_seen_at_ms + idle_ms

    def seen(self, now_ms: int) -> BrowserSession:
        return attrs.evolve(self, last_seen_at_ms=now_ms)
