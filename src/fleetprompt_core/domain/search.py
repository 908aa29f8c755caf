"""Search semantics of the public catalogue (P1), defined once for every adapter.

* ``q`` is cut into terms: case-folded runs of letters and digits (at most
  :data:`MAX_TERMS` distinct terms are used, in order of appearance).
* A listing matches when **every** term is a prefix of some token of its
  name, summary, tags or categories (:func:`matches`).
* ``tags`` and ``categories`` filters require **all** the given values
  (after the same normalisation as stored values); ``assetKind`` is equality;
  ``verified`` keeps listings whose publisher's verification status is
  ``verified`` (contract §14).
* A hit's ``installs`` is the number of install intents created for the
  listing at or after ``installs_since_ms`` (the 30-day window the public
  ``stats.installAttempts30d`` shows); adapters fill it for the ``installs``
  sort and leave it 0 otherwise.
* Orders (every component in one direction, so keyset comparison is a plain
  tuple comparison):

  ====================  ==================================  =========
  sort                  key                                  direction
  ====================  ==================================  =========
  ``relevance``         ``(score, updatedAtMs, listingId)``  desc
  ``updated``           ``(updatedAtMs, listingId)``         desc
  ``created``           ``(createdAtMs, listingId)``         desc
  ``name``              ``(casefold(name), listingId)``      asc
  ``installs``          ``(installs, listingId)``            desc
  ====================  ==================================  =========

**Relevance with words is ranked by a search engine** behind the
:class:`~fleetprompt_core.ports.SearchIndex` port (ADR 0034): term statistics
(BM25) per field, boosted by :data:`FIELD_WEIGHTS` (name above tags and
categories above summary), the score carried as an integer. The core does
not restate the engine's scores; it fixes what holds whatever the engine
(the contract suite checks exactly these): only published listings, every
filter exact, every term matched by the prefix rule above, a strict order by
the key above (ties by update time, then id), the same pages for the same
search while nothing is written, and keyset pages that cover each match
exactly once. A relevance cursor continues right after *its listing* as that
listing ranks now (scores move as the catalogue changes), so a walk stays
complete under concurrent inserts. Without words every score is 0 and
``relevance`` orders like ``updated``.

Every other order, and the set of matches of every search, is exact: adapters
may use any index they like but must return exactly this order and this set.
:func:`relevance` (Σ of the weights of the fields a term matched, ADR 0009)
is the score non-relevance sorts report; it no longer orders anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final

import attrs

from fleetprompt_core.base.enums import AssetKind, ListingStatus, SearchSort, VerificationStatus
from fleetprompt_core.domain.model import Image, Links, Listing, Release
from fleetprompt_core.policies.markdown import RenderedMarkdown

__all__ = [
    "FIELD_WEIGHTS",
    "MAX_TERMS",
    "CardHit",
    "IndexedListing",
    "ListingCard",
    "ListingDetail",
    "ListingSearch",
    "PublisherNames",
    "RankedHit",
    "SearchHit",
    "SortKey",
    "descending",
    "matches",
    "name_key",
    "ranked_by_engine",
    "relevance",
    "search_terms",
    "sort_key",
    "tokenize",
]

MAX_TERMS: Final = 10
#: The fields' weights: the engine's boosts of relevance (name above tags and categories
#: above summary), and the field score of non-relevance sorts.
FIELD_WEIGHTS: Final = {"name": 3, "labels": 2, "summary": 1}
_TOKEN = re.compile(r"[^\W_]+")

SortKey = tuple[int | str, ...]


def tokenize(text: str) -> list[str]:
    """Case-folded runs of letters and digits."""
    return _TOKEN.findall(text.casefold())


def search_terms(q: str) -> tuple[str, ...]:
    """The distinct terms of a query, in order, at most :data:`MAX_TERMS`."""
    seen: dict[str, None] = {}
    for term in tokenize(q):
        seen.setdefault(term, None)
        if len(seen) == MAX_TERMS:
            break
    return tuple(seen)


def name_key(name: str) -> str:
    return name.casefold()


@functools.lru_cache(maxsize=65_536)
def _field_tokens(
    name: str, summary: str, labels: tuple[str, ...]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Searchable tokens of a listing's fields (cached: listings are read far more often)."""
    return (
        ("name", tuple(tokenize(name))),
        ("labels", tuple(t for label in labels for t in tokenize(label))),
        ("summary", tuple(tokenize(summary))),
    )


def relevance(listing: Listing, terms: Iterable[str]) -> int | None:
    """The listing's score for ``terms``, or ``None`` when some term does not match."""
    terms = tuple(terms)
    if not terms:
        return 0
    fields = _field_tokens(listing.name, listing.summary, (*listing.tags, *listing.categories))
    score = 0
    for term in terms:
        term_score = sum(
            FIELD_WEIGHTS[field]
            for field, tokens in fields
            if any(token.startswith(term) for token in tokens)
        )
        if term_score == 0:
            return None
        score += term_score
    return score


@attrs.frozen
class ListingSearch:
    """A normalised public search: what adapters receive."""

    terms: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    asset_kind: AssetKind | None = None
    #: Only listings whose publisher is verified.
    verified_only: bool = False
    sort: SearchSort = SearchSort.UPDATED
    #: Start of the window whose install intents the ``installs`` sort counts.
    installs_since_ms: int = 0
    after: SortKey | None = None
    limit: int = 50


@attrs.frozen
class SearchHit:
    listing: Listing
    score: int
    #: Install intents in the window (``installs`` sort only; 0 otherwise).
    installs: int = 0


@attrs.frozen
class PublisherNames:
    """A listing's publisher as a card carries it, as stored: the user's display name and,
    when the publisher saved a profile, the profile's name and verification (``None``
    without one). The core decides what a page shows from it (``views.publisher_summary``).
    """

    user_display_name: str | None
    profile_display_name: str | None = None
    verification_status: VerificationStatus | None = None
    verification_checked_at_ms: int | None = None
    verification_reason: str | None = None


@attrs.frozen
class ListingCard:
    """What a search page shows of a listing, read in one go (ADR 0040): the listing's
    fields without its description and moderation, its publisher's names, and its install
    intents created at or after the read's ``installs_since_ms``."""

    listing_id: str
    publisher_user_id: str
    asset_kind: AssetKind
    status: ListingStatus
    name: str
    summary: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    images: tuple[Image, ...]
    links: Links
    created_at_ms: int
    updated_at_ms: int
    publisher: PublisherNames
    installs: int

    @classmethod
    def of(cls, listing: Listing, publisher: PublisherNames, installs: int) -> ListingCard:
        """The card of ``listing`` (adapters that hold whole listings, and the tests)."""
        return cls(
            listing_id=listing.listing_id,
            publisher_user_id=listing.publisher_user_id,
            asset_kind=listing.asset_kind,
            status=listing.status,
            name=listing.name,
            summary=listing.summary,
            tags=listing.tags,
            categories=listing.categories,
            images=listing.images,
            links=listing.links,
            created_at_ms=listing.created_at_ms,
            updated_at_ms=listing.updated_at_ms,
            publisher=publisher,
            installs=installs,
        )


@attrs.frozen
class ListingDetail:
    """What a listing's detail page reads in one go (ADR 0042): its card, its description
    and its first releases that are not revoked, newest first (``(published_at_ms,
    release_id)`` descending, as ``ReleaseRepository.list_for_listing``)."""

    card: ListingCard
    description: RenderedMarkdown
    releases: tuple[Release, ...]


@attrs.frozen
class CardHit:
    """A hit of a search page as cards: the listing's card and its score (see ``SearchHit``)."""

    listing: ListingCard
    score: int

    @property
    def installs(self) -> int:
        """Install intents in the search's window (the ``installs`` sort's key)."""
        return self.listing.installs


@attrs.frozen
class IndexedListing:
    """What a search engine indexes of a published listing."""

    listing: Listing
    #: Whether the listing's publisher is verified (the ``verified`` filter).
    publisher_verified: bool


@attrs.frozen
class RankedHit:
    """One hit of a search engine's relevance page."""

    listing_id: str
    #: The engine's relevance score as an integer (compared, and carried in cursors).
    score: int
    updated_at_ms: int

    @property
    def key(self) -> SortKey:
        """The relevance sort key ``(score, updatedAtMs, listingId)``."""
        return (self.score, self.updated_at_ms, self.listing_id)


def ranked_by_engine(search: ListingSearch) -> bool:
    """Whether a search engine orders ``search``: a relevance search with words."""
    return search.sort is SearchSort.RELEVANCE and bool(search.terms)


def matches(
    listing: Listing, search: ListingSearch, *, publisher_verified: bool = False
) -> int | None:
    """Score of a published listing for ``search`` (filters included), or ``None``.

    ``publisher_verified`` says whether the listing's publisher is verified
    (only consulted when ``search.verified_only``).
    """
    if search.verified_only and not publisher_verified:
        return None
    if search.asset_kind is not None and listing.asset_kind is not search.asset_kind:
        return None
    if search.tags and not all(tag in listing.tags for tag in search.tags):
        return None
    if search.categories and not all(c in listing.categories for c in search.categories):
        return None
    return relevance(listing, search.terms)


def descending(sort: SearchSort) -> bool:
    return sort is not SearchSort.NAME


def sort_key(hit: SearchHit | CardHit, sort: SearchSort) -> SortKey:
    listing = hit.listing
    if sort is SearchSort.RELEVANCE:
        return (hit.score, listing.updated_at_ms, listing.listing_id)
    if sort is SearchSort.UPDATED:
        return (listing.updated_at_ms, listing.listing_id)
    if sort is SearchSort.CREATED:
        return (listing.created_at_ms, listing.listing_id)
    if sort is SearchSort.INSTALLS:
        return (hit.installs, listing.listing_id)
    return (name_key(listing.name), listing.listing_id)
