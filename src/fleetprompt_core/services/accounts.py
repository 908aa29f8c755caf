"""Built-in accounts and browser sessions (§8, §12; ADR 0018).

An account signs a person in as an existing user: the account's username *is*
the user's external id, so the person who signs in on the web is the user the
API, the CLI and the audit log know. Passwords are checked by
:mod:`~fleetprompt_core.policies.passwords` and hashed by the
:class:`~fleetprompt_core.ports.PasswordHasher` port (argon2id); a hash made
with older parameters is replaced on the next successful sign-in.

Sessions live server-side in the session store (shared by every process of
one database): the browser holds only the raw token, the store its hash.
Signing in always starts a new session and ends the one the browser brought
(no fixation); a session ends after ``session_idle_ms`` without a request
and ``session_max_ms`` after sign-in; signing out ends it, and a password
change (by its owner or an operator) ends every session of the user.

Sign-in is rate-limited per client address and per account (the ``login``
rule, through the limiter port), and a wrong username and a wrong password
answer the same ``UNAUTHENTICATED``, after the same work: an unknown account
is verified against a dummy hash of today's parameters.
"""

from __future__ import annotations

import secrets
import threading
from typing import Final

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import (
    DuplicateError,
    NotFound,
    Unauthenticated,
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.commands.payloads import SignUpPayload, Untrusted
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import User
from fleetprompt_core.policies.passwords import (
    check_email,
    check_new_password,
    check_username,
    normalize_identifier,
    normalize_password,
)
from fleetprompt_core.policies.rate_limits import Action
from fleetprompt_core.policies.sessions import SESSION_TOKEN_PREFIX, csrf_token_for
from fleetprompt_core.policies.tokens import has_valid_checksum
from fleetprompt_core.policies.validation import Problems, Reader, check_text
from fleetprompt_core.ports import PasswordHasher, UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import throttle
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["Accounts", "SignedIn", "SignedInUser"]

#: A session's last activity is written at most this often (not on every page view).
TOUCH_EVERY_MS: Final = 60_000
_IDENTIFIER_MAX: Final = limits.EMAIL_MAX
_WRONG: Final = "The username or password is wrong."


@attrs.frozen
class SignedIn:
    """A new session: the raw token goes into the browser's cookie and nowhere else."""

    user: User
    session_token: str = attrs.field(repr=False)
    csrf_token: str = attrs.field(repr=False)
    expires_at_ms: int


@attrs.frozen
class SignedInUser:
    """Who a session token signs in, and the CSRF token its forms must carry."""

    user: User
    account: Account | None
    csrf_token: str = attrs.field(repr=False)
    session_expires_at_ms: int


def _taken(field: str) -> ValidationFailed:
    if field == "email":
        return ValidationFailed.single("email", "is already used by another account")
    return ValidationFailed.single("username", "is taken; choose another")


class Accounts:
    """Built-in accounts and browser sessions of the web pages (§12), as ``app.accounts``."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._dummy_lock = threading.Lock()
        self._dummy_hash: str | None = None

    # ------------------------------------------------------------------ helpers

    @property
    def _passwords(self) -> PasswordHasher:
        if self._rt.passwords is None:
            raise Unsupported("Built-in accounts are not offered by this server.")
        return self._rt.passwords

    def _dummy(self) -> str:
        """A hash of a random password with today's parameters (for unknown accounts)."""
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._passwords.hash(secrets.token_urlsafe(24))
            return self._dummy_hash

    def _session_hash(self, session_token: str) -> str | None:
        if not session_token.startswith(SESSION_TOKEN_PREFIX) or not has_valid_checksum(
            session_token
        ):
            return None
        return self._rt.hasher.hash(session_token)

    def _start_session(self, uow: UnitOfWork, user: User, now: int) -> SignedIn:
        raw = self._rt.tokens.new_token(SESSION_TOKEN_PREFIX)
        session = BrowserSession(
            session_hash=self._rt.hasher.hash(raw),
            user_id=user.user_id,
            created_at_ms=now,
            last_seen_at_ms=now,
            expires_at_ms=now + self._rt.settings.session_max_ms,
        )
        uow.sessions.add(session)
        return SignedIn(user, raw, csrf_token_for(raw), session.expires_at_ms)

    def _end(self, uow: UnitOfWork, session_token: str | None) -> None:
        session_hash = self._session_hash(session_token) if session_token else None
        if session_hash is not None:
            uow.sessions.delete(session_hash)

    # ------------------------------------------------------------------ sign-up and sign-in

    def sign_up(
        self, call: Call, payload: SignUpPayload | Untrusted, *, previous_session: str | None = None
    ) -> SignedIn:
        """Create a user with an account from ``{username, email?, displayName?, password}``
        and sign it in.

        ``UNSUPPORTED`` when sign-up is closed; ``VALIDATION_FAILED`` names the
        field (a taken username or e-mail included); rate-limited per client
        like sign-in (each sign-up costs an argon2id hash).
        """
        if not self._rt.settings.signup_enabled:
            raise Unsupported("Sign-up is closed on this server; ask an operator for an account.")
        passwords = self._passwords
        throttle.check(self._rt, Action.LOGIN, "client:" + (call.client or "unknown"))
        problems = Problems()
        body = Reader(payload, problems, allowed=("username", "email", "displayName", "password"))
        username = check_username(body.raw("username"), problems)
        email = check_email(body.raw("email"), problems)
        display_name = check_text(
            body.raw("displayName"),
            "displayName",
            problems,
            max_len=limits.DISPLAY_NAME_MAX,
            trim=True,
        )
        password = check_new_password(
            body.raw("password"), problems, username=username, email=email
        )
        problems.raise_if_any()
        assert username is not None
        assert password is not None
        with self._rt.reader() as uow:
            if uow.users.get_by_external_id(username) or uow.accounts.get_by_username(username):
                raise _taken("username")
            if email and uow.accounts.get_by_email(email):
                raise _taken("email")
        password_hash = passwords.hash(password)  # slow: outside any transaction
        now = self._rt.clock.now_ms()
        user = User(
            user_id=self._rt.ids.new_id("usr"),
            external_id=username,
            display_name=display_name or None,
            email=email,
            roles=frozenset(),
            created_at_ms=now,
            updated_at_ms=now,
        )
        account = Account(
            user_id=user.user_id,
            username=username,
            email=email,
            password_hash=password_hash,
            password_changed_at_ms=now,
            created_at_ms=now,
            updated_at_ms=now,
        )
        try:
            with self._rt.uow() as uow:
                uow.users.add(user)
                uow.accounts.add(account)
                self._end(uow, previous_session)
                signed_in = self._start_session(uow, user, now)
                audit.record(
                    self._rt,
                    uow,
                    call,
                    "account.created",
                    audit.user_actor(user),
                    "Account created by sign-up.",
                    details={"username": username},
                )
                uow.commit()
        except DuplicateError as error:
            if error.constraint == UniqueConstraint.ACCOUNT_EMAIL:
                raise _taken("email") from None
            if error.constraint in (
                UniqueConstraint.USER_EXTERNAL_ID,
                UniqueConstraint.ACCOUNT_USERNAME,
            ):
                raise _taken("username") from None
            raise
        return signed_in

    def sign_in(
        self,
        call: Call,
        identifier: object,
        password: object,
        *,
        previous_session: str | None = None,
    ) -> SignedIn:
        """A new session for the account named by ``identifier`` (username or e-mail).

        Any failure is one ``UNAUTHENTICATED`` with one message; past the
        ``login`` limit (per client, then per account) ``RATE_LIMITED``. The
        session the browser brought (``previous_session``) ends either way on
        success: the new one has a new id.
        """
        passwords = self._passwords
        throttle.check(self._rt, Action.LOGIN, "client:" + (call.client or "unknown"))
        name = (
            normalize_identifier(identifier)
            if isinstance(identifier, str) and 0 < len(identifier) <= _IDENTIFIER_MAX
            else None
        )
        account = None
        if name and "\x00" not in name:
            with self._rt.reader() as uow:
                account = (
                    uow.accounts.get_by_email(name)
                    if "@" in name
                    else uow.accounts.get_by_username(name)
                )
        throttle.check(
            self._rt,
            Action.LOGIN,
            "account:" + (account.user_id if account else f"unknown:{name or '-'}"),
        )
        typed = (
            normalize_password(password)
            if isinstance(password, str) and len(password) <= 4 * 256
            else ""
        )
        if account is None:
            passwords.verify(self._dummy(), typed or "-")  # the same work as a real check
            raise Unauthenticated(_WRONG)
        if not typed or not passwords.verify(account.password_hash, typed):
            raise Unauthenticated(_WRONG)
        now = self._rt.clock.now_ms()
        rehashed = (
            account.with_password_hash(passwords.hash(typed), now, changed=False)
            if passwords.needs_rehash(account.password_hash)
            else None
        )
        with self._rt.uow() as uow:
            user = uow.users.get(account.user_id)
            if user is None:  # pragma: no cover - accounts reference their user
                raise Unauthenticated(_WRONG)
            if rehashed is not None:
                # A concurrent password change wins: its hash stays.
                uow.accounts.update(rehashed, account.password_hash)
            self._end(uow, previous_session)
            signed_in = self._start_session(uow, user, now)
            audit.record(
                self._rt,
                uow,
                call,
                "account.signed_in",
                audit.user_actor(user),
                "Signed in with a password.",
                details={"rehashed": rehashed is not None},
            )
            uow.commit()
        return signed_in

    # ------------------------------------------------------------------ sessions

    def session(self, session_token: str) -> SignedInUser | None:
        """The user a session token signs in, or ``None`` (unknown, ended or expired).

        An expired session is deleted when it is seen; activity is recorded
        at most once a minute.
        """
        session_hash = self._session_hash(session_token)
        if session_hash is None:
            return None
        now = self._rt.clock.now_ms()
        with self._rt.reader() as uow:
            session = uow.sessions.get(session_hash)
            user = uow.users.get(session.user_id) if session is not None else None
            account = uow.accounts.get(session.user_id) if session is not None else None
        if session is None or user is None:
            return None
        if not session.is_active(now, self._rt.settings.session_idle_ms):
            with self._rt.uow() as uow:
                uow.sessions.delete(session_hash)
                uow.commit()
            return None
        if now - session.last_seen_at_ms >= TOUCH_EVERY_MS:
            with self._rt.uow() as uow:
                uow.sessions.touch(session_hash, now)
                uow.commit()
        return SignedInUser(user, account, csrf_token_for(session_token), session.expires_at_ms)

    def sign_out(self, session_token: str) -> None:
        """End the session (no error when it has already ended)."""
        session_hash = self._session_hash(session_token)
        if session_hash is None:
            return
        with self._rt.uow() as uow:
            uow.sessions.delete(session_hash)
            uow.commit()

    # ------------------------------------------------------------------ the account page

    def change_password(
        self, call: Call, current_password: object, new_password: object
    ) -> SignedIn:
        """Replace the caller's password and end **every** session of the caller;
        the answer is a fresh session for the browser that asked.

        A wrong current password is ``VALIDATION_FAILED`` on ``currentPassword``
        (rate-limited like sign-in); the new one must pass the password rules.
        """
        passwords = self._passwords
        user = authz.signed_in(self._rt, call)
        throttle.check(self._rt, Action.LOGIN, "account:" + user.user_id)
        with self._rt.reader() as uow:
            account = uow.accounts.get(user.user_id)
        if account is None:
            raise NotFound("This user has no password to change.")
        typed = normalize_password(current_password) if isinstance(current_password, str) else ""
        problems = Problems()
        if not typed or not passwords.verify(account.password_hash, typed):
            problems.add("currentPassword", "is not your current password")
        password = check_new_password(
            new_password,
            problems,
            username=account.username,
            email=account.email,
            path="newPassword",
        )
        problems.raise_if_any()
        assert password is not None
        return self._replace_password(call, user, account, password, actor_is_operator=False)

    def _replace_password(
        self, call: Call, user: User, account: Account, password: str, *, actor_is_operator: bool
    ) -> SignedIn:
        new_hash = self._passwords.hash(password)
        now = self._rt.clock.now_ms()
        with self._rt.uow() as uow:
            changed = uow.accounts.update(
                account.with_password_hash(new_hash, now, changed=True), account.password_hash
            )
            if not changed:
                raise ValidationFailed.single("currentPassword", "changed meanwhile; sign in again")
            ended = uow.sessions.delete_for_user(user.user_id)
            signed_in = self._start_session(uow, user, now)
            audit.record(
                self._rt,
                uow,
                call,
                "account.password_changed",
                audit.system_actor("operator") if actor_is_operator else audit.user_actor(user),
                "Password changed; every session ended.",
                details={"sessionsEnded": ended},
            )
            uow.commit()
        return signed_in

    def set_display_name(self, call: Call, display_name: object) -> User:
        """The caller's display name (1..80 after trimming; empty clears it)."""
        user = authz.signed_in(self._rt, call)
        problems = Problems()
        name = check_text(
            display_name, "displayName", problems, max_len=limits.DISPLAY_NAME_MAX, trim=True
        )
        problems.raise_if_any()
        now = self._rt.clock.now_ms()
        with self._rt.uow() as uow:
            current = uow.users.get(user.user_id) or user
            updated = attrs.evolve(current, display_name=name or None, updated_at_ms=now)
            uow.users.update(updated)
            audit.record(
                self._rt,
                uow,
                call,
                "user.updated",
                audit.user_actor(user),
                "Display name changed.",
            )
            uow.commit()
        return updated

    # ------------------------------------------------------------------ operators

    def set_password(
        self,
        external_id: str,
        password: str,
        *,
        email: str | None = None,
        request_id: str | None = None,
    ) -> Account:
        """An operator sets the password of the existing user ``external_id``.

        The user gets an account when it has none (its username is the
        external id, which must then be a valid username); an existing
        account's password is replaced and every session of the user ends.
        The password rules apply as for anyone.
        """
        passwords = self._passwords
        with self._rt.reader() as uow:
            user = uow.users.get_by_external_id(external_id)
            account = uow.accounts.get(user.user_id) if user is not None else None
        if user is None:
            raise NotFound("User not found.")
        call = Call(request_id=request_id)
        problems = Problems()
        if account is not None:
            checked = check_new_password(
                password, problems, username=account.username, email=account.email
            )
            problems.raise_if_any()
            assert checked is not None
            self._replace_password(call, user, account, checked, actor_is_operator=True)
            with self._rt.reader() as uow:
                return uow.accounts.get(user.user_id) or account
        username, address, checked = self.check_new_account(external_id, password, email)
        now = self._rt.clock.now_ms()
        created = Account(
            user_id=user.user_id,
            username=username,
            email=address,
            password_hash=passwords.hash(checked),
            password_changed_at_ms=now,
            created_at_ms=now,
            updated_at_ms=now,
        )
        try:
            with self._rt.uow() as uow:
                uow.accounts.add(created)
                audit.record(
                    self._rt,
                    uow,
                    call,
                    "account.created",
                    audit.system_actor("operator"),
                    "Account created by an operator.",
                    details={"username": username},
                )
                uow.commit()
        except DuplicateError as error:
            if error.constraint == UniqueConstraint.ACCOUNT_EMAIL:
                raise _taken("email") from None
            raise
        return created

    def check_new_account(
        self, external_id: str, password: str, email: str | None
    ) -> tuple[str, str | None, str]:
        """The username, e-mail and normalised password of an account an operator is about
        to create for ``external_id``; ``VALIDATION_FAILED`` before anything is written."""
        problems = Problems()
        username = check_username(external_id, problems, path="username")
        address = check_email(email, problems)
        checked = check_new_password(password, problems, username=username, email=address)
        problems.raise_if_any()
        assert username is not None
        assert checked is not None
        if username != external_id:
            raise ValidationFailed.single("username", "must be the external id in lower case")
        return username, address, checked

    def account_of(self, external_id: str) -> Account | None:
        """The account of a user (``None`` when the user has none or does not exist)."""
        with self._rt.reader() as uow:
            user = uow.users.get_by_external_id(external_id)
            return uow.accounts.get(user.user_id) if user is not None else None

    def purge_sessions(self, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired sessions (the retention job)."""
        with self._rt.uow() as uow:
            dropped = uow.sessions.delete_expired(
                self._rt.clock.now_ms(), self._rt.settings.session_idle_ms, limit
            )
            uow.commit()
        return dropped
