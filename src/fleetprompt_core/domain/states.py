"""The four state machines of the contract (§4) as explicit transition tables.

A status only changes through :meth:`StateMachine.require`, which raises
:class:`IllegalTransition` (a ``CONFLICT``) for any pair not in the table. The
entities expose transition methods that call it before building the new
(immutable) value, so an illegal transition cannot be performed and changes
nothing.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

import attrs

from fleetprompt_core.base.enums import (
    InstallIntentStatus as IIS,
)
from fleetprompt_core.base.enums import (
    InstallTokenStatus as ITS,
)
from fleetprompt_core.base.enums import (
    ListingStatus as LS,
)
from fleetprompt_core.base.enums import (
    ReleaseStatus as RS,
)
from fleetprompt_core.base.errors import Conflict

__all__ = [
    "INSTALL_INTENT",
    "INSTALL_TOKEN",
    "LISTING_BY_ADMIN",
    "LISTING_BY_PUBLISHER",
    "RELEASE",
    "IllegalTransition",
    "StateMachine",
]

S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(Conflict):
    """A status change that the machine's table does not allow."""


@attrs.frozen
class StateMachine(Generic[S]):
    """A named set of allowed ``(from, to)`` status pairs."""

    name: str
    transitions: frozenset[tuple[S, S]]

    def allows(self, source: S, target: S) -> bool:
        return (source, target) in self.transitions

    def require(self, source: S, target: S) -> None:
        if not self.allows(source, target):
            raise IllegalTransition(
                f"A {self.name} cannot move from {source.value} to {target.value}.",
                hint=f"{self.name} is {source.value}",
            )


#: What a publisher may do to their own listing. ``→ published`` additionally
#: needs at least one published release (checked by the publishing use case).
LISTING_BY_PUBLISHER: StateMachine[LS] = StateMachine(
    "listing",
    frozenset(
        {
            (LS.DRAFT, LS.PUBLISHED),
            (LS.PUBLISHED, LS.UNLISTED),
            (LS.PUBLISHED, LS.DRAFT),
            (LS.UNLISTED, LS.PUBLISHED),
            (LS.UNLISTED, LS.DRAFT),
        }
    ),
)

#: What only an admin may do: suspend from any other status; lift a suspension
#: back to ``unlisted``.
LISTING_BY_ADMIN: StateMachine[LS] = StateMachine(
    "listing",
    frozenset(
        {
            (LS.DRAFT, LS.SUSPENDED),
            (LS.PUBLISHED, LS.SUSPENDED),
            (LS.UNLISTED, LS.SUSPENDED),
            (LS.SUSPENDED, LS.UNLISTED),
        }
    ),
)

RELEASE: StateMachine[RS] = StateMachine("release", frozenset({(RS.PUBLISHED, RS.REVOKED)}))

INSTALL_INTENT: StateMachine[IIS] = StateMachine(
    "install intent",
    frozenset(
        {
            (IIS.CREATED, IIS.TOKEN_ISSUED),
            (IIS.TOKEN_ISSUED, IIS.TOKEN_ISSUED),
            (IIS.CREATED, IIS.REDEEMED),
            (IIS.TOKEN_ISSUED, IIS.REDEEMED),
            (IIS.CREATED, IIS.CANCELED),
            (IIS.TOKEN_ISSUED, IIS.CANCELED),
            (IIS.CREATED, IIS.EXPIRED),
            (IIS.TOKEN_ISSUED, IIS.EXPIRED),
        }
    ),
)

INSTALL_TOKEN: StateMachine[ITS] = StateMachine(
    "install token",
    frozenset(
        {
            (ITS.ISSUED, ITS.REDEEMED),
            (ITS.ISSUED, ITS.EXPIRED),
            (ITS.ISSUED, ITS.REVOKED),
        }
    ),
)
