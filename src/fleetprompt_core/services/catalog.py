"""Public browse and search (P1–P3): published listings only, anyone may call."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import SearchSort
from fleetprompt_core.commands.parsers import parse_flag, parse_search
from fleetprompt_core.domain.model import Release
from fleetprompt_core.domain.search import CardHit, ListingSearch, sort_key
from fleetprompt_core.policies import versions
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, Page, Position
from fleetprompt_core.policies.versions import VersionCandidate
from fleetprompt_core.ports import UnitOfWork
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import throttle
from fleetprompt_core.services._paging import PageRequest, page_request, paginate
from fleetprompt_core.services.profiles import current_profile
from fleetprompt_core.services.runtime import Call, Runtime
from fleetprompt_core.services.views import (
    PublicListing,
    PublicListingDetail,
    PublicPublisher,
    PublicRelease,
    public_cards,
    public_release,
)

__all__ = ["Catalog", "PublicRead", "latest_release", "release_page", "short_search"]


class PublicRead(enum.Enum):
    """The public reads (P1–P3, and §13's lookups by id), each counted against a rate limit."""

    SEARCH = "search"
    LISTING = "listing"
    RELEASES = "releases"
    RELEASE = "release"
    PUBLISHER = "publisher"


_ACTIONS: Final = {
    PublicRead.SEARCH: throttle.Action.SEARCH,
    PublicRead.LISTING: throttle.Action.DETAIL,
    PublicRead.RELEASES: throttle.Action.DETAIL,
    PublicRead.RELEASE: throttle.Action.DETAIL,
    PublicRead.PUBLISHER: throttle.Action.DETAIL,
}

_SHAPES: Final[dict[SearchSort, tuple[type, ...]]] = {
    SearchSort.RELEVANCE: (int, int, str),
    SearchSort.UPDATED: (int, str),
    SearchSort.CREATED: (int, str),
    SearchSort.NAME: (str, str),
    SearchSort.INSTALLS: (int, str),
}


#: The search parameters of a browse that walks one stored order (see :func:`short_search`).
_WALK_PARAMS: Final = frozenset({"sort", "cursor", "limit"})


def short_search(params: Mapping[str, object]) -> bool:
    """Whether :meth:`Catalog.search` of ``params`` is short by its shape: a browse of at
    most one default page, without words, labels, an asset kind or the verified filter,
    in an order other than installs. Every adapter answers it by walking one stored
    order of the published listings (SQL: the index ``listings (status, <sort key>)``)
    for at most ``limit + 1`` rows; the cursor only moves the walk's start. Any other
    search (words, labels and filters scan as many rows as they must, installs counts
    them) is not. A host may run a short search where it runs short use cases (the HTTP
    adapter: on the event loop, ADR 0036, 0044). Invalid values are not short; the use
    case rejects them wherever it runs."""
    if not params.keys() <= _WALK_PARAMS:
        return False
    sort, limit = params.get("sort"), params.get("limit")
    if sort is not None and (not isinstance(sort, str) or sort == SearchSort.INSTALLS.value):
        return False
    if limit is None:
        return True
    return isinstance(limit, str) and limit.isdigit() and int(limit) <= DEFAULT_LIMIT


def release_page(
    rt: Runtime,
    uow: UnitOfWork,
    scope: str,
    listing_id: str,
    *,
    include_revoked: bool,
    request: PageRequest,
) -> Page[Release]:
    """One page of a listing's releases, newest first (shared by public and publisher views)."""
    after = request.after(rt, scope)
    rows = uow.releases.list_for_listing(listing_id, include_revoked, after, request.limit + 1)
    return paginate(rt, scope, rows, request.limit, _release_position)


def _release_position(release: Release) -> Position:
    """A release's place in a page of releases: newest first."""
    return (release.published_at_ms, release.release_id)


def latest_release(
    uow: UnitOfWork, listing_id: str, loaded: Sequence[Release] = ()
) -> Release | None:
    """The listing's latest release: highest published version by SemVer precedence (§14).

    See :func:`fleetprompt_core.policies.versions.latest` for the order
    (pre-releases only when nothing else exists, non-semver versions after
    stable ones by publish time). ``None`` when no release is published.
    Releases already ``loaded`` by the caller are not read again.
    """
    chosen = versions.latest(uow.releases.published_versions(listing_id))
    if chosen is None:
        return None
    known = next((r for r in loaded if r.release_id == chosen.release_id), None)
    return known or uow.releases.get(chosen.release_id)


class Catalog:
    """What anyone may read."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def admit(self, read: PublicRead, call: Call | None = None) -> None:
        """Count ``read`` against its rate limit (``RATE_LIMITED`` once over it).

        Every public read does this first; a host that answers one from a copy
        (the HTTP adapter's response cache) calls it instead of the read, so a
        cached answer counts exactly as a computed one.
        """
        throttle.check_call(self._rt, _ACTIONS[read], call or Call())

    def search(self, params: Mapping[str, object], call: Call | None = None) -> Page[PublicListing]:
        """P1: search published listings (see ``domain.search`` for the semantics)."""
        self.admit(PublicRead.SEARCH, call)
        request = parse_search(params)
        scope = "|".join(
            (
                "search",
                request.sort.value,
                " ".join(request.terms),
                ",".join(request.tags),
                ",".join(request.categories),
                request.asset_kind.value if request.asset_kind else "",
                "verified" if request.verified else "",
            )
        )
        after: Position | None = None
        if request.cursor:
            after = self._rt.cursors.decode(scope, request.cursor, _SHAPES[request.sort])
        now = self._rt.clock.now_ms()
        search = ListingSearch(
            terms=request.terms,
            tags=request.tags,
            categories=request.categories,
            asset_kind=request.asset_kind,
            verified_only=request.verified,
            sort=request.sort,
            installs_since_ms=now - limits.STATS_WINDOW_MS,
            after=after,
            limit=request.limit + 1,
        )
        with self._rt.reader() as uow:
            hits: Sequence[CardHit] = uow.listings.search_cards(search)
        page_hits = hits[: request.limit]
        items = public_cards(hit.listing for hit in page_hits)
        next_cursor = None
        if len(hits) > request.limit:
            next_cursor = self._rt.cursors.encode(scope, sort_key(page_hits[-1], request.sort))
        return Page(tuple(items), next_cursor)

    def listing(self, listing_id: str, call: Call | None = None) -> PublicListingDetail:
        """P2: a published listing with its description and first page of releases."""
        self.admit(PublicRead.LISTING, call)
        now = self._rt.clock.now_ms()
        limit = page_request(None).limit
        with self._rt.reader() as uow:
            # The card, the description and the first page of releases in one read.
            detail = authz.public_detail(
                uow.listings.detail(listing_id, now - limits.STATS_WINDOW_MS, limit + 1)
            )
            releases = paginate(
                self._rt,
                _release_scope(listing_id, False),
                detail.releases,
                limit,
                _release_position,
            )
            if releases.next_cursor is None:
                # The page holds every published release: the latest is among them.
                latest = _latest_of(releases.items)
            else:
                latest = latest_release(uow, listing_id, releases.items)
        (public,) = public_cards([detail.card])
        return PublicListingDetail(
            listing=public,
            description=detail.description,
            latest_release=public_release(latest) if latest else None,
            releases=Page(tuple(public_release(r) for r in releases.items), releases.next_cursor),
        )

    def releases(
        self, listing_id: str, params: Mapping[str, object] | None = None, call: Call | None = None
    ) -> Page[PublicRelease]:
        """P3: a published listing's releases; revoked ones only with ``includeRevoked``."""
        self.admit(PublicRead.RELEASES, call)
        request = page_request(params, "includeRevoked")
        include_revoked = parse_flag(
            request.reader.raw("includeRevoked"), "includeRevoked", request.problems
        )
        request.problems.raise_if_any()
        with self._rt.reader() as uow:
            authz.public_listing(uow, listing_id)
            page = release_page(
                self._rt,
                uow,
                _release_scope(listing_id, include_revoked),
                listing_id,
                include_revoked=include_revoked,
                request=request,
            )
        return Page(tuple(public_release(r) for r in page.items), page.next_cursor)

    def release(self, release_id: str, call: Call | None = None) -> PublicRelease:
        """One release of a published listing, by id (revoked ones are marked revoked)."""
        self.admit(PublicRead.RELEASE, call)
        with self._rt.reader() as uow:
            return public_release(authz.public_release(uow, release_id))

    def publisher(self, publisher_id: str, call: Call | None = None) -> PublicPublisher:
        """The public profile of a publisher with at least one published listing."""
        self.admit(PublicRead.PUBLISHER, call)
        with self._rt.reader() as uow:
            profile = current_profile(uow, authz.public_publisher(uow, publisher_id))
        return PublicPublisher(
            publisher_id=profile.publisher_id,
            display_name=profile.display_name,
            bio=profile.bio,
            verification=profile.verification,
        )


def _latest_of(releases: Sequence[Release]) -> Release | None:
    """The latest of ``releases`` (every published release of a listing), as ``latest_release``."""
    chosen = versions.latest(
        [VersionCandidate(r.release_id, r.version, r.published_at_ms) for r in releases]
    )
    return (
        None if chosen is None else next(r for r in releases if r.release_id == chosen.release_id)
    )


def _release_scope(listing_id: str, include_revoked: bool) -> str:
    return f"public-releases|{listing_id}|{int(include_revoked)}"
