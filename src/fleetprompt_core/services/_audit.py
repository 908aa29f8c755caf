"""Writing and reading the audit log. Every mutation appends exactly one event."""

from __future__ import annotations

from collections.abc import Mapping

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import ActorType, Role
from fleetprompt_core.domain.model import Actor, AuditEvent, AuditValue, User
from fleetprompt_core.policies.redaction import redact_text
from fleetprompt_core.ports import UnitOfWork
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["event", "record", "system_actor", "user_actor"]

_DETAIL_KEYS_MAX = 16
_DETAIL_VALUE_MAX = 200


def user_actor(user: User) -> Actor:
    return Actor(type=ActorType.USER, user_id=user.user_id)


def system_actor(system: str) -> Actor:
    return Actor(type=ActorType.SYSTEM, system=system)


def _bounded(details: Mapping[str, AuditValue]) -> dict[str, AuditValue]:
    bounded: dict[str, AuditValue] = {}
    for key, value in list(details.items())[:_DETAIL_KEYS_MAX]:
        bounded[key] = redact_text(value)[:_DETAIL_VALUE_MAX] if isinstance(value, str) else value
    return bounded


def record(
    rt: Runtime,
    uow: UnitOfWork,
    call: Call,
    type_: str,
    actor: Actor,
    summary: str,
    *,
    details: Mapping[str, AuditValue] | None = None,
    publisher_user_id: str | None = None,
    listing_id: str | None = None,
    release_id: str | None = None,
    install_intent_id: str | None = None,
) -> AuditEvent:
    """Append one bounded, secret-free event inside the caller's unit of work."""
    built = event(
        rt,
        call,
        type_,
        actor,
        summary,
        details=details,
        publisher_user_id=publisher_user_id,
        listing_id=listing_id,
        release_id=release_id,
        install_intent_id=install_intent_id,
    )
    uow.audit.append(built)
    return built


def event(
    rt: Runtime,
    call: Call,
    type_: str,
    actor: Actor,
    summary: str,
    *,
    details: Mapping[str, AuditValue] | None = None,
    publisher_user_id: str | None = None,
    listing_id: str | None = None,
    release_id: str | None = None,
    install_intent_id: str | None = None,
) -> AuditEvent:
    """One bounded, secret-free event, not yet stored: for a repository that writes it
    together with the change it records (redemption)."""
    return AuditEvent(
        event_id=rt.ids.new_id("evt"),
        type=type_,
        actor=actor,
        created_at_ms=rt.clock.now_ms(),
        summary=redact_text(summary)[: limits.AUDIT_SUMMARY_MAX],
        details=_bounded(details or {}),
        publisher_user_id=publisher_user_id,
        listing_id=listing_id,
        release_id=release_id,
        install_intent_id=install_intent_id,
        request_id=call.request_id,
    )


def roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles)) or "-"
