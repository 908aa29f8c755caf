"""Personal API tokens (§8): issue, revoke and list them, and resolve a bearer token.

Issuing, revoking and listing are operator actions (the CLI, an embedding
host): they run as the ``operator`` system actor, outside any user's
authority, and each mutation appends exactly one audit event whose details
name the token id and name only. The raw token exists once, in the
:class:`~fleetprompt_core.services.views.IssuedApiToken` that issued it;
only its hash is stored.

:meth:`Credentials.resolve` is an ``IdentityResolver``: a bearer credential
becomes the principal of its user when it is a well-formed ``fpat_`` token
whose hash is stored, not revoked and not expired. It costs one indexed
look-up by hash and one by user id, and refuses malformed input (wrong
prefix, bad checksum) before touching storage.
"""

from __future__ import annotations

from typing import Final

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import Conflict, DuplicateError, NotFound
from fleetprompt_core.commands.parsers import parse_api_token_request
from fleetprompt_core.domain.model import Actor, ApiToken, User
from fleetprompt_core.policies.tokens import API_TOKEN_PREFIX, has_valid_checksum
from fleetprompt_core.ports import Principal, UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services.runtime import Call, Runtime, changed_ok
from fleetprompt_core.services.views import IssuedApiToken

__all__ = ["Credentials"]

#: Tokens fetched per keyset page when listing all of a user's tokens.
_LIST_PAGE: Final = 500


def _user(uow: UnitOfWork, external_id: str) -> User:
    user = uow.users.get_by_external_id(external_id)
    if user is None:
        raise NotFound("User not found.")
    return user


class Credentials:
    """Personal API tokens (§8): issue, revoke, list, and resolve a bearer token to its user; as
    ``app.credentials``.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def issue_api_token(
        self,
        external_id: str,
        *,
        name: str | None = None,
        expires_in_days: int | None = None,
        request_id: str | None = None,
    ) -> IssuedApiToken:
        """A new personal API token for the existing user of ``external_id``.

        ``name`` is 1..80 characters after trimming (default ``"default"``);
        ``expires_in_days`` 1..3650 (default: no expiry). Bad values are one
        ``VALIDATION_FAILED`` naming ``name`` and ``expiresInDays``; an unknown
        user is ``NOT_FOUND``. The answer carries the raw token, the only time
        it exists.
        """
        return self._issue(
            external_id, name, expires_in_days, Call(request_id=request_id), operator=True
        )

    def issue_own_api_token(
        self, call: Call, *, name: object = None, expires_in_days: object = None
    ) -> IssuedApiToken:
        """A signed-in user's new personal API token (the account page), audited as the
        user; the same rules as :meth:`issue_api_token`."""
        user = authz.signed_in(self._rt, call)
        return self._issue(user.external_id, name, expires_in_days, call, operator=False)

    def list_own_api_tokens(self, call: Call) -> list[ApiToken]:
        """The signed-in user's tokens (see :meth:`list_api_tokens`)."""
        return self.list_api_tokens(authz.signed_in(self._rt, call).external_id)

    def revoke_own_api_token(self, call: Call, token_id: str) -> ApiToken:
        """Revoke one of the signed-in user's tokens (``NOT_FOUND`` for anyone else's)."""
        user = authz.signed_in(self._rt, call)
        with self._rt.reader() as uow:
            token = uow.api_tokens.get(token_id)
        if token is None or token.user_id != user.user_id:
            raise NotFound("API token not found.")
        return self._revoke(token_id, call, audit.user_actor(user))

    def _issue(
        self,
        external_id: str,
        name: object,
        expires_in_days: object,
        call: Call,
        *,
        operator: bool,
    ) -> IssuedApiToken:
        request = parse_api_token_request({"name": name, "expiresInDays": expires_in_days})
        with self._rt.uow() as uow:
            user = _user(uow, external_id)
            now = self._rt.clock.now_ms()
            raw = self._rt.tokens.new_token(API_TOKEN_PREFIX)
            days = request.expires_in_days
            token = ApiToken(
                token_id=self._rt.ids.new_id("pat"),
                user_id=user.user_id,
                name=request.name,
                token_hash=self._rt.hasher.hash(raw),
                created_at_ms=now,
                expires_at_ms=None if days is None else now + days * limits.DAY_MS,
            )
            try:
                uow.api_tokens.add(token)
            except DuplicateError as error:  # pragma: no cover - 256-bit collision
                if error.constraint != UniqueConstraint.API_TOKEN_HASH:
                    raise
                raise Conflict("Please retry.") from None
            audit.record(
                self._rt,
                uow,
                call,
                "api_token.created",
                audit.system_actor("operator") if operator else audit.user_actor(user),
                "API token created.",
                details={"tokenId": token.token_id, "name": token.name},
            )
            uow.commit()
        return IssuedApiToken(
            token_id=token.token_id,
            user_id=token.user_id,
            name=token.name,
            api_token=raw,
            created_at_ms=token.created_at_ms,
            expires_at_ms=token.expires_at_ms,
        )

    def revoke_api_token(self, token_id: str, *, request_id: str | None = None) -> ApiToken:
        """Revoke a token (``NOT_FOUND`` if unknown); a revoked token is answered unchanged,
        without a new audit event."""
        return self._revoke(token_id, Call(request_id=request_id), audit.system_actor("operator"))

    def _revoke(self, token_id: str, call: Call, actor: Actor) -> ApiToken:
        with self._rt.uow() as uow:
            token = uow.api_tokens.get(token_id)
            if token is None:
                raise NotFound("API token not found.")
            if token.revoked_at_ms is not None:
                return token
            revoked = token.revoked(self._rt.clock.now_ms())
            changed_ok(uow.api_tokens.update(revoked, token.revoked_at_ms))
            audit.record(
                self._rt,
                uow,
                call,
                "api_token.revoked",
                actor,
                "API token revoked.",
                details={"tokenId": token.token_id, "name": token.name},
            )
            uow.commit()
        return revoked

    def me(self, call: Call) -> User:
        """The user the call is signed in as (made on first sight, as every signed-in
        call does); ``UNAUTHENTICATED`` for an anonymous call."""
        return authz.signed_in(self._rt, call)

    def list_api_tokens(self, external_id: str) -> list[ApiToken]:
        """Every token of the user of ``external_id``, revoked and expired ones included,
        newest first (``(created_at_ms, token_id)`` descending); ``NOT_FOUND`` for an
        unknown user. The stored values carry no raw token."""
        tokens: list[ApiToken] = []
        with self._rt.reader() as uow:
            user = _user(uow, external_id)
            while True:
                after = (tokens[-1].created_at_ms, tokens[-1].token_id) if tokens else None
                page = uow.api_tokens.list_for_user(user.user_id, after, _LIST_PAGE)
                tokens.extend(page)
                if len(page) < _LIST_PAGE:
                    return tokens

    def resolve(self, credential: str) -> Principal | None:
        """The principal a personal API token proves, or ``None`` (``IdentityResolver``).

        ``None`` unless ``credential`` is an ``fpat_`` token with a valid
        checksum whose hash is stored, usable now (not revoked, before its
        expiry) and whose user exists.
        """
        if not isinstance(credential, str) or not credential.startswith(API_TOKEN_PREFIX):
            return None
        if not has_valid_checksum(credential):
            return None
        token_hash = self._rt.hasher.hash(credential)
        now = self._rt.clock.now_ms()
        with self._rt.reader() as uow:
            token = uow.api_tokens.get_by_hash(token_hash)
            if token is None or not token.is_usable(now):
                return None
            user = uow.users.get(token.user_id)
        if user is None:
            return None
        return Principal(user.external_id, user.display_name, user.email, user=user)
