"""Reads the bundled web pages need beyond the API's: a publisher's public page, a
publisher's install activity per day, and an admin's look-up of a user by name.

They follow the same rules as every other use case (``authz`` decides who
sees what; ``NOT_FOUND`` for what the caller may not see) and return the
same views the API shapes.
"""

from __future__ import annotations

from typing import Final

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import ListingStatus, Role
from fleetprompt_core.base.errors import NotFound
from fleetprompt_core.domain.model import PublisherProfile, User
from fleetprompt_core.policies.passwords import normalize_identifier
from fleetprompt_core.ports import AuditQuery
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import throttle
from fleetprompt_core.services.profiles import current_profile
from fleetprompt_core.services.runtime import Call, Runtime
from fleetprompt_core.services.views import PublicListing, public_listings

__all__ = ["DailyActivity", "PublisherPage", "Storefront"]

#: Published listings shown on a publisher's page.
_PUBLISHER_LISTINGS: Final = 50
_ACTIVITY_DAYS: Final = 30
_AUDIT_PAGE: Final = 500


@attrs.frozen
class PublisherPage:
    """A publisher's public page: the profile and up to 50 published listings."""

    profile: PublisherProfile
    listings: tuple[PublicListing, ...]


@attrs.frozen
class DailyActivity:
    """Install attempts (intents created) per UTC day, oldest day first, per release."""

    first_day_ms: int
    days: int
    #: release id → one count per day.
    per_release: dict[str, tuple[int, ...]]

    @property
    def total(self) -> tuple[int, ...]:
        """Install attempts per day over every release."""
        sums = [0] * self.days
        for counts in self.per_release.values():
            for index, count in enumerate(counts):
                sums[index] += count
        return tuple(sums)


class Storefront:
    """Reads of the web pages: a publisher's page, install activity, finding a user."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def publisher(self, publisher_id: str, call: Call | None = None) -> PublisherPage:
        """A publisher's public profile and published listings; ``NOT_FOUND`` unless the
        user is a publisher with a published listing (``authz.public_publisher``)."""
        throttle.check_call(self._rt, throttle.Action.DETAIL, call or Call())
        with self._rt.reader() as uow:
            user = authz.public_publisher(uow, publisher_id)
            rows = uow.listings.list_by_owner(
                user.user_id, ListingStatus.PUBLISHED, None, _PUBLISHER_LISTINGS
            )
            profile = current_profile(uow, user)
            listings = public_listings(uow, rows, self._rt.clock.now_ms())
        return PublisherPage(profile, tuple(listings))

    def install_activity(self, call: Call, listing_id: str) -> DailyActivity:
        """The owner's view of install attempts per day over the last 30 days, per release
        (from the audit log's ``install_intent.created`` events)."""
        user = authz.require_role(self._rt, call, Role.PUBLISHER)
        now = self._rt.clock.now_ms()
        today = now - now % limits.DAY_MS
        first_day = today - (_ACTIVITY_DAYS - 1) * limits.DAY_MS
        counts: dict[str, list[int]] = {}
        with self._rt.reader() as uow:
            listing = authz.owned_listing(uow, user, listing_id)
            query = AuditQuery(type="install_intent.created", listing_id=listing.listing_id)
            after = None
            while True:
                events = uow.audit.query(query, after, _AUDIT_PAGE)
                for event in events:
                    if event.created_at_ms < first_day:
                        break
                    day = (event.created_at_ms - first_day) // limits.DAY_MS
                    release = event.release_id or "-"
                    counts.setdefault(release, [0] * _ACTIVITY_DAYS)[
                        min(day, _ACTIVITY_DAYS - 1)
                    ] += 1
                else:
                    if len(events) == _AUDIT_PAGE:
                        after = (events[-1].created_at_ms, events[-1].event_id)
                        continue
                break
        return DailyActivity(
            first_day, _ACTIVITY_DAYS, {k: tuple(v) for k, v in sorted(counts.items())}
        )

    def find_user(self, call: Call, name: str) -> User:
        """An admin finds a user by external id (a username) or an account's e-mail."""
        authz.require_admin(self._rt, call)
        wanted = name.strip() if isinstance(name, str) else ""
        if not wanted or len(wanted) > limits.EXTERNAL_ID_MAX or "\x00" in wanted:
            raise NotFound("User not found.")
        with self._rt.reader() as uow:
            user = uow.users.get_by_external_id(wanted) or uow.users.get(wanted)
            if user is None:
                account = uow.accounts.get_by_email(normalize_identifier(wanted))
                if account is None:
                    account = uow.accounts.get_by_username(normalize_identifier(wanted))
                user = uow.users.get(account.user_id) if account else None
        if user is None:
            raise NotFound("User not found.")
        return user
