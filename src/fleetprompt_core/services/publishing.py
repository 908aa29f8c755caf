"""The publisher console (B1–B8): own listings and their releases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fleetprompt_core.base.enums import ListingStatus, ReleaseStatus, Role
from fleetprompt_core.base.errors import Conflict, DuplicateError
from fleetprompt_core.commands.parsers import (
    CONTENT_ATTRIBUTES,
    apply_listing_patch,
    parse_new_listing,
    parse_new_release,
    parse_reason,
    parse_status_change,
)
from fleetprompt_core.commands.payloads import (
    ListingPatchPayload,
    NewListingPayload,
    NewReleasePayload,
    ReasonPayload,
    StatusChangePayload,
    Untrusted,
)
from fleetprompt_core.domain.model import AuditValue, Listing, Moderation, Release, User
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.policies.pagination import Page
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services import throttle
from fleetprompt_core.services._idempotency import Operation
from fleetprompt_core.services._paging import page_request, paginate
from fleetprompt_core.services.catalog import release_page
from fleetprompt_core.services.installs import revoke_listing_tokens
from fleetprompt_core.services.runtime import Call, Outcome, Runtime, changed_ok
from fleetprompt_core.services.views import ListingView, listing_views, new_listing_view

__all__ = ["Publishing"]

_LISTING: Final = idempotency.ResultCodec(ListingView)
_RELEASE: Final = idempotency.ResultCodec(Release)


class Publishing:
    """Use cases of a publisher on their own listings and releases."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def _publisher(self, call: Call) -> User:
        return authz.require_role(self._rt, call, Role.PUBLISHER)

    def _writer(self, call: Call) -> User:
        user = self._publisher(call)
        throttle.check_call(self._rt, throttle.Action.PUBLISHER_WRITE, call)
        return user

    def _view(self, uow: UnitOfWork, listing: Listing) -> ListingView:
        (view,) = listing_views(uow, [listing], self._rt.clock.now_ms())
        return view

    # -- listings ---------------------------------------------------------------------

    def list_listings(
        self, call: Call, params: Mapping[str, object] | None = None
    ) -> Page[ListingView]:
        """B1: the caller's own listings, newest first, optionally by status."""
        user = self._publisher(call)
        request = page_request(params, "status")
        status = request.reader.choice("status", ListingStatus)
        request.problems.raise_if_any()
        scope = f"publisher-listings|{user.user_id}|{status.value if status else ''}"
        after = request.after(self._rt, scope)
        with self._rt.reader() as uow:
            rows = uow.listings.list_by_owner(user.user_id, status, after, request.limit + 1)
            page = paginate(
                self._rt, scope, rows, request.limit, lambda r: (r.created_at_ms, r.listing_id)
            )
            items = listing_views(uow, page.items, self._rt.clock.now_ms())
        return Page(tuple(items), page.next_cursor)

    def create_listing(
        self, call: Call, payload: NewListingPayload | Untrusted, *, idempotency_key: str | None
    ) -> Outcome[ListingView]:
        """B2: a new ``draft`` listing owned by the caller."""
        user = self._writer(call)

        def operation(uow: UnitOfWork) -> ListingView:
            new = parse_new_listing(payload, self._rt.settings.image_hosts)
            now = self._rt.clock.now_ms()
            content = new.content
            listing = Listing(
                listing_id=self._rt.ids.new_id("lst"),
                publisher_user_id=user.user_id,
                asset_kind=new.asset_kind,
                status=ListingStatus.DRAFT,
                name=content.name,
                summary=content.summary,
                description=rendered(content.description),
                tags=content.tags,
                categories=content.categories,
                images=content.images,
                links=content.links,
                moderation=Moderation(),
                created_at_ms=now,
                updated_at_ms=now,
            )
            uow.listings.add(listing)
            audit.record(
                self._rt,
                uow,
                call,
                "listing.created",
                audit.user_actor(user),
                f"Listing created: {listing.name}",
                details={"assetKind": listing.asset_kind.value},
                publisher_user_id=user.user_id,
                listing_id=listing.listing_id,
            )
            return new_listing_view(uow, listing, user)

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.LISTING_CREATE,
            key=idempotency_key,
            required=True,
            target={},
            body=payload,
            codec=_LISTING,
            operation=operation,
        )

    def get_listing(self, call: Call, listing_id: str) -> ListingView:
        """B3: an own listing (``NOT_FOUND`` for anyone else's)."""
        user = self._publisher(call)
        with self._rt.reader() as uow:
            return self._view(uow, authz.owned_listing(uow, user, listing_id))

    def update_listing(
        self,
        call: Call,
        listing_id: str,
        payload: ListingPatchPayload | Untrusted,
        *,
        idempotency_key: str | None = None,
    ) -> Outcome[ListingView]:
        """B4: patch an own listing's content (status and kind are not patchable)."""
        user = self._writer(call)

        def operation(uow: UnitOfWork) -> ListingView:
            listing = authz.owned_listing(uow, user, listing_id)
            patched = apply_listing_patch(
                listing, payload, self._rt.settings.image_hosts, self._rt.clock.now_ms()
            )
            if patched is not listing:
                changed_ok(uow.listings.update(patched, listing))
                changed = sorted(
                    name
                    for name in CONTENT_ATTRIBUTES
                    if getattr(patched, name) != getattr(listing, name)
                )
                audit.record(
                    self._rt,
                    uow,
                    call,
                    "listing.updated",
                    audit.user_actor(user),
                    "Listing updated.",
                    details={"fields": ",".join(changed)},
                    publisher_user_id=user.user_id,
                    listing_id=listing_id,
                )
            return self._view(uow, patched)

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.LISTING_UPDATE,
            key=idempotency_key,
            required=False,
            target={"id": listing_id},
            body=payload,
            codec=_LISTING,
            operation=operation,
        )

    def change_status(
        self,
        call: Call,
        listing_id: str,
        payload: StatusChangePayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[ListingView]:
        """B5: move an own listing between draft, published and unlisted."""
        user = self._writer(call)

        def operation(uow: UnitOfWork) -> ListingView:
            target = parse_status_change(payload)
            listing = authz.owned_listing(uow, user, listing_id)
            listing.require_not_suspended()
            moved = listing.moved_by_publisher(target, self._rt.clock.now_ms())
            if target is ListingStatus.PUBLISHED and not uow.releases.published_versions(
                listing_id
            ):
                raise Conflict(
                    "A listing needs a published release before it can be published.",
                    hint="publish a release first",
                )
            changed_ok(uow.listings.update(moved, listing))
            details: dict[str, AuditValue] = {"from": listing.status.value, "to": target.value}
            if target is ListingStatus.DRAFT and listing.status is not ListingStatus.DRAFT:
                # Withdrawn: a token minted before never redeems (ADR 0025).
                details["revokedTokens"] = revoke_listing_tokens(
                    uow, listing_id, self._rt.clock.now_ms()
                )
            audit.record(
                self._rt,
                uow,
                call,
                "listing.status_changed",
                audit.user_actor(user),
                f"Listing moved from {listing.status.value} to {target.value}.",
                details=details,
                publisher_user_id=user.user_id,
                listing_id=listing_id,
            )
            return self._view(uow, moved)

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.LISTING_STATUS,
            key=idempotency_key,
            required=True,
            target={"id": listing_id},
            body=payload,
            codec=_LISTING,
            operation=operation,
        )

    # -- releases ---------------------------------------------------------------------

    def publish_release(
        self,
        call: Call,
        listing_id: str,
        payload: NewReleasePayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[Release]:
        """B6: an immutable release; a version can be used once per listing, ever."""
        user = self._writer(call)

        def operation(uow: UnitOfWork) -> Release:
            listing = authz.owned_listing(uow, user, listing_id)
            new = parse_new_release(payload, listing.asset_kind)
            listing.require_not_suspended()
            release = Release(
                release_id=self._rt.ids.new_id("rel"),
                listing_id=listing_id,
                publisher_user_id=listing.publisher_user_id,
                version=new.version,
                status=ReleaseStatus.PUBLISHED,
                refs=new.refs,
                compat=new.compat,
                artifacts=new.artifacts,
                notes=rendered(new.notes),
                published_at_ms=self._rt.clock.now_ms(),
            )
            try:
                uow.releases.add(release)
            except DuplicateError as error:
                if error.constraint != UniqueConstraint.RELEASE_VERSION:
                    raise
                raise Conflict(
                    f"Version {new.version} already exists for this listing.",
                    hint="versions are never reused; publish a new version",
                ) from None
            audit.record(
                self._rt,
                uow,
                call,
                "release.published",
                audit.user_actor(user),
                f"Release {release.version} published.",
                details={"version": release.version},
                publisher_user_id=user.user_id,
                listing_id=listing_id,
                release_id=release.release_id,
            )
            return release

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.RELEASE_PUBLISH,
            key=idempotency_key,
            required=True,
            target={"id": listing_id},
            body=payload,
            codec=_RELEASE,
            operation=operation,
        )

    def list_releases(
        self, call: Call, listing_id: str, params: Mapping[str, object] | None = None
    ) -> Page[Release]:
        """B7: every release of an own listing, revoked included, newest first."""
        user = self._publisher(call)
        request = page_request(params)
        request.problems.raise_if_any()
        with self._rt.reader() as uow:
            authz.owned_listing(uow, user, listing_id)
            return release_page(
                self._rt,
                uow,
                f"publisher-releases|{listing_id}",
                listing_id,
                include_revoked=True,
                request=request,
            )

    def revoke_release(
        self,
        call: Call,
        release_id: str,
        payload: ReasonPayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[Release]:
        """B8: revoke an own release (terminal; nothing is deleted)."""
        user = self._writer(call)

        def operation(uow: UnitOfWork) -> Release:
            reason = parse_reason(payload, required=False)
            release = authz.owned_release(uow, user, release_id)
            revoked = release.revoked(reason, self._rt.clock.now_ms())
            changed_ok(uow.releases.update(revoked, release.status))
            audit.record(
                self._rt,
                uow,
                call,
                "release.revoked",
                audit.user_actor(user),
                f"Release {release.version} revoked.",
                details={"version": release.version},
                publisher_user_id=user.user_id,
                listing_id=release.listing_id,
                release_id=release_id,
            )
            return revoked

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.RELEASE_REVOKE,
            key=idempotency_key,
            required=True,
            target={"releaseId": release_id},
            body=payload,
            codec=_RELEASE,
            operation=operation,
        )
