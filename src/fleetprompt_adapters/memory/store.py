"""The in-memory adapter: every port of the core, transactional and thread-safe.

A :class:`MemoryStore` holds the tables. A :class:`MemoryUnitOfWork` takes
the store's lock for its whole life (units of work are serialised, which makes
every use case atomic and isolated), writes in place, and keeps an undo log:
leaving the ``with`` block without ``commit()`` replays the log backwards, so
a failed use case leaves no partial state. Entities are frozen, so readers can
share them safely.
"""

from __future__ import annotations

import heapq
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar

import attrs

from fleetprompt_adapters.in_flight import HeldKey, InFlightKeys
from fleetprompt_core.base.enums import (
    InstallIntentStatus,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
    SearchSort,
    VerificationStatus,
)
from fleetprompt_core.base.errors import DuplicateError, KeyHeld
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import (
    OPEN_INTENT_STATUSES,
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    InstallIntent,
    InstallToken,
    Listing,
    PublisherProfile,
    Release,
    User,
)
from fleetprompt_core.domain.search import (
    CardHit,
    IndexedListing,
    ListingCard,
    ListingDetail,
    ListingSearch,
    PublisherNames,
    SearchHit,
    SortKey,
    descending,
    matches,
    ranked_by_engine,
    sort_key,
)
from fleetprompt_core.policies.versions import VersionCandidate
from fleetprompt_core.ports import (
    AuditQuery,
    CreatedKey,
    Redeemable,
    SearchIndex,
    UniqueConstraint,
)

__all__ = ["MemoryCatalogVersion", "MemoryStore", "MemoryUnitOfWork"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


def _page(
    rows: Iterable[T], key: Callable[[T], CreatedKey], after: CreatedKey | None, limit: int
) -> list[T]:
    """Rows in ``key`` descending order strictly after ``after``."""
    ordered = sorted(rows, key=key, reverse=True)
    if after is not None:
        ordered = [row for row in ordered if key(row) < after]
    return ordered[:limit]


def default_search_index() -> SearchIndex:
    """The search engine of every adapter: a tantivy index in RAM (ADR 0034).

    Raises :class:`~fleetprompt_adapters.MissingExtra` in a core-only install
    (``pip install "fleetprompt[search]"`` adds tantivy).
    """
    from fleetprompt_adapters.search.tantivy_index import ListingIndex  # noqa: PLC0415

    return ListingIndex()


class MemoryStore:
    """The tables. Share one store between every unit of work of an application.

    Relevance searches with words are ranked by ``search_index`` (the tantivy
    index of :func:`default_search_index` unless given), built from the
    published listings at the first such search and then fed every listing
    whose searchable state changed before each search (ADR 0034).
    """

    def __init__(self, search_index: SearchIndex | None = None) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None
        #: Idempotency keys of open units of work, taken before :attr:`lock` (§6).
        self.in_flight = InFlightKeys()
        self.users: dict[str, User] = {}
        self.users_by_external_id: dict[str, str] = {}
        self.profiles: dict[str, PublisherProfile] = {}
        self.listings: dict[str, Listing] = {}
        self.published_listings: dict[str, None] = {}
        self.releases: dict[str, Release] = {}
        self.release_versions: dict[tuple[str, str], str] = {}
        self.releases_by_listing: dict[str, list[str]] = {}
        self.intents: dict[str, InstallIntent] = {}
        self.intents_by_listing: dict[str, list[str]] = {}
        self.tokens: dict[str, InstallToken] = {}
        self.tokens_by_hash: dict[str, str] = {}
        self.tokens_by_intent: dict[str, list[str]] = {}
        self.api_tokens: dict[str, ApiToken] = {}
        self.api_tokens_by_hash: dict[str, str] = {}
        self.api_tokens_by_user: dict[str, list[str]] = {}
        self.accounts: dict[str, Account] = {}
        self.accounts_by_username: dict[str, str] = {}
        self.accounts_by_email: dict[str, str] = {}
        self.sessions: dict[str, BrowserSession] = {}
        self.idempotency: dict[tuple[str, str, str], IdempotencyRecord] = {}
        self.audit: list[AuditEvent] = []
        self.audit_ids: dict[str, None] = {}
        self.catalog_version = MemoryCatalogVersion()
        self._search_index = search_index
        self._search_built = False
        #: Listings whose searchable state changed since the index last applied them.
        self.search_pending: dict[str, None] = {}

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def _indexed(self, listing_id: str) -> IndexedListing:
        listing = self.listings[listing_id]
        profile = self.profiles.get(listing.publisher_user_id)
        verified = (
            profile is not None and profile.verification.status is VerificationStatus.VERIFIED
        )
        return IndexedListing(listing, verified)

    def search_index(self) -> SearchIndex:
        """The search engine, holding every committed listing (call under :attr:`lock`).

        Like the SQL adapter's change log, a unit of work's changes reach the index
        once it commits: a search inside a writing unit of work ranks what was
        committed before it (and returns only listings published now).
        """
        index = self._search_index
        if index is None:
            index = self._search_index = default_search_index()
        if not self._search_built:
            index.rebuild(self._indexed(i) for i in self.published_listings)
            self._search_built = True
            self.search_pending.clear()
        elif self.search_pending:
            ids = list(self.search_pending)
            upserts = [self._indexed(i) for i in ids if i in self.published_listings]
            index.apply(upserts, deletes=ids)
            self.search_pending.clear()
        return index


class MemoryCatalogVersion:
    """The catalogue version of one in-process store (the ``CatalogVersion`` port).

    A unit of work that changed the public catalogue moves it when it commits;
    there is no other process to hear from, so it is always current.
    """

    def __init__(self) -> None:
        self._value = 0

    def current(self) -> int | None:
        return self._value

    def refresh(self) -> None:
        """Nothing to read: every change happens in this process."""

    def bump(self) -> None:
        """Called by a committing unit of work, under the store's lock."""
        self._value += 1


_ABSENT = object()


class _Tx:
    """Writes with an undo log."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []
        #: Whether a write changed what a public read shows (the catalogue version moves).
        self.catalog_changed = False
        #: Listings the search index must apply once this transaction commits.
        self.search_ids: dict[str, None] = {}
        #: Whether this transaction asked the search index (which may have read its writes).
        self.searched = False

    def put(self, table: dict[K, V], key: K, value: V) -> None:
        previous = table.get(key, _ABSENT)
        table[key] = value

        def restore() -> None:
            if previous is _ABSENT:
                del table[key]
            else:
                table[key] = previous  # type: ignore[assignment]

        self.undo.append(restore)

    def delete(self, table: dict[K, V], key: K) -> None:
        previous = table.pop(key)
        self.undo.append(lambda: table.__setitem__(key, previous))

    def append(self, items: list[T], item: T) -> None:
        items.append(item)

        def restore() -> None:
            items.pop()

        self.undo.append(restore)

    def search_changed(self, ids: Iterable[str]) -> None:
        """Listings whose searchable state this transaction changed (for the index, at
        commit)."""
        self.search_ids.update(dict.fromkeys(ids))

    def index(self, table: dict[K, list[str]], key: K, item: str) -> None:
        """Append ``item`` to the list at ``key`` of a one-to-many index."""
        items = table.get(key)
        if items is None:
            self.put(table, key, [item])
        else:
            self.append(items, item)

    def rollback(self, search_pending: dict[str, None]) -> None:
        while self.undo:
            self.undo.pop()()
        self.catalog_changed = False
        if self.searched:
            # An index first built inside this transaction read its writes: re-apply them.
            search_pending.update(self.search_ids)
        self.search_ids.clear()
        self.searched = False


class _Repo:
    def __init__(self, store: MemoryStore, tx: _Tx) -> None:
        self.s = store
        self.tx = tx


class _Users(_Repo):
    def get(self, user_id: str) -> User | None:
        return self.s.users.get(user_id)

    def get_many(self, user_ids: Iterable[str]) -> Mapping[str, User]:
        users = self.s.users
        return {user_id: users[user_id] for user_id in set(user_ids) if user_id in users}

    def get_by_external_id(self, external_id: str) -> User | None:
        user_id = self.s.users_by_external_id.get(external_id)
        return self.s.users[user_id] if user_id else None

    def add(self, user: User) -> None:
        if user.user_id in self.s.users:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        if user.external_id in self.s.users_by_external_id:
            raise DuplicateError(UniqueConstraint.USER_EXTERNAL_ID)
        self.tx.put(self.s.users, user.user_id, user)
        self.tx.put(self.s.users_by_external_id, user.external_id, user.user_id)

    def update(self, user: User) -> None:
        current = self.s.users[user.user_id]
        if current.external_id != user.external_id:
            raise ValueError("external ids never change")
        self.tx.put(self.s.users, user.user_id, user)
        self.tx.catalog_changed = True  # the default publisher name

    def list_page(self, after_user_id: str | None, limit: int) -> Sequence[User]:
        ids = sorted(i for i in self.s.users if after_user_id is None or i > after_user_id)
        return [self.s.users[i] for i in ids[:limit]]


class _Profiles(_Repo):
    def get(self, publisher_id: str) -> PublisherProfile | None:
        return self.s.profiles.get(publisher_id)

    def get_many(self, publisher_ids: Iterable[str]) -> Mapping[str, PublisherProfile]:
        return {pid: self.s.profiles[pid] for pid in publisher_ids if pid in self.s.profiles}

    def save(self, profile: PublisherProfile) -> None:
        previous = self.s.profiles.get(profile.publisher_id)
        before = None if previous is None else previous.verification.status
        self.tx.put(self.s.profiles, profile.publisher_id, profile)
        self.tx.catalog_changed = True
        if before != profile.verification.status:
            # The verified filter of the search engine follows the publisher's listings.
            owned = (
                listing.listing_id
                for listing in self.s.listings.values()
                if listing.publisher_user_id == profile.publisher_id
            )
            self.tx.search_changed(owned)


class _Listings(_Repo):
    def get(self, listing_id: str) -> Listing | None:
        return self.s.listings.get(listing_id)

    def add(self, listing: Listing) -> None:
        if listing.listing_id in self.s.listings:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        self.tx.put(self.s.listings, listing.listing_id, listing)
        self._index_status(listing)
        if listing.status is not ListingStatus.DRAFT:  # a draft is in no public answer
            self.tx.catalog_changed = True
            self.tx.search_changed([listing.listing_id])

    def _index_status(self, listing: Listing) -> None:
        published = listing.listing_id in self.s.published_listings
        if listing.status is ListingStatus.PUBLISHED and not published:
            self.tx.put(self.s.published_listings, listing.listing_id, None)
        elif listing.status is not ListingStatus.PUBLISHED and published:
            self.tx.delete(self.s.published_listings, listing.listing_id)

    def update(self, listing: Listing, expected: Listing) -> bool:
        current = self.s.listings.get(listing.listing_id)
        if current is None:
            raise KeyError(listing.listing_id)
        if current.status != expected.status or current.updated_at_ms != expected.updated_at_ms:
            return False
        if (current.publisher_user_id, current.asset_kind) != (
            listing.publisher_user_id,
            listing.asset_kind,
        ):
            raise ValueError("owner and asset kind never change")
        self.tx.put(self.s.listings, listing.listing_id, listing)
        self._index_status(listing)
        # A draft is in no public answer, so only a draft's edit that keeps it a draft
        # changes none; a listing moved back to draft leaves them (and the search index).
        draft = ListingStatus.DRAFT
        if current.status is not draft or listing.status is not draft:
            self.tx.catalog_changed = True
            self.tx.search_changed([listing.listing_id])
        return True

    def list_by_owner(
        self, owner_user_id: str, status: ListingStatus | None, after: CreatedKey | None, limit: int
    ) -> Sequence[Listing]:
        rows = (
            item
            for item in self.s.listings.values()
            if item.publisher_user_id == owner_user_id and (status is None or item.status is status)
        )
        return _page(rows, lambda item: (item.created_at_ms, item.listing_id), after, limit)

    def search_published(self, search: ListingSearch) -> Sequence[SearchHit]:
        if ranked_by_engine(search):
            self.tx.searched = True
            ranked = self.s.search_index().ranked(search)
            published = self.s.published_listings
            return [
                SearchHit(self.s.listings[hit.listing_id], hit.score)
                for hit in ranked
                if hit.listing_id in published
            ]
        hits = []
        by_installs = search.sort is SearchSort.INSTALLS
        for listing_id in self.s.published_listings:
            listing = self.s.listings[listing_id]
            score = matches(
                listing, search, publisher_verified=self._verified(listing.publisher_user_id)
            )
            if score is not None:
                since = search.installs_since_ms
                installs = self._installs(listing_id, since) if by_installs else 0
                hits.append(SearchHit(listing, score, installs))

        def key(hit: SearchHit) -> SortKey:
            return sort_key(hit, search.sort)

        after = search.after
        if descending(search.sort):
            if after is not None:
                hits = [hit for hit in hits if key(hit) < after]
            return heapq.nlargest(search.limit, hits, key=key)
        if after is not None:
            hits = [hit for hit in hits if key(hit) > after]
        return heapq.nsmallest(search.limit, hits, key=key)

    def search_cards(self, search: ListingSearch) -> Sequence[CardHit]:
        hits = self.search_published(search)
        cards = self.cards((hit.listing.listing_id for hit in hits), search.installs_since_ms)
        return [CardHit(cards[hit.listing.listing_id], hit.score) for hit in hits]

    def cards(
        self, listing_ids: Iterable[str], installs_since_ms: int
    ) -> Mapping[str, ListingCard]:
        cards = {}
        for listing_id in set(listing_ids):
            listing = self.s.listings.get(listing_id)
            if listing is None:
                continue
            installs = self._installs(listing_id, installs_since_ms)
            cards[listing_id] = ListingCard.of(listing, self._names(listing), installs)
        return cards

    def detail(
        self, listing_id: str, installs_since_ms: int, releases: int
    ) -> ListingDetail | None:
        listing = self.s.listings.get(listing_id)
        if listing is None:
            return None
        installs = self._installs(listing_id, installs_since_ms)
        published = (
            self.s.releases[r]
            for r in self.s.releases_by_listing.get(listing_id, ())
            if self.s.releases[r].status is ReleaseStatus.PUBLISHED
        )
        return ListingDetail(
            ListingCard.of(listing, self._names(listing), installs),
            listing.description,
            tuple(_page(published, lambda r: (r.published_at_ms, r.release_id), None, releases)),
        )

    def _names(self, listing: Listing) -> PublisherNames:
        user = self.s.users.get(listing.publisher_user_id)
        names = PublisherNames(None if user is None else user.display_name)
        profile = self.s.profiles.get(listing.publisher_user_id)
        if profile is None:
            return names
        verification = profile.verification
        return attrs.evolve(
            names,
            profile_display_name=profile.display_name,
            verification_status=verification.status,
            verification_checked_at_ms=verification.checked_at_ms,
            verification_reason=verification.reason,
        )

    def _verified(self, publisher_id: str) -> bool:
        profile = self.s.profiles.get(publisher_id)
        return profile is not None and profile.verification.status is VerificationStatus.VERIFIED

    def _installs(self, listing_id: str, since_ms: int) -> int:
        intents = self.s.intents
        ids = self.s.intents_by_listing.get(listing_id, ())
        return sum(1 for i in ids if intents[i].created_at_ms >= since_ms)


class _Releases(_Repo):
    def get(self, release_id: str) -> Release | None:
        return self.s.releases.get(release_id)

    def add(self, release: Release) -> None:
        if release.release_id in self.s.releases:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        version_key = (release.listing_id, release.version)
        if version_key in self.s.release_versions:
            raise DuplicateError(UniqueConstraint.RELEASE_VERSION)
        self.tx.put(self.s.releases, release.release_id, release)
        self.tx.put(self.s.release_versions, version_key, release.release_id)
        self.tx.index(self.s.releases_by_listing, release.listing_id, release.release_id)
        self.tx.catalog_changed = True

    def update(self, release: Release, expected_status: ReleaseStatus) -> bool:
        current = self.s.releases[release.release_id]
        if current.status is not expected_status:
            return False
        if (
            attrs.evolve(release, status=current.status, revoked_at_ms=None, revoke_reason=None)
            != current
        ):
            raise ValueError("a release is immutable apart from its revocation")
        self.tx.put(self.s.releases, release.release_id, release)
        self.tx.catalog_changed = True
        return True

    def _of(self, listing_id: str) -> Iterable[Release]:
        return (self.s.releases[r] for r in self.s.releases_by_listing.get(listing_id, ()))

    def list_for_listing(
        self, listing_id: str, include_revoked: bool, after: CreatedKey | None, limit: int
    ) -> Sequence[Release]:
        rows = (
            r
            for r in self._of(listing_id)
            if include_revoked or r.status is ReleaseStatus.PUBLISHED
        )
        return _page(rows, lambda r: (r.published_at_ms, r.release_id), after, limit)

    def published_versions(self, listing_id: str) -> Sequence[VersionCandidate]:
        return [
            VersionCandidate(r.release_id, r.version, r.published_at_ms)
            for r in self._of(listing_id)
            if r.status is ReleaseStatus.PUBLISHED
        ]


class _Intents(_Repo):
    def get(self, install_intent_id: str) -> InstallIntent | None:
        return self.s.intents.get(install_intent_id)

    def add(self, intent: InstallIntent) -> None:
        if intent.install_intent_id in self.s.intents:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        self.tx.put(self.s.intents, intent.install_intent_id, intent)
        self.tx.index(self.s.intents_by_listing, intent.listing_id, intent.install_intent_id)
        # Not a catalogue change: the install statistics lag by the cache's TTL (ADR 0033).

    def update(self, intent: InstallIntent, expected_status: InstallIntentStatus) -> bool:
        current = self.s.intents[intent.install_intent_id]
        if current.status is not expected_status:
            return False
        if current.buyer_user_id != intent.buyer_user_id:
            raise ValueError("the buyer never changes")
        self.tx.put(self.s.intents, intent.install_intent_id, intent)
        return True

    def list_for_buyer(
        self,
        buyer_user_id: str,
        status: InstallIntentStatus | None,
        now_ms: int,
        after: CreatedKey | None,
        limit: int,
    ) -> Sequence[InstallIntent]:
        rows = (
            i
            for i in self.s.intents.values()
            if i.buyer_user_id == buyer_user_id
            and (status is None or i.observed(now_ms).status is status)
        )
        return _page(rows, lambda i: (i.created_at_ms, i.install_intent_id), after, limit)

    def count_created_since(self, listing_ids: Iterable[str], since_ms: int) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for listing_id in set(listing_ids):
            ids = self.s.intents_by_listing.get(listing_id, ())
            count = sum(1 for i in ids if self.s.intents[i].created_at_ms >= since_ms)
            if count:
                counts[listing_id] = count
        return counts

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallIntent]:
        due = [
            i
            for i in self.s.intents.values()
            if i.status in OPEN_INTENT_STATUSES and i.expires_at_ms <= now_ms
        ]
        due.sort(key=lambda i: (i.expires_at_ms, i.install_intent_id))
        return due[:limit]


class _Tokens(_Repo):
    def add(self, token: InstallToken) -> None:
        if token.token_id in self.s.tokens:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        if token.token_hash in self.s.tokens_by_hash:
            raise DuplicateError(UniqueConstraint.TOKEN_HASH)
        self.tx.put(self.s.tokens, token.token_id, token)
        self.tx.put(self.s.tokens_by_hash, token.token_hash, token.token_id)
        self.tx.index(self.s.tokens_by_intent, token.install_intent_id, token.token_id)

    def update(self, token: InstallToken, expected_status: InstallTokenStatus) -> bool:
        current = self.s.tokens[token.token_id]
        if current.status is not expected_status:
            return False
        if current.token_hash != token.token_hash:
            raise ValueError("a token's hash never changes")
        self.tx.put(self.s.tokens, token.token_id, token)
        return True

    def redeem(
        self,
        token: InstallToken,
        token_was: InstallTokenStatus,
        intent: InstallIntent,
        intent_was: InstallIntentStatus,
        event: AuditEvent,
    ) -> bool:
        if not self.update(token, token_was):
            return False
        if not _Intents(self.s, self.tx).update(intent, intent_was):
            return False
        _Audit(self.s, self.tx).append(event)
        return True

    def get_by_hash(self, token_hash: str) -> InstallToken | None:
        token_id = self.s.tokens_by_hash.get(token_hash)
        return self.s.tokens[token_id] if token_id else None

    def get_for_redemption(self, token_hash: str) -> Redeemable | None:
        token = self.get_by_hash(token_hash)
        if token is None:
            return None
        intent = self.s.intents[token.install_intent_id]
        return Redeemable(
            token, intent, self.s.releases[intent.release_id], self.s.listings[intent.listing_id]
        )

    def list_issued_for_intent(self, install_intent_id: str) -> Sequence[InstallToken]:
        tokens = (self.s.tokens[t] for t in self.s.tokens_by_intent.get(install_intent_id, ()))
        return [t for t in tokens if t.status is InstallTokenStatus.ISSUED]

    def list_issued_for_listing(self, listing_id: str) -> Sequence[InstallToken]:
        issued = [
            token
            for intent_id in self.s.intents_by_listing.get(listing_id, ())
            for token in self.list_issued_for_intent(intent_id)
        ]
        return sorted(issued, key=lambda t: (t.issued_at_ms, t.token_id))

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallToken]:
        due = [
            t
            for t in self.s.tokens.values()
            if t.status is InstallTokenStatus.ISSUED and t.expires_at_ms <= now_ms
        ]
        due.sort(key=lambda t: (t.expires_at_ms, t.token_id))
        return due[:limit]


class _ApiTokens(_Repo):
    def add(self, token: ApiToken) -> None:
        if token.token_id in self.s.api_tokens:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        if token.token_hash in self.s.api_tokens_by_hash:
            raise DuplicateError(UniqueConstraint.API_TOKEN_HASH)
        self.tx.put(self.s.api_tokens, token.token_id, token)
        self.tx.put(self.s.api_tokens_by_hash, token.token_hash, token.token_id)
        self.tx.index(self.s.api_tokens_by_user, token.user_id, token.token_id)

    def get(self, token_id: str) -> ApiToken | None:
        return self.s.api_tokens.get(token_id)

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        token_id = self.s.api_tokens_by_hash.get(token_hash)
        return self.s.api_tokens[token_id] if token_id else None

    def update(self, token: ApiToken, expected_revoked_at_ms: int | None) -> bool:
        current = self.s.api_tokens[token.token_id]
        if current.revoked_at_ms != expected_revoked_at_ms:
            return False
        if attrs.evolve(token, revoked_at_ms=current.revoked_at_ms) != current:
            raise ValueError("an API token is immutable apart from its revocation")
        self.tx.put(self.s.api_tokens, token.token_id, token)
        return True

    def list_for_user(
        self, user_id: str, after: CreatedKey | None, limit: int
    ) -> Sequence[ApiToken]:
        rows = (self.s.api_tokens[t] for t in self.s.api_tokens_by_user.get(user_id, ()))
        return _page(rows, lambda t: (t.created_at_ms, t.token_id), after, limit)


class _Accounts(_Repo):
    def get(self, user_id: str) -> Account | None:
        return self.s.accounts.get(user_id)

    def get_by_username(self, username: str) -> Account | None:
        user_id = self.s.accounts_by_username.get(username)
        return self.s.accounts[user_id] if user_id else None

    def get_by_email(self, email: str) -> Account | None:
        user_id = self.s.accounts_by_email.get(email)
        return self.s.accounts[user_id] if user_id else None

    def add(self, account: Account) -> None:
        if account.user_id in self.s.accounts:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        if account.username in self.s.accounts_by_username:
            raise DuplicateError(UniqueConstraint.ACCOUNT_USERNAME)
        if account.email is not None and account.email in self.s.accounts_by_email:
            raise DuplicateError(UniqueConstraint.ACCOUNT_EMAIL)
        self.tx.put(self.s.accounts, account.user_id, account)
        self.tx.put(self.s.accounts_by_username, account.username, account.user_id)
        if account.email is not None:
            self.tx.put(self.s.accounts_by_email, account.email, account.user_id)

    def update(self, account: Account, expected_password_hash: str) -> bool:
        current = self.s.accounts[account.user_id]
        if current.password_hash != expected_password_hash:
            return False
        if (current.username, current.email) != (account.username, account.email):
            raise ValueError("an account's username and e-mail never change through update")
        self.tx.put(self.s.accounts, account.user_id, account)
        return True


class _Sessions(_Repo):
    def add(self, session: BrowserSession) -> None:
        if session.session_hash in self.s.sessions:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        self.tx.put(self.s.sessions, session.session_hash, session)

    def get(self, session_hash: str) -> BrowserSession | None:
        return self.s.sessions.get(session_hash)

    def touch(self, session_hash: str, last_seen_at_ms: int) -> None:
        current = self.s.sessions.get(session_hash)
        if current is not None and current.last_seen_at_ms < last_seen_at_ms:
            self.tx.put(self.s.sessions, session_hash, current.seen(last_seen_at_ms))

    def delete(self, session_hash: str) -> bool:
        if session_hash not in self.s.sessions:
            return False
        self.tx.delete(self.s.sessions, session_hash)
        return True

    def delete_for_user(self, user_id: str) -> int:
        ended = [h for h, session in self.s.sessions.items() if session.user_id == user_id]
        for session_hash in ended:
            self.tx.delete(self.s.sessions, session_hash)
        return len(ended)

    def delete_expired(self, now_ms: int, idle_ms: int, limit: int) -> int:
        expired = [
            h for h, session in self.s.sessions.items() if not session.is_active(now_ms, idle_ms)
        ][:limit]
        for session_hash in expired:
            self.tx.delete(self.s.sessions, session_hash)
        return len(expired)


class _Idempotency(_Repo):
    @staticmethod
    def _key(record: IdempotencyRecord) -> tuple[str, str, str]:
        return (record.scope_user_id, record.endpoint, record.key)

    def get(self, scope_user_id: str, endpoint: str, key: str) -> IdempotencyRecord | None:
        return self.s.idempotency.get((scope_user_id, endpoint, key))

    def add(self, record: IdempotencyRecord) -> None:
        if self._key(record) in self.s.idempotency:
            raise DuplicateError(UniqueConstraint.IDEMPOTENCY_KEY)
        self.tx.put(self.s.idempotency, self._key(record), record)

    def replace(self, record: IdempotencyRecord, expected_claim_id: str) -> bool:
        current = self.s.idempotency.get(self._key(record))
        if current is None or current.claim_id != expected_claim_id:
            return False
        self.tx.put(self.s.idempotency, self._key(record), record)
        return True

    def delete(self, record: IdempotencyRecord) -> None:
        current = self.s.idempotency.get(self._key(record))
        if current is not None and current.claim_id == record.claim_id:
            self.tx.delete(self.s.idempotency, self._key(record))

    def delete_expired(self, now_ms: int, limit: int) -> int:
        expired = [k for k, r in self.s.idempotency.items() if r.expires_at_ms <= now_ms][:limit]
        for key in expired:
            self.tx.delete(self.s.idempotency, key)
        return len(expired)


class _Audit(_Repo):
    def append(self, event: AuditEvent) -> None:
        if event.event_id in self.s.audit_ids:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        self.tx.put(self.s.audit_ids, event.event_id, None)
        frozen = attrs.evolve(event, details=types.MappingProxyType(dict(event.details)))
        self.tx.append(self.s.audit, frozen)

    def query(
        self, query: AuditQuery, after: CreatedKey | None, limit: int
    ) -> Sequence[AuditEvent]:
        rows = (
            e
            for e in self.s.audit
            if (query.type is None or e.type == query.type)
            and (query.listing_id is None or e.listing_id == query.listing_id)
            and (query.actor_user_id is None or e.actor.user_id == query.actor_user_id)
        )
        return _page(rows, lambda e: (e.created_at_ms, e.event_id), after, limit)


class MemoryUnitOfWork:
    """One serialised transaction over a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._tx = _Tx()
        self._active = False
        self._key: HeldKey | None = None
        self._holds_key = False
        self.users = _Users(store, self._tx)
        self.profiles = _Profiles(store, self._tx)
        self.listings = _Listings(store, self._tx)
        self.releases = _Releases(store, self._tx)
        self.intents = _Intents(store, self._tx)
        self.tokens = _Tokens(store, self._tx)
        self.api_tokens = _ApiTokens(store, self._tx)
        self.accounts = _Accounts(store, self._tx)
        self.sessions = _Sessions(store, self._tx)
        self.idempotency = _Idempotency(store, self._tx)
        self.audit = _Audit(store, self._tx)

    def hold_key(self, scope_user_id: str, endpoint: str, key: str) -> None:
        if self._active or self._key is not None:
            raise RuntimeError("hold one key, before entering the unit of work")
        self._key = (scope_user_id, endpoint, key)

    def __enter__(self) -> Self:
        me = threading.get_ident()
        if self._store.owner == me:
            raise RuntimeError("units of work do not nest: finish the open one first")
        # The key before the lock: a duplicate of a running request must not queue.
        if self._key is not None:
            if not self._store.in_flight.try_hold(self._key):
                raise KeyHeld()
            self._holds_key = True
        try:
            self._store.lock.acquire()
        except BaseException:  # pragma: no cover - interrupted while queueing
            self._release_key()
            raise
        self._store.owner = me
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            self._active = False
            self._store.owner = None
            # The key before the lock: whoever holds it next must still take the lock
            # to look, so it sees this unit of work ended, and never finds it held.
            self._release_key()
            self._store.lock.release()

    def _release_key(self) -> None:
        if self._holds_key and self._key is not None:
            self._holds_key = False
            self._store.in_flight.release(self._key)

    def commit(self) -> None:
        if not self._active:
            raise RuntimeError("commit outside the unit of work")
        self._tx.undo.clear()
        if self._tx.search_ids:
            self._store.search_pending.update(self._tx.search_ids)
            self._tx.search_ids.clear()
        if self._tx.catalog_changed:
            self._tx.catalog_changed = False
            self._store.catalog_version.bump()

    def rollback(self) -> None:
        self._tx.rollback(self._store.search_pending)
