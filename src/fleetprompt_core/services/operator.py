"""Operator actions for a composition root's own tools (CLI, embedding host, seeding).

These run as the ``operator`` system actor, outside any user's authority;
they are how the first admin comes to exist. Roles are never self-assigned
through the user-facing use cases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import Role
from fleetprompt_core.base.errors import NotFound
from fleetprompt_core.domain.model import User
from fleetprompt_core.policies.validation import Problems, check_text
from fleetprompt_core.ports import Principal
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services._roles import change_roles
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["Operator"]


#: Users read per unit of work when listing them all.
_LIST_PAGE: Final = 500


class Operator:
    """What a deployment's operator does outside any user's authority: create users,
    grant and revoke roles, list users (``app.operator``)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def list_users(self) -> list[User]:
        """Every user, oldest first (by ``user_id``, which is time-ordered)."""
        users: list[User] = []
        with self._rt.reader() as uow:
            while True:
                page = uow.users.list_page(users[-1].user_id if users else None, _LIST_PAGE)
                users.extend(page)
                if len(page) < _LIST_PAGE:
                    return users

    def ensure_user(
        self,
        external_id: str,
        *,
        display_name: str | None = None,
        roles: Iterable[Role] = (),
    ) -> User:
        """The user of ``external_id`` (created if new) holding at least ``roles``.

        Unlike an identity provider's claims, which are dropped when out of
        bounds, an operator's ``external_id`` and ``display_name`` are checked:
        ``VALIDATION_FAILED`` names the field.
        """
        problems = Problems()
        check_text(
            external_id,
            "externalId",
            problems,
            max_len=limits.EXTERNAL_ID_MAX,
            min_len=1,
            required=True,
            nullable=False,
        )
        check_text(
            display_name, "displayName", problems, max_len=limits.DISPLAY_NAME_MAX, trim=True
        )
        problems.raise_if_any()
        user = authz.signed_in(self._rt, Call(Principal(external_id, display_name)))
        wanted = frozenset(roles)
        if wanted <= user.roles:
            return user
        return self.set_roles(external_id, grant=wanted)

    def set_roles(
        self, external_id: str, *, grant: Iterable[Role] = (), revoke: Iterable[Role] = ()
    ) -> User:
        """Grant and revoke roles of the user of ``external_id`` as the operator; the user's roles
        after.
        """
        granted, revoked = frozenset(grant), frozenset(revoke)
        with self._rt.uow() as uow:
            user = uow.users.get_by_external_id(external_id)
            if user is None:
                raise NotFound("User not found.")
            updated = change_roles(
                self._rt,
                uow,
                Call(),
                user,
                grant=granted,
                revoke=revoked,
                actor=audit.system_actor("operator"),
            )
            uow.commit()
        return updated
