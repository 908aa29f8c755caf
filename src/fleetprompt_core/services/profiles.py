"""The publisher profile (B9): display name and bio of the calling publisher."""

from __future__ import annotations

from typing import Final

import attrs

from fleetprompt_core.base.enums import Role
from fleetprompt_core.commands.parsers import parse_profile_update
from fleetprompt_core.commands.payloads import ProfilePayload, Untrusted
from fleetprompt_core.domain.model import PublisherProfile, User
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.ports import UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services import throttle
from fleetprompt_core.services._idempotency import Operation
from fleetprompt_core.services.runtime import Call, Outcome, Runtime
from fleetprompt_core.services.views import default_profile

__all__ = ["Profiles", "current_profile"]

_PROFILE: Final = idempotency.ResultCodec(PublisherProfile)


def current_profile(uow: UnitOfWork, user: User) -> PublisherProfile:
    return uow.profiles.get(user.user_id) or default_profile(user)


class Profiles:
    """The calling publisher's own profile (B9): display name and bio; as ``app.profiles``."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def get(self, call: Call) -> PublisherProfile:
        """The caller's publisher profile (a default one until they save their own)."""
        user = authz.require_role(self._rt, call, Role.PUBLISHER)
        with self._rt.reader() as uow:
            return current_profile(uow, user)

    def put(
        self, call: Call, payload: ProfilePayload | Untrusted, *, idempotency_key: str | None = None
    ) -> Outcome[PublisherProfile]:
        """Replace the caller's display name and bio (verification is admin-only)."""
        user = authz.require_role(self._rt, call, Role.PUBLISHER)
        throttle.check_call(self._rt, throttle.Action.PUBLISHER_WRITE, call)

        def operation(uow: UnitOfWork) -> PublisherProfile:
            update = parse_profile_update(payload)
            profile = current_profile(uow, user)
            bio = (
                profile.bio
                if update.bio_markdown == profile.bio.markdown
                else rendered(update.bio_markdown)
            )
            changed = attrs.evolve(profile, display_name=update.display_name, bio=bio)
            if changed == profile and uow.profiles.get(user.user_id) is not None:
                return profile
            changed = attrs.evolve(changed, updated_at_ms=self._rt.clock.now_ms())
            uow.profiles.save(changed)
            audit.record(
                self._rt,
                uow,
                call,
                "publisher_profile.updated",
                audit.user_actor(user),
                "Publisher profile updated.",
                publisher_user_id=user.user_id,
            )
            return changed

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.PROFILE_UPDATE,
            key=idempotency_key,
            required=False,
            target={},
            body=payload,
            codec=_PROFILE,
            operation=operation,
        )
