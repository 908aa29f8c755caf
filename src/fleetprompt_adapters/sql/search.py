"""Public search in SQL, with exactly the semantics of ``fleetprompt_core.domain.search``.

Three plans, chosen per query (ADR 0012):

* **browse** (no ``q``): walk an index in the requested order and stop after
  ``limit`` rows: ``listings (status, <sort key>)`` without label filters,
  ``listing_labels (kind, value, <sort key>)`` driven by the rarest label
  filter otherwise. Cost ∝ page size, at any depth (keyset, never offset).
* **terms first**: the candidates are the listings holding a token that the
  rarest term prefixes (an index range on ``listing_terms``); every other
  term is probed per candidate through ``(listing_id, token)``. Cost ∝ the
  rarest term's matches. Used for ``relevance`` (the score needs every match)
  and whenever some term is rare.
* **order first** (``updated``/``created``/``name`` when every term is
  common): walk the listings in the requested order and keep those holding
  every term, stopping after ``limit`` rows.
* **by installs** (``installs``, contract §14): first the listings with
  install intents in the window, counted from ``install_intents`` and ordered
  by ``(count, id)``; then, when the page is not full, the listings without
  any, walked by id. Cost ∝ the listings installed in the window plus the page.

``verified`` is one more condition: the listing's publisher profile says
``verified``.

A term ``t`` matches the tokens in the code-point range ``[t, t + U+10FFFF)``:
exactly the tokens it prefixes, since a token (letters and digits) never
holds U+10FFFF. Its score for a listing is ``3·name + 2·labels + 1·summary``
over the fields of those tokens, as in the core.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from fleetprompt_adapters.sql import search_log
from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.driver import prepared
from fleetprompt_adapters.sql.mapping import DESCRIPTIONS, LISTING_CARDS, LISTINGS, RELEASES
from fleetprompt_core.base.enums import ListingStatus, ReleaseStatus, SearchSort, VerificationStatus
from fleetprompt_core.domain.model import Listing
from fleetprompt_core.domain.search import (
    FIELD_WEIGHTS,
    CardHit,
    ListingCard,
    ListingDetail,
    ListingSearch,
    RankedHit,
    SearchHit,
)

__all__ = [
    "COMMON_TERM_ROWS",
    "RankedSearch",
    "cards_of",
    "detail_of",
    "fetch_ranked",
    "fetch_ranked_cards",
    "search_cards",
    "search_published",
]

#: A term with at least this many index rows is "common": the order-first plan is cheaper.
COMMON_TERM_ROWS = 2_000
_TOP = "\U0010ffff"

_L = t.listings
_T = t.listing_terms
_LB = t.listing_labels
_I = t.install_intents
_P = t.publisher_profiles
_U = t.users
_DIALECTS = ("sqlite", "postgresql")

#: A ranked page before its rows are read: ``(listing id, score, installs)`` in order.
Ranked = list[tuple[str, int, int]]
_Hit = TypeVar("_Hit", SearchHit, CardHit)


def _term_range(column: sa.ColumnElement[str], term: str) -> sa.ColumnElement[bool]:
    return sa.and_(column >= term, column < term + _TOP)


def _term_score(terms: Any) -> sa.ColumnElement[int]:
    """``3·max(in_name) + 2·max(in_labels) + max(in_summary)`` over matched tokens."""
    return (
        FIELD_WEIGHTS["name"] * sa.func.max(terms.c.in_name)
        + FIELD_WEIGHTS["labels"] * sa.func.max(terms.c.in_labels)
        + FIELD_WEIGHTS["summary"] * sa.func.max(terms.c.in_summary)
    )


def _probe(listing_id: sa.ColumnElement[str], term: str) -> sa.ScalarSelect[int]:
    """The term's score for one listing (NULL when it does not match)."""
    probe = _T.alias()
    return (
        sa.select(_term_score(probe))
        .where(probe.c.listing_id == listing_id, _term_range(probe.c.token, term))
        .scalar_subquery()
    )


def _label_filters(
    listing_id: sa.ColumnElement[str], labels: Sequence[tuple[str, str]]
) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    for kind, value in labels:
        other = _LB.alias()
        filters.append(
            sa.exists().where(
                other.c.kind == kind, other.c.value == value, other.c.listing_id == listing_id
            )
        )
    return filters


def _verified_publisher(publisher_id: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """The publisher's profile says ``verified`` (no profile: not verified)."""
    profile = _P.alias("verified_profile")  # its own: a card's query joins the profiles too
    return sa.exists().where(
        profile.c.publisher_id == publisher_id,
        profile.c.verification_status == VerificationStatus.VERIFIED,
    )


def _verified_listing(listing_id: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """The listing ``listing_id`` belongs to a verified publisher."""
    owner = _L.alias("owner")
    return sa.exists().where(
        owner.c.listing_id == listing_id, _verified_publisher(owner.c.publisher_user_id)
    )


def _labels(search: ListingSearch) -> list[tuple[str, str]]:
    return [(t.LABEL_TAG, tag) for tag in search.tags] + [
        (t.LABEL_CATEGORY, category) for category in search.categories
    ]


def _order_columns(source: Any, sort: SearchSort) -> list[sa.ColumnElement[Any]]:
    """The sort key columns of ``source`` (listings or labels), score excluded."""
    if sort is SearchSort.CREATED:
        return [source.c.created_at_ms, source.c.listing_id]
    if sort is SearchSort.NAME:
        return [source.c.name_key, source.c.listing_id]
    return [source.c.updated_at_ms, source.c.listing_id]


def _keyset(
    columns: Sequence[sa.ColumnElement[Any]], search: ListingSearch
) -> list[sa.ColumnElement[bool]]:
    if search.after is None:
        return []
    after = tuple(search.after)
    key = sa.tuple_(*columns)
    bound = sa.tuple_(*(sa.literal(v) for v in after))
    return [key > bound if search.sort is SearchSort.NAME else key < bound]


def _ordered(columns: Sequence[sa.ColumnElement[Any]], sort: SearchSort) -> list[Any]:
    return [c.asc() if sort is SearchSort.NAME else c.desc() for c in columns]


def _no_score_key(search: ListingSearch) -> ListingSearch | None:
    """Without terms every score is 0: relevance is ``updated`` behind a leading 0.

    ``None`` when the keyset position lies past every score-0 hit.
    """
    if search.sort is not SearchSort.RELEVANCE:
        return search
    after: tuple[int | str, ...] | None = None
    if search.after is not None:
        score, *rest = search.after
        if not isinstance(score, int) or score < 0:
            return None
        after = tuple(rest) if score == 0 else None
    return attrs.evolve(search, sort=SearchSort.UPDATED, after=after)


def _one_of(column: sa.ColumnElement[str], dialect: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the ids bound as ``:ids``, one bound value (a JSON array on
    SQLite, an array on PostgreSQL), not one parameter each: the statement's SQL is the
    same for every page, so it is compiled once and the driver's statement cache is hit
    (an expanding ``IN`` is rendered again per call, which cost more than the query itself
    on a page of 50). :func:`_ids` binds the value."""
    if dialect == "sqlite":
        return column.in_(
            sa.select(sa.column("value", sa.Text))
            .select_from(sa.func.json_each(sa.bindparam("ids", type_=sa.Text)))
            .scalar_subquery()
        )
    return column == sa.func.any(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))


def _ids(conn: sa.Connection, ids: Sequence[str]) -> str | list[str]:
    """The ``:ids`` value of :func:`_one_of` on ``conn``'s database."""
    return json.dumps(list(ids)) if conn.dialect.name == "sqlite" else list(ids)


#: The listings of a page, by id (every plan ranks on narrow columns and fetches them last).
_PAGE = {dialect: sa.select(_L).where(_one_of(_L.c.listing_id, dialect)) for dialect in _DIALECTS}
_H = t.search_log_head
#: The search log's head as two trailing columns of a page's rows (uncorrelated scalar
#: subqueries: evaluated once per statement, in the statement's snapshot; ADR 0042).
_HEAD_COLUMNS = (
    sa.select(_H.c.epoch).where(_H.c.id == 1).scalar_subquery().label("log_epoch"),
    sa.select(_H.c.seq).where(_H.c.id == 1).scalar_subquery().label("log_seq"),
)
#: ``_PAGE`` with the log's head: what an engine's page reads (one round trip).
_PAGE_AND_HEAD = {
    dialect: sa.select(_L, *_HEAD_COLUMNS).where(_one_of(_L.c.listing_id, dialect))
    for dialect in _DIALECTS
}


def _card_columns() -> list[sa.ColumnElement[Any]]:
    """What a card reads (``mapping.LISTING_CARDS.columns``): the listing's columns but its
    description and moderation, its publisher's names (users, and the profile when there
    is one), and its install intents created at or after ``:since``."""
    installs = (
        sa.select(sa.func.count())
        .where(_I.c.listing_id == _L.c.listing_id, _I.c.created_at_ms >= sa.bindparam("since"))
        .scalar_subquery()
    )
    sources: dict[str, sa.ColumnElement[Any]] = {
        "publisher_user_display_name": _U.c.display_name,
        "publisher_profile_display_name": _P.c.display_name,
        "publisher_verification_status": sa.type_coerce(_P.c.verification_status, sa.Text),
        "publisher_verification_checked_at_ms": _P.c.verification_checked_at_ms,
        "publisher_verification_reason": _P.c.verification_reason,
        "installs": installs,
    }
    return [
        sources[name].label(name) if name in sources else _raw(_L.c[name])
        for name in LISTING_CARDS.columns
    ]


def _raw(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """``column`` as the card loader takes it: JSON as its text (``LISTING_CARDS.json_text``),
    an enum as its stored string; no driver type processes the value first."""
    if column.name in LISTING_CARDS.json_text:
        return sa.cast(column, sa.Text).label(column.name)
    if isinstance(column.type, sa.Enum):
        return sa.type_coerce(column, sa.Text).label(column.name)
    return column


_CARD_SOURCE = _L.outerjoin(_U, _U.c.user_id == _L.c.publisher_user_id).outerjoin(
    _P, _P.c.publisher_id == _L.c.publisher_user_id
)
#: The cards of a page, by id, in one statement: the listing, its publisher, its count.
_CARDS = {
    dialect: sa.select(*_card_columns())
    .select_from(_CARD_SOURCE)
    .where(_one_of(_L.c.listing_id, dialect))
    for dialect in _DIALECTS
}
#: ``_CARDS`` with the log's head (as ``_PAGE_AND_HEAD``).
_CARDS_AND_HEAD = {
    dialect: sa.select(*_card_columns(), *_HEAD_COLUMNS)
    .select_from(_CARD_SOURCE)
    .where(_one_of(_L.c.listing_id, dialect))
    for dialect in _DIALECTS
}


def cards_of(conn: sa.Connection, ids: Sequence[str], since_ms: int) -> dict[str, ListingCard]:
    """The cards of the listings ``ids`` that exist, by id (install intents from ``since_ms``)."""
    if not ids:
        return {}
    params = {"ids": _ids(conn, ids), "since": since_ms}
    rows = conn.execute(_CARDS[conn.dialect.name], params).all()
    return {card.listing_id: card for card in LISTING_CARDS.load_all(rows)}


def _select(
    conn: sa.Connection, statement: sa.Select[Any], params: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of ``statement`` (built once: a module constant or a cached builder), each
    value as Core reads it; on SQLite on the driver's cursor (``driver.py``)."""
    if conn.dialect.name == "sqlite":
        return prepared(statement, conn.dialect).rows(conn, params)
    return conn.execute(statement, params).all()


def _detail_statement() -> sa.Select[Any]:
    """A listing's detail page in one statement (ADR 0042): its card and description
    with its first ``:limit`` published releases, newest first, one row per release (one
    row, without a release, when it has none). The description is sent with the first
    row only; the card's columns are short."""
    releases = t.releases
    newest_first = (releases.c.published_at_ms.desc(), releases.c.release_id.desc())
    page = (
        sa.select(releases, sa.func.row_number().over(order_by=newest_first).label("n"))
        .where(
            releases.c.listing_id == sa.bindparam("listing_id"),
            releases.c.status == ReleaseStatus.PUBLISHED,
        )
        .order_by(*newest_first)
        .limit(sa.bindparam("limit"))
        .subquery("page")
    )
    first = sa.or_(page.c.n.is_(None), page.c.n == 1)
    description = [
        sa.case((first, _L.c[f"description_{name}"]), else_=sa.null()).label(f"description_{name}")
        for name in DESCRIPTIONS.columns
    ]
    return (
        sa.select(
            *_card_columns(),
            *description,
            *(page.c[column.name].label(f"release_{column.name}") for column in releases.c),
        )
        .select_from(_CARD_SOURCE.outerjoin(page, sa.true()))
        .where(_L.c.listing_id == sa.bindparam("listing_id"))
        .order_by(page.c.n)
    )


_DETAIL = _detail_statement()
_DESCRIPTION_AT = len(LISTING_CARDS.columns)
_RELEASE_AT = _DESCRIPTION_AT + len(DESCRIPTIONS.columns)
_RELEASE_ID_AT = _RELEASE_AT + list(t.releases.c.keys()).index("release_id")


def detail_of(
    conn: sa.Connection, listing_id: str, since_ms: int, releases: int
) -> ListingDetail | None:
    """The detail read of ``listing_id`` (``ListingRepository.detail``), ``None`` when it
    does not exist: one round trip."""
    params = {"listing_id": listing_id, "since": since_ms, "limit": releases}
    rows = _select(conn, _DETAIL, params)
    if not rows:
        return None
    first = rows[0]
    return ListingDetail(
        LISTING_CARDS.load_values(first),
        DESCRIPTIONS.load_values(first[_DESCRIPTION_AT:_RELEASE_AT]),
        tuple(
            RELEASES.load_values(row[_RELEASE_AT:])
            for row in rows
            if row[_RELEASE_ID_AT] is not None
        ),
    )


def _fetch(conn: sa.Connection, ranked: Ranked) -> list[SearchHit]:
    """The listings of ``ranked``, in that order."""
    if not ranked:
        return []
    ids = _ids(conn, [listing_id for listing_id, _, _ in ranked])
    rows = conn.execute(_PAGE[conn.dialect.name], {"ids": ids}).all()
    return _in_order(ranked, LISTINGS.load_all(rows))


def _in_order(ranked: Ranked, listings: Sequence[Listing]) -> list[SearchHit]:
    by_id = {listing.listing_id: listing for listing in listings}
    return [
        SearchHit(by_id[listing_id], score, installs)
        for listing_id, score, installs in ranked
        if listing_id in by_id
    ]


def _fetch_cards(conn: sa.Connection, ranked: Ranked, since_ms: int) -> list[CardHit]:
    """The cards of ``ranked``, in that order."""
    by_id = cards_of(conn, [listing_id for listing_id, _, _ in ranked], since_ms)
    return [
        CardHit(by_id[listing_id], score) for listing_id, score, _ in ranked if listing_id in by_id
    ]


Head = search_log.Head
#: What an engine's page reads: its hits, and the log's head in the same snapshot.
_Fetched = tuple[list[_Hit], Head]


def _with_head(conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> Head:
    """The log's head from a page's trailing columns (its own statement when no row came
    back: an empty page, or listings deleted since the index named them)."""
    if not rows:
        return search_log.head(conn)
    epoch, seq = rows[0][-2], rows[0][-1]
    return (None, 0) if seq is None else (str(epoch), int(seq))


def _fetch_and_head(conn: sa.Connection, ranked: Ranked) -> _Fetched[SearchHit]:
    """:func:`_fetch` and the log's head, in one statement."""
    if not ranked:
        return [], search_log.head(conn)
    ids = _ids(conn, [listing_id for listing_id, _, _ in ranked])
    rows = conn.execute(_PAGE_AND_HEAD[conn.dialect.name], {"ids": ids}).all()
    return _in_order(ranked, LISTINGS.load_all(rows)), _with_head(conn, rows)


def _fetch_cards_and_head(conn: sa.Connection, ranked: Ranked, since_ms: int) -> _Fetched[CardHit]:
    """:func:`_fetch_cards` and the log's head, in one statement."""
    if not ranked:
        return [], search_log.head(conn)
    params = {"ids": _ids(conn, [listing_id for listing_id, _, _ in ranked]), "since": since_ms}
    rows = conn.execute(_CARDS_AND_HEAD[conn.dialect.name], params).all()
    by_id = {card.listing_id: card for card in LISTING_CARDS.load_all(rows)}
    hits = [
        CardHit(by_id[listing_id], score) for listing_id, score, _ in ranked if listing_id in by_id
    ]
    return hits, _with_head(conn, rows)


class RankedSearch(Protocol):
    """A search engine that ranks relevance searches with terms (ADR 0027), following the
    database through its search log (``search_log``)."""

    def ranked_as_held(self, search: ListingSearch) -> tuple[Sequence[RankedHit], Head | None]:
        """The page of ``search`` (at most ``search.limit`` hits, in its order) from the
        index as it stands, without reading the database, and the log position the index
        holds at least (``None`` before it was ever built)."""
        ...

    def catch_up(self, conn: sa.Connection) -> int:
        """Apply every change logged up to the head ``conn`` reads."""
        ...


def _holds(held: Head | None, head: Head) -> bool:
    """Whether an index at ``held`` has applied every change up to ``head``."""
    return held is not None and held[0] == head[0] and held[1] >= head[1]


def _published_pages(
    conn: sa.Connection,
    engine: RankedSearch,
    search: ListingSearch,
    fetch: Callable[[sa.Connection, Ranked], _Fetched[_Hit]],
) -> list[_Hit]:
    """The published listings of the engine's page of ``search``, in its order.

    The engine ranks from its index as it stands; the page's rows are read with the
    log's head in one statement (ADR 0042). When the head is past what the index holds,
    the engine catches up on this connection and the page is ranked and read again:
    a search reflects every change committed before it began (ADR 0027), as when the
    head was read first, for one round trip instead of two when nothing changed. At most
    once per search: the second answer is the one a head read first would give.

    The engine may name a listing this connection no longer reads as published
    (an index a moment ahead of, or behind, the transaction): it is left out, and
    the engine is asked again right after the last hit it gave, so that a full
    page stays full. A short page would end a cursor walk early (the core takes
    ``limit + 1`` hits to know that there is a next page).
    """
    hits: list[_Hit] = []
    page = search
    caught_up = False
    while True:
        ranked, held = engine.ranked_as_held(page)
        found, head = fetch(conn, [(hit.listing_id, hit.score, 0) for hit in ranked])
        if not caught_up and not _holds(held, head):
            engine.catch_up(conn)
            caught_up = True
            continue
        hits += [hit for hit in found if hit.listing.status is ListingStatus.PUBLISHED]
        if len(hits) >= search.limit or len(ranked) < page.limit:
            return hits[: search.limit]
        page = attrs.evolve(page, after=ranked[-1].key, limit=search.limit - len(hits))


def fetch_ranked(
    conn: sa.Connection, engine: RankedSearch, search: ListingSearch
) -> list[SearchHit]:
    """The engine's page of ``search`` as published listings, in its order (see
    :func:`_published_pages`)."""
    return _published_pages(conn, engine, search, _fetch_and_head)


def fetch_ranked_cards(
    conn: sa.Connection, engine: RankedSearch, search: ListingSearch
) -> list[CardHit]:
    """The engine's page of ``search`` as cards (as :func:`fetch_ranked`)."""
    since = search.installs_since_ms

    def fetch(conn: sa.Connection, ranked: Ranked) -> _Fetched[CardHit]:
        return _fetch_cards_and_head(conn, ranked, since)

    return _published_pages(conn, engine, search, fetch)


def _capped_count(query: sa.Select[Any]) -> sa.Select[Any]:
    """How many rows ``query`` has, counted up to ``:cap``."""
    capped = query.limit(sa.bindparam("cap")).subquery()
    return sa.select(sa.func.count()).select_from(capped)


_LABEL_ROWS = _capped_count(
    sa.select(_LB.c.listing_id).where(
        _LB.c.kind == sa.bindparam("kind"), _LB.c.value == sa.bindparam("value")
    )
)
_TERM_ROWS = _capped_count(
    sa.select(_T.c.listing_id).where(
        _T.c.token >= sa.bindparam("low", type_=_T.c.token.type),
        _T.c.token < sa.bindparam("high", type_=_T.c.token.type),
    )
)


def _label_rows(conn: sa.Connection, label: tuple[str, str], cap: int) -> int:
    """How many published listings carry ``label``, counted up to ``cap``."""
    kind, value = label
    return int(conn.execute(_LABEL_ROWS, {"kind": kind, "value": value, "cap": cap}).scalar_one())


def _after_bound(columns: Sequence[sa.ColumnElement[Any]], sort: SearchSort) -> Any:
    """The keyset condition with the position as parameters ``:after_0``, …"""
    key = sa.tuple_(*columns)
    bound = sa.tuple_(
        *(sa.bindparam(f"after_{index}", type_=column.type) for index, column in enumerate(columns))
    )
    return key > bound if sort is SearchSort.NAME else key < bound


def _browse_params(search: ListingSearch) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": search.limit}
    if search.asset_kind is not None:
        params["asset_kind"] = search.asset_kind
    if search.after is not None:
        params.update({f"after_{index}": value for index, value in enumerate(search.after)})
    return params


@functools.lru_cache(maxsize=64)
def _browse_listings(
    sort: SearchSort, by_kind: bool, verified: bool, keyed: bool, cards: bool = False
) -> sa.Select[Any]:
    """Browse without label filters: walk ``listings (status, <sort key>)``; built once per
    shape (the values are parameters). The ids of the page, or with ``cards`` the page's
    cards themselves (one statement: the walk joined to what a card reads)."""
    columns = _order_columns(_L, sort)
    conditions = [_L.c.status == ListingStatus.PUBLISHED]
    if by_kind:
        conditions.append(_L.c.asset_kind == sa.bindparam("asset_kind"))
    if verified:
        conditions.append(_verified_publisher(_L.c.publisher_user_id))
    if keyed:
        conditions.append(_after_bound(columns, sort))
    query = (
        sa.select(*_card_columns()).select_from(_CARD_SOURCE)
        if cards
        else sa.select(_L.c.listing_id)
    )
    return query.where(*conditions).order_by(*_ordered(columns, sort)).limit(sa.bindparam("limit"))


@functools.lru_cache(maxsize=256)
def _browse_labels(
    sort: SearchSort, by_kind: bool, others: int, verified: bool, keyed: bool
) -> sa.Select[Any]:
    """Browse by labels: walk ``listing_labels (kind, value, <sort key>)`` of the rarest
    label (``:kind``, ``:value``), probing the ``others`` (``:kind_<i>``, ``:value_<i>``)."""
    driver = _LB.alias("driver")
    columns = _order_columns(driver, sort)
    conditions = [driver.c.kind == sa.bindparam("kind"), driver.c.value == sa.bindparam("value")]
    if by_kind:
        conditions.append(driver.c.asset_kind == sa.bindparam("asset_kind"))
    for index in range(others):
        other = _LB.alias()
        conditions.append(
            sa.exists().where(
                other.c.kind == sa.bindparam(f"kind_{index}"),
                other.c.value == sa.bindparam(f"value_{index}"),
                other.c.listing_id == driver.c.listing_id,
            )
        )
    if verified:
        conditions.append(_verified_listing(driver.c.listing_id))
    if keyed:
        conditions.append(_after_bound(columns, sort))
    return (
        sa.select(driver.c.listing_id)
        .where(*conditions)
        .order_by(*_ordered(columns, sort))
        .limit(sa.bindparam("limit"))
    )


def _browse(conn: sa.Connection, original: ListingSearch, cap: int) -> Ranked:
    search = _no_score_key(original)
    if search is None:
        return []
    labels = _labels(search)
    if len(labels) > 1:
        # Drive the walk from the rarest label; the others are probed per row.
        labels.sort(key=lambda label: _label_rows(conn, label, cap))
    by_kind, keyed = search.asset_kind is not None, search.after is not None
    params = _browse_params(search)
    if labels:
        (kind, value), others = labels[0], labels[1:]
        params.update(kind=kind, value=value)
        for index, (other_kind, other_value) in enumerate(others):
            params.update({f"kind_{index}": other_kind, f"value_{index}": other_value})
        ids = _browse_labels(search.sort, by_kind, len(others), search.verified_only, keyed)
    else:
        ids = _browse_listings(search.sort, by_kind, search.verified_only, keyed)
    return [(row[0], 0, 0) for row in conn.execute(ids, params).all()]


def _term_rows(conn: sa.Connection, term: str, cap: int) -> int:
    """How many index rows the term covers, counted up to ``cap``."""
    params = {"low": term, "high": term + _TOP, "cap": cap}
    return int(conn.execute(_TERM_ROWS, params).scalar_one())


def _hits(conn: sa.Connection, query: sa.Select[Any]) -> Ranked:
    """The ``(listing id, score)`` rows of ``query``, installs 0."""
    return [(row[0], int(row[1]), 0) for row in conn.execute(query).all()]


def _terms_first(conn: sa.Connection, search: ListingSearch, terms: Sequence[str]) -> Ranked:
    rarest, others = terms[0], terms[1:]
    matched = _T.alias("matched")
    grouped = (
        sa.select(
            matched.c.listing_id,
            _term_score(matched).label("score0"),
            # Every row of a listing carries its update time: max() is that time.
            sa.func.max(matched.c.updated_at_ms).label("updated_at_ms"),
        )
        .where(_term_range(matched.c.token, rarest))
        .group_by(matched.c.listing_id)
        .subquery("grouped")
    )
    score: sa.ColumnElement[int] = sa.cast(grouped.c.score0, sa.Integer)
    for term in others:
        score = score + _probe(grouped.c.listing_id, term)
    # Materialised: every probe runs once per candidate (not again for the filter and the sort).
    candidates = (
        sa.select(grouped.c.listing_id, grouped.c.updated_at_ms, score.label("score"))
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    labels = _labels(search)
    # The search tables hold published listings only: no status condition needed.
    conditions: list[sa.ColumnElement[bool]] = [candidates.c.score.is_not(None)]
    if search.verified_only:
        conditions.append(_verified_listing(candidates.c.listing_id))
    if search.sort in {SearchSort.RELEVANCE, SearchSort.UPDATED} and not (
        labels or search.asset_kind
    ):
        # Everything the order needs is in the candidates: rank them without a join.
        source: Any = candidates
        columns: list[sa.ColumnElement[Any]] = [candidates.c.updated_at_ms, candidates.c.listing_id]
    else:
        source = candidates.join(_L, _L.c.listing_id == candidates.c.listing_id)
        if search.asset_kind is not None:
            conditions.append(_L.c.asset_kind == search.asset_kind)
        conditions += _label_filters(_L.c.listing_id, labels)
        columns = _order_columns(_L, search.sort)
    if search.sort is SearchSort.RELEVANCE:
        columns = [candidates.c.score, *columns]
    conditions += _keyset(columns, search)
    # Rank on narrow columns, then fetch the rows of the page only.
    ranking = (
        sa.select(candidates.c.listing_id, candidates.c.score)
        .select_from(source)
        .where(*conditions)
        .order_by(*_ordered(columns, search.sort))
        .limit(search.limit)
    )
    return [(row[0], int(row[1]), 0) for row in conn.execute(ranking)]


def _order_first(conn: sa.Connection, search: ListingSearch, terms: Sequence[str]) -> Ranked:
    conditions: list[sa.ColumnElement[bool]] = [_L.c.status == ListingStatus.PUBLISHED]
    if search.asset_kind is not None:
        conditions.append(_L.c.asset_kind == search.asset_kind)
    for term in terms:
        holder = _T.alias()
        conditions.append(
            sa.exists().where(
                holder.c.listing_id == _L.c.listing_id, _term_range(holder.c.token, term)
            )
        )
    conditions += _label_filters(_L.c.listing_id, _labels(search))
    if search.verified_only:
        conditions.append(_verified_publisher(_L.c.publisher_user_id))
    columns = _order_columns(_L, search.sort)
    conditions += _keyset(columns, search)
    score: sa.ColumnElement[int] = sa.literal(0)
    for term in terms:
        score = score + _probe(_L.c.listing_id, term)
    query = (
        sa.select(_L.c.listing_id, score.label("score"))
        .where(*conditions)
        .order_by(*_ordered(columns, search.sort))
        .limit(search.limit)
    )
    return _hits(conn, query)


def _matching(search: ListingSearch) -> list[sa.ColumnElement[bool]]:
    """Conditions on ``listings`` for every filter and term of ``search``."""
    conditions: list[sa.ColumnElement[bool]] = [_L.c.status == ListingStatus.PUBLISHED]
    if search.asset_kind is not None:
        conditions.append(_L.c.asset_kind == search.asset_kind)
    if search.verified_only:
        conditions.append(_verified_publisher(_L.c.publisher_user_id))
    conditions += _label_filters(_L.c.listing_id, _labels(search))
    for term in search.terms:
        holder = _T.alias()
        conditions.append(
            sa.exists().where(
                holder.c.listing_id == _L.c.listing_id, _term_range(holder.c.token, term)
            )
        )
    return conditions


def _score(search: ListingSearch) -> sa.ColumnElement[int]:
    score: sa.ColumnElement[int] = sa.literal(0)
    for term in search.terms:
        score = score + _probe(_L.c.listing_id, term)
    return score


def _by_installs(conn: sa.Connection, search: ListingSearch) -> Ranked:
    """``(installs, id)`` descending: installed listings first, then the rest by id."""
    since = search.installs_since_ms
    after = search.after
    hits: Ranked = []
    if after is None or int(after[0]) > 0:
        recent = (
            sa.select(_I.c.listing_id, sa.func.count().label("installs"))
            .where(_I.c.created_at_ms >= since)
            .group_by(_I.c.listing_id)
            .subquery("recent")
        )
        conditions = _matching(search)
        if after is not None:
            bound = sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            conditions.append(sa.tuple_(recent.c.installs, _L.c.listing_id) < bound)
        query = (
            sa.select(_L.c.listing_id, _score(search).label("score"), recent.c.installs)
            .select_from(recent.join(_L, _L.c.listing_id == recent.c.listing_id))
            .where(*conditions)
            .order_by(recent.c.installs.desc(), _L.c.listing_id.desc())
            .limit(search.limit)
        )
        rows = conn.execute(query).all()
        hits += [(row[0], int(row[1]), int(row[2])) for row in rows]
    remaining = search.limit - len(hits)
    if remaining <= 0 or (after is not None and int(after[0]) < 0):
        return hits
    # Listings without install intents in the window all share the count 0: by id.
    conditions = _matching(search)
    conditions.append(
        ~sa.exists().where(_I.c.listing_id == _L.c.listing_id, _I.c.created_at_ms >= since)
    )
    if after is not None and int(after[0]) == 0:
        conditions.append(_L.c.listing_id < after[1])
    query = (
        sa.select(_L.c.listing_id, _score(search).label("score"))
        .where(*conditions)
        .order_by(_L.c.listing_id.desc())
        .limit(remaining)
    )
    return hits + _hits(conn, query)


def search_published(
    conn: sa.Connection, search: ListingSearch, common_term_rows: int = COMMON_TERM_ROWS
) -> list[SearchHit]:
    """Published listings matching ``search``, in its order, after its keyset position.

    A term covering at least ``common_term_rows`` index rows counts as common.
    """
    return _fetch(conn, _ranked(conn, search, common_term_rows))


def search_cards(
    conn: sa.Connection, search: ListingSearch, common_term_rows: int = COMMON_TERM_ROWS
) -> list[CardHit]:
    """The hits of ``search_published`` as cards (install intents from the search's window).

    A browse without words or labels (the catalogue's first page) reads its cards in the
    walk itself; every other plan ranks ids, then reads the page's cards by id.
    """
    browse = _no_score_key(search) if _plain_browse(search) else None
    if browse is not None:
        by_kind, keyed = browse.asset_kind is not None, browse.after is not None
        query = _browse_listings(browse.sort, by_kind, browse.verified_only, keyed, cards=True)
        params = {**_browse_params(browse), "since": search.installs_since_ms}
        return [CardHit(card, 0) for card in LISTING_CARDS.load_all(_select(conn, query, params))]
    return _fetch_cards(conn, _ranked(conn, search, common_term_rows), search.installs_since_ms)


def _plain_browse(search: ListingSearch) -> bool:
    return (
        search.limit > 0
        and search.sort is not SearchSort.INSTALLS
        and not (search.terms or search.tags or search.categories)
    )


def _ranked(conn: sa.Connection, search: ListingSearch, common_term_rows: int) -> Ranked:
    """The page of ``search``: which listings, in order, with their scores (plans above)."""
    if search.limit <= 0:
        return []
    if search.sort is SearchSort.INSTALLS:
        return _by_installs(conn, search)
    if not search.terms:
        return _browse(conn, search, common_term_rows)
    if len(search.terms) == 1 and search.sort is SearchSort.RELEVANCE:
        return _terms_first(conn, search, search.terms)
    counts = {term: _term_rows(conn, term, common_term_rows) for term in search.terms}
    terms = sorted(search.terms, key=lambda term: counts[term])
    if search.sort is not SearchSort.RELEVANCE and counts[terms[0]] >= common_term_rows:
        return _order_first(conn, search, terms)
    return _terms_first(conn, search, terms)
