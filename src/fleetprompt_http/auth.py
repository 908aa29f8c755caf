"""Who is calling: bearer credentials to a :class:`~fleetprompt_core.ports.Principal` (§8).

The server accepts two kinds of bearer credential, each behind the core's
identity port: its own personal API tokens (``fpat_…``, resolved by the core's
``Credentials`` use case against stored hashes) and, when configured, JWTs from
an OIDC provider. No ``Authorization`` header means an anonymous call (public
endpoints work, the core refuses the others with ``UNAUTHENTICATED``); a header
that proves nothing is ``UNAUTHENTICATED`` everywhere, with one message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from fleetprompt_core.base.errors import Unauthenticated
from fleetprompt_core.policies.tokens import API_TOKEN_PREFIX
from fleetprompt_core.ports import IdentityResolver, Principal

__all__ = ["BearerAuthenticator"]

_SCHEME: Final = "bearer"
_MAX_CREDENTIAL: Final = 8192


def _refused() -> Unauthenticated:
    return Unauthenticated("The credentials are missing, invalid or expired.")


@attrs.frozen
class BearerAuthenticator:
    """Resolve an ``Authorization`` header with API tokens first, then any other resolver."""

    api_tokens: IdentityResolver
    others: Sequence[IdentityResolver] = ()

    def resolves_in_process(self, authorization: str | None) -> bool:
        """Whether resolving ``authorization`` needs nothing but the database: no header,
        an API token, or no other resolver configured (an OIDC resolver may fetch keys)."""
        if authorization is None or not self.others:
            return True
        _, _, credential = authorization.strip().partition(" ")
        return credential.strip().startswith(API_TOKEN_PREFIX)

    def principal(self, authorization: str | None) -> Principal | None:
        """``None`` for no header; the principal it proves; else ``UNAUTHENTICATED``."""
        if authorization is None:
            return None
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != _SCHEME or not credential or len(credential) > _MAX_CREDENTIAL:
            raise _refused()
        if credential.startswith(API_TOKEN_PREFIX):
            principal = self.api_tokens.resolve(credential)
        else:
            principal = next(
                (p for r in self.others if (p := r.resolve(credential)) is not None), None
            )
        if principal is None:
            raise _refused()
        return principal
