"""The ports: what the core needs from the world, as Protocols.

Adapters implement them (``fleetprompt_adapters.memory`` for in-process use,
the SQL adapter for databases). Repositories take and return domain objects;
every write that would break a uniqueness rule raises
:class:`~fleetprompt_core.base.errors.DuplicateError` naming one of the
:class:`UniqueConstraint` values. List methods return at most ``limit`` items
strictly after the keyset position ``after`` in the documented order.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

import attrs

from fleetprompt_core.base.enums import (
    InstallIntentStatus,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
)
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import (
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
    RankedHit,
    SearchHit,
)
from fleetprompt_core.policies.versions import VersionCandidate

__all__ = [
    "AccountRepository",
    "ApiTokenRepository",
    "AuditLog",
    "AuditQuery",
    "CatalogVersion",
    "Clock",
    "IdGenerator",
    "IdempotencyRepository",
    "IdentityResolver",
    "InstallIntentRepository",
    "InstallTokenRepository",
    "ListingRepository",
    "PasswordHasher",
    "Principal",
    "PublisherProfileRepository",
    "RateDecision",
    "RateLimiter",
    "Redeemable",
    "ReleaseRepository",
    "SearchIndex",
    "SessionRepository",
    "TokenGenerator",
    "TokenHasher",
    "UniqueConstraint",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
]

#: A keyset position: the sort key of the last item already seen.
CreatedKey = tuple[int, str]


class UniqueConstraint(enum.StrEnum):
    USER_EXTERNAL_ID = "users.external_id"
    RELEASE_VERSION = "releases.listing_id_version"
    TOKEN_HASH = "install_tokens.token_hash"  # noqa: S105 - a constraint name
    API_TOKEN_HASH = "api_tokens.token_hash"  # noqa: S105 - a constraint name
    ACCOUNT_USERNAME = "accounts.username"
    ACCOUNT_EMAIL = "accounts.email"
    IDEMPOTENCY_KEY = "idempotency.scope_endpoint_key"
    PRIMARY_KEY = "primary_key"


# --------------------------------------------------------------------------- plain services


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new unique, time-ordered id such as ``lst_01J...``."""
        ...


class TokenGenerator(Protocol):
    def new_token(self, prefix: str) -> str:
        """A new raw high-entropy token with ``prefix`` (see ``policies.tokens``)."""
        ...


class TokenHasher(Protocol):
    def hash(self, raw_token: str) -> str:
        """Deterministic hash used to store and look up a token."""
        ...


class PasswordHasher(Protocol):
    """A slow, salted password hash (argon2id in the shipped adapter, ADR 0018)."""

    def hash(self, password: str) -> str:
        """A self-describing hash string (algorithm, parameters, salt, digest)."""
        ...

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; ``False`` (never an exception) otherwise."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than today's."""
        ...


@attrs.frozen
class Principal:
    """An authenticated identity as the identity provider names it."""

    external_id: str
    display_name: str | None = None
    email: str | None = None
    #: The stored user row a resolver already read in this request (the API-token
    #: resolver, ADR 0037): the core uses it instead of reading the row again. Not part
    #: of the identity (ignored by equality), never set by an outside identity provider.
    user: User | None = attrs.field(default=None, eq=False, repr=False)


class IdentityResolver(Protocol):
    def resolve(self, credential: str) -> Principal | None:
        """The principal a bearer credential proves, or ``None``."""
        ...


@attrs.frozen
class RateDecision:
    allowed: bool
    retry_after_ms: int = 0


class RateLimiter(Protocol):
    def hit(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        """Count one event in ``bucket``; refuse once ``limit`` is reached within the window."""
        ...

    def peek(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        """What :meth:`hit` would decide now, without counting anything."""
        ...


class CatalogVersion(Protocol):
    """A number that changes with every committed change of what a public read shows.

    Storage adapters implement it next to their tables: a committed write of a
    listing, a release, a publisher profile or a user (the default publisher
    name) moves it to a new value in the same transaction as the write.
    Readers that keep copies of public answers (the HTTP adapter's response
    cache) tag each copy with the version read *before* building it and drop
    every copy once the version moves, so a copy never outlives a change it
    does not show. Install intents do not move it: the install statistics
    public answers show (``stats.installAttempts30d``, the ``installs`` sort)
    are counts over a sliding 30-day window, and a copy's bounded lifetime
    (the response cache's entry TTL) bounds how far they lag (ADR 0033).
    """

    def current(self) -> int | None:
        """The newest version this process knows, or ``None`` when it cannot vouch
        for it (its last look at the shared value is too old): then nothing may be
        served from a copy. Never blocks."""
        ...

    def refresh(self) -> None:
        """Read the shared value (blocking I/O: call it from a worker thread)."""
        ...


# --------------------------------------------------------------------------- repositories


class UserRepository(Protocol):
    def get(self, user_id: str) -> User | None: ...
    def get_many(self, user_ids: Iterable[str]) -> Mapping[str, User]:
        """The users among ``user_ids`` that exist, by id (one query for a page)."""
        ...

    def get_by_external_id(self, external_id: str) -> User | None: ...
    def add(self, user: User) -> None: ...
    def update(self, user: User) -> None: ...
    def list_page(self, after_user_id: str | None, limit: int) -> Sequence[User]:
        """Up to ``limit`` users in ascending ``user_id`` order, strictly after
        ``after_user_id`` (ids are time-ordered, so oldest first)."""
        ...


class PublisherProfileRepository(Protocol):
    def get(self, publisher_id: str) -> PublisherProfile | None: ...
    def get_many(self, publisher_ids: Iterable[str]) -> Mapping[str, PublisherProfile]: ...
    def save(self, profile: PublisherProfile) -> None:
        """Insert or replace the profile of ``profile.publisher_id``."""
        ...


class ListingRepository(Protocol):
    def get(self, listing_id: str) -> Listing | None: ...
    def add(self, listing: Listing) -> None: ...
    def update(self, listing: Listing, expected: Listing) -> bool:
        """Store ``listing`` if the stored one still has ``expected``'s status and
        ``updated_at_ms`` (compare-and-set); ``False`` when it changed meanwhile."""
        ...

    def list_by_owner(
        self,
        owner_user_id: str,
        status: ListingStatus | None,
        after: CreatedKey | None,
        limit: int,
    ) -> Sequence[Listing]:
        """Owner's listings, ``(created_at_ms, listing_id)`` descending."""
        ...

    def search_published(self, search: ListingSearch) -> Sequence[SearchHit]:
        """Published listings matching ``search`` per ``domain.search`` (relevance
        searches with words in the order of the adapter's :class:`SearchIndex`)."""
        ...

    def search_cards(self, search: ListingSearch) -> Sequence[CardHit]:
        """The hits of :meth:`search_published` as cards (ADR 0040): the same listings,
        order and scores; each card counts the install intents created at or after
        ``search.installs_since_ms``. What a search page reads."""
        ...

    def cards(
        self, listing_ids: Iterable[str], installs_since_ms: int
    ) -> Mapping[str, ListingCard]:
        """The cards of the listings among ``listing_ids`` that exist, whatever their
        status, by id; install intents counted from ``installs_since_ms``."""
        ...

    def detail(
        self, listing_id: str, installs_since_ms: int, releases: int
    ) -> ListingDetail | None:
        """The listing's card (install intents counted from ``installs_since_ms``) and
        description with its first ``releases`` releases that are not revoked (those of
        ``ReleaseRepository.list_for_listing(listing_id, False, None, releases)``), whatever
        its status; ``None`` when it does not exist. What a detail page reads (ADR 0042:
        one statement on PostgreSQL)."""
        ...


class SearchIndex(Protocol):
    """The search engine that ranks relevance searches with words (ADR 0034).

    It holds the published catalogue as the adapter feeds it (``rebuild``,
    then ``apply`` for each change) and answers with the semantics of
    ``domain.search``: the matches of every term (prefix rule) and filter,
    no other listing; a strict ``(score, updatedAtMs, listingId)`` descending
    order; the same page for the same search until the next write; a cursor
    naming a matching listing continues right after that listing as it ranks
    now. How it scores (BM25 with the field weights as boosts) is its own.
    """

    def rebuild(self, items: Iterable[IndexedListing]) -> int:
        """Replace the whole index by ``items``; how many it holds."""
        ...

    def apply(self, upserts: Iterable[IndexedListing], deletes: Iterable[str] = ()) -> None:
        """Drop the listings ``deletes`` names, add or replace ``upserts``, in one commit."""
        ...

    def ranked(self, search: ListingSearch) -> Sequence[RankedHit]:
        """At most ``search.limit`` hits strictly after ``search.after``, in order."""
        ...


class ReleaseRepository(Protocol):
    def get(self, release_id: str) -> Release | None: ...
    def add(self, release: Release) -> None:
        """Raises ``DuplicateError(RELEASE_VERSION)`` when the version exists."""
        ...

    def update(self, release: Release, expected_status: ReleaseStatus) -> bool:
        """Compare-and-set on the stored status; ``False`` when it differs."""
        ...

    def list_for_listing(
        self,
        listing_id: str,
        include_revoked: bool,
        after: CreatedKey | None,
        limit: int,
    ) -> Sequence[Release]:
        """Releases, ``(published_at_ms, release_id)`` descending."""
        ...

    def published_versions(self, listing_id: str) -> Sequence[VersionCandidate]:
        """Id, version and publish time of every ``published`` release, in no order.

        The core chooses the latest among them (``policies.versions.latest``).
        """
        ...


class InstallIntentRepository(Protocol):
    def get(self, install_intent_id: str) -> InstallIntent | None: ...
    def add(self, intent: InstallIntent) -> None: ...
    def update(self, intent: InstallIntent, expected_status: InstallIntentStatus) -> bool:
        """Compare-and-set on the stored status; ``False`` when it differs."""
        ...

    def list_for_buyer(
        self,
        buyer_user_id: str,
        status: InstallIntentStatus | None,
        now_ms: int,
        after: CreatedKey | None,
        limit: int,
    ) -> Sequence[InstallIntent]:
        """Buyer's intents, ``(created_at_ms, id)`` descending.

        ``status`` filters on the status *observed at* ``now_ms``: an open
        intent whose expiry has passed counts as ``expired``.
        """
        ...

    def count_created_since(self, listing_ids: Iterable[str], since_ms: int) -> Mapping[str, int]:
        """Intents created at or after ``since_ms`` per listing (absent ⇒ 0)."""
        ...

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallIntent]:
        """Open intents whose expiry is at or before ``now_ms``."""
        ...


@attrs.frozen
class Redeemable:
    """An install token with its intent, and the intent's release and listing."""

    token: InstallToken
    intent: InstallIntent
    release: Release
    listing: Listing


class InstallTokenRepository(Protocol):
    def add(self, token: InstallToken) -> None:
        """Raises ``DuplicateError(TOKEN_HASH)`` when the hash exists."""
        ...

    def update(self, token: InstallToken, expected_status: InstallTokenStatus) -> bool:
        """Compare-and-set on the stored status; ``False`` when it differs."""
        ...

    def redeem(
        self,
        token: InstallToken,
        token_was: InstallTokenStatus,
        intent: InstallIntent,
        intent_was: InstallIntentStatus,
        event: AuditEvent,
    ) -> bool:
        """A redemption's writes as one change: the compare-and-set of ``token`` (stored
        status still ``token_was``), then of its ``intent`` (still ``intent_was``), then
        ``event`` appended — each only when the one before it won (one statement on
        PostgreSQL). ``False`` when either set lost: the caller must roll back (the
        token's set may have been applied); ``True`` when all three were written.
        ``token`` and ``intent`` are the stored ones after a state change of the
        domain model (``redeemed``): only their state fields differ, so an adapter
        may write those alone (ADR 0045)."""
        ...

    def get_by_hash(self, token_hash: str) -> InstallToken | None: ...
    def get_for_redemption(self, token_hash: str) -> Redeemable | None:
        """The token of ``token_hash`` with its intent, release and listing, read together
        (one query on a database); ``None`` when no token has that hash."""
        ...

    def list_issued_for_intent(self, install_intent_id: str) -> Sequence[InstallToken]:
        """Tokens of the intent whose stored status is ``issued``."""
        ...

    def list_issued_for_listing(self, listing_id: str) -> Sequence[InstallToken]:
        """Tokens of every intent of the listing whose stored status is ``issued``.

        Ordered by ``(issued_at_ms, token_id)``.
        """
        ...

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallToken]:
        """Issued tokens whose expiry is at or before ``now_ms``."""
        ...


class ApiTokenRepository(Protocol):
    def add(self, token: ApiToken) -> None:
        """Raises ``DuplicateError(API_TOKEN_HASH)`` when the hash exists."""
        ...

    def get(self, token_id: str) -> ApiToken | None: ...
    def get_by_hash(self, token_hash: str) -> ApiToken | None: ...
    def update(self, token: ApiToken, expected_revoked_at_ms: int | None) -> bool:
        """Compare-and-set on the stored ``revoked_at_ms``; ``False`` when it differs.

        Only the revocation of a token ever changes.
        """
        ...

    def list_for_user(
        self, user_id: str, after: CreatedKey | None, limit: int
    ) -> Sequence[ApiToken]:
        """The user's tokens (revoked and expired ones too), ``(created_at_ms, token_id)``
        descending."""
        ...


class AccountRepository(Protocol):
    """Built-in accounts, one per user (the user id is the key)."""

    def get(self, user_id: str) -> Account | None: ...
    def get_by_username(self, username: str) -> Account | None: ...
    def get_by_email(self, email: str) -> Account | None: ...
    def add(self, account: Account) -> None:
        """Raises ``DuplicateError`` naming ``PRIMARY_KEY``, ``ACCOUNT_USERNAME`` or
        ``ACCOUNT_EMAIL``."""
        ...

    def update(self, account: Account, expected_password_hash: str) -> bool:
        """Compare-and-set on the stored password hash; ``False`` when it changed.

        Username and e-mail never change through ``update``.
        """
        ...


class SessionRepository(Protocol):
    """Server-side browser sessions, keyed by the hash of their token."""

    def add(self, session: BrowserSession) -> None:
        """Raises ``DuplicateError(PRIMARY_KEY)`` when the hash exists."""
        ...

    def get(self, session_hash: str) -> BrowserSession | None: ...
    def touch(self, session_hash: str, last_seen_at_ms: int) -> None:
        """Move the session's last activity forward (never backwards)."""
        ...

    def delete(self, session_hash: str) -> bool:
        """End one session; ``False`` when there was none."""
        ...

    def delete_for_user(self, user_id: str) -> int:
        """End every session of the user; returns how many."""
        ...

    def delete_expired(self, now_ms: int, idle_ms: int, limit: int) -> int:
        """Drop up to ``limit`` sessions past their end or idle for ``idle_ms``."""
        ...


class IdempotencyRepository(Protocol):
    def get(self, scope_user_id: str, endpoint: str, key: str) -> IdempotencyRecord | None: ...
    def add(self, record: IdempotencyRecord) -> None:
        """Raises ``DuplicateError(IDEMPOTENCY_KEY)`` if the triple exists."""
        ...

    def replace(self, record: IdempotencyRecord, expected_claim_id: str) -> bool:
        """Overwrite the stored record if its claim id is still ``expected_claim_id``."""
        ...

    def delete(self, record: IdempotencyRecord) -> None:
        """Remove the record if its claim id still matches."""
        ...

    def delete_expired(self, now_ms: int, limit: int) -> int:
        """Drop up to ``limit`` records whose retention has passed; returns how many."""
        ...


@attrs.frozen
class AuditQuery:
    type: str | None = None
    listing_id: str | None = None
    actor_user_id: str | None = None


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> None: ...
    def query(
        self, query: AuditQuery, after: CreatedKey | None, limit: int
    ) -> Sequence[AuditEvent]:
        """Events, ``(created_at_ms, event_id)`` descending."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the ``with`` block without ``commit()`` rolls back."""

    @property
    def users(self) -> UserRepository: ...
    @property
    def profiles(self) -> PublisherProfileRepository: ...
    @property
    def listings(self) -> ListingRepository: ...
    @property
    def releases(self) -> ReleaseRepository: ...
    @property
    def intents(self) -> InstallIntentRepository: ...
    @property
    def tokens(self) -> InstallTokenRepository: ...
    @property
    def api_tokens(self) -> ApiTokenRepository: ...
    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
    @property
    def audit(self) -> AuditLog: ...

    def hold_key(self, scope_user_id: str, endpoint: str, key: str) -> None:
        """Make this unit of work hold an idempotency key from its start to its end.

        Called once, before the ``with`` block. Entering then holds the key, or, when
        another open unit of work holds the same ``(scope_user_id, endpoint, key)``,
        raises :class:`~fleetprompt_core.base.errors.KeyHeld` at once: without waiting
        for that unit of work, nor for a write lock it holds. The key is released
        however this one ends (commit, rollback, an exception), after its commit, so a
        unit of work that holds the key next sees what this one stored; it is held
        only if entering succeeds (a failed ``__enter__`` holds nothing).

        Who else is seen depends on the store: PostgreSQL, every unit of work on the
        database, from any process (a transaction advisory lock); SQLite and the
        in-memory store, the units of work of the same store object in this process.
        Units of work of another process on the same SQLite file are not seen: they
        wait for the database's write lock instead, one after the other.
        """
        ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
