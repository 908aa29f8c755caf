"""The one authorization module every use case goes through (ADR 0002).

* :func:`signed_in` resolves the caller's principal to a user, creating the
  user on first sight (its own small transaction, audited as ``user.created``).
* :func:`require_role` adds a role check (``UNAUTHORIZED`` without it).
* The ``owned_*`` / ``visible_*`` loaders answer ``NOT_FOUND`` for anything the
  caller may not see, exactly as for something that does not exist.

Write scope always comes from the resolved user, never from a client id.
"""

from __future__ import annotations

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import ListingStatus, Role
from fleetprompt_core.base.errors import (
    DuplicateError,
    NotFound,
    Unauthenticated,
    Unauthorized,
)
from fleetprompt_core.domain.model import InstallIntent, Listing, Release, User
from fleetprompt_core.domain.search import ListingDetail
from fleetprompt_core.policies.validation import Problems, check_text
from fleetprompt_core.ports import Principal, UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = [
    "own_intent",
    "owned_listing",
    "owned_release",
    "public_listing",
    "public_publisher",
    "public_release",
    "require_admin",
    "require_role",
    "signed_in",
]


def _checked_principal(principal: Principal) -> Principal:
    problems = Problems()
    external_id = check_text(
        principal.external_id,
        "externalId",
        problems,
        max_len=limits.EXTERNAL_ID_MAX,
        min_len=1,
        required=True,
        nullable=False,
    )
    if problems or external_id is None:
        # An identity adapter handed over something unusable: treat as no identity.
        raise Unauthenticated()
    return principal


def _profile_fields(principal: Principal) -> tuple[str | None, str | None]:
    """Display name and e-mail from the identity provider, kept only when within bounds."""
    problems = Problems()
    name = check_text(
        principal.display_name, "displayName", problems, max_len=limits.DISPLAY_NAME_MAX, trim=True
    )
    email = check_text(principal.email, "email", problems, max_len=limits.EMAIL_MAX, trim=True)
    return name or None, email or None


def signed_in(rt: Runtime, call: Call) -> User:
    """The calling user, created on first sight of its external id."""
    if call.principal is None:
        raise Unauthenticated()
    principal = _checked_principal(call.principal)
    known = principal.user
    if known is not None and known.external_id == principal.external_id:
        return known  # read by the credential's resolver in this request (ADR 0037)
    with rt.reader() as uow:
        user = uow.users.get_by_external_id(principal.external_id)
    if user is not None:
        return user
    now = rt.clock.now_ms()
    name, email = _profile_fields(principal)
    user = User(
        user_id=rt.ids.new_id("usr"),
        external_id=principal.external_id,
        display_name=name,
        email=email,
        roles=frozenset(),
        created_at_ms=now,
        updated_at_ms=now,
    )
    try:
        with rt.uow() as uow:
            uow.users.add(user)
            audit.record(
                rt,
                uow,
                call,
                "user.created",
                audit.user_actor(user),
                "User seen for the first time.",
            )
            uow.commit()
    except DuplicateError as error:
        if error.constraint != UniqueConstraint.USER_EXTERNAL_ID:
            raise
        # Another request created it first: use theirs.
        with rt.reader() as uow:
            existing = uow.users.get_by_external_id(principal.external_id)
        if existing is None:  # pragma: no cover - the row cannot vanish
            raise
        return existing
    return user


def require_role(rt: Runtime, call: Call, role: Role) -> User:
    user = signed_in(rt, call)
    if not user.has_role(role):
        raise Unauthorized(f"This needs the {role.value} role.")
    return user


def require_admin(rt: Runtime, call: Call) -> User:
    return require_role(rt, call, Role.ADMIN)


def owned_listing(uow: UnitOfWork, user: User, listing_id: str) -> Listing:
    listing = uow.listings.get(listing_id)
    if listing is None or listing.publisher_user_id != user.user_id:
        raise NotFound("Listing not found.")
    return listing


def owned_release(uow: UnitOfWork, user: User, release_id: str) -> Release:
    release = uow.releases.get(release_id)
    if release is None or release.publisher_user_id != user.user_id:
        raise NotFound("Release not found.")
    return release


def own_intent(uow: UnitOfWork, user: User, install_intent_id: str) -> InstallIntent:
    intent = uow.intents.get(install_intent_id)
    if intent is None or intent.buyer_user_id != user.user_id:
        raise NotFound("Install intent not found.")
    return intent


def public_listing(uow: UnitOfWork, listing_id: str) -> Listing:
    listing = uow.listings.get(listing_id)
    if listing is None or not _public(listing.status):
        raise NotFound("Listing not found.")
    return listing


def public_detail(detail: ListingDetail | None) -> ListingDetail:
    """A listing's detail read anyone may see: the listing is published (``public_listing``)."""
    if detail is None or not _public(detail.card.status):
        raise NotFound("Listing not found.")
    return detail


def _public(status: ListingStatus) -> bool:
    """Whether anyone may read a listing in ``status``: only a published one."""
    return status is ListingStatus.PUBLISHED


def public_release(uow: UnitOfWork, release_id: str) -> Release:
    """A release anyone may read: its listing is published (a revoked one is marked so)."""
    release = uow.releases.get(release_id)
    if release is None:
        raise NotFound("Release not found.")
    try:
        public_listing(uow, release.listing_id)
    except NotFound:
        raise NotFound("Release not found.") from None
    return release


def public_publisher(uow: UnitOfWork, publisher_id: str) -> User:
    """A publisher anyone may read: one with at least one published listing. Any other
    user id answers ``NOT_FOUND``, so user ids cannot be probed through it."""
    user = uow.users.get(publisher_id)
    if user is None or not uow.listings.list_by_owner(
        user.user_id, ListingStatus.PUBLISHED, None, 1
    ):
        raise NotFound("Publisher not found.")
    return user
