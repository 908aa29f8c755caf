"""The one place roles change (admins through A2, the operator from its tools)."""

from __future__ import annotations

from collections.abc import Set

from fleetprompt_core.base.enums import Role
from fleetprompt_core.domain.model import Actor, User
from fleetprompt_core.ports import UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["change_roles"]


def change_roles(
    rt: Runtime,
    uow: UnitOfWork,
    call: Call,
    user: User,
    *,
    grant: Set[Role],
    revoke: Set[Role],
    actor: Actor,
) -> User:
    """``user`` with ``grant`` added and ``revoke`` removed; audited when anything changed."""
    roles = (user.roles | grant) - revoke
    if roles == user.roles:
        return user
    updated = user.with_roles(frozenset(roles), rt.clock.now_ms())
    uow.users.update(updated)
    audit.record(
        rt,
        uow,
        call,
        "user.roles_changed",
        actor,
        "User roles changed.",
        details={
            "userId": user.user_id,
            "from": audit.roles_text(user.roles),
            "to": audit.roles_text(updated.roles),
        },
    )
    return updated
