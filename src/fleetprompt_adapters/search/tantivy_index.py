"""A tantivy index of the published catalogue: BM25F-style relevance, prefix matching.

The documents are the published listings. The core's own tokenizer
(``domain.search.tokenize``: case-folded runs of letters and digits) cuts
each field into tokens, and every *prefix* of every token is indexed as one
term (``"Triage-Bot"`` → ``t tr tri … triage b bo bot``) with tantivy's
whitespace tokenizer. A query term is then one exact term look-up, so

* a term matches a listing exactly when the core says it does (it prefixes a
  token of the name, labels or summary): search-as-you-type without a
  fuzzy or regex scan, and identical matching on every adapter;
* every prefix has its own statistics, so BM25 weighs ``agen`` (common) and
  ``agentic`` (rare) by how rare *they* are, and a listing whose field says
  a word twice outranks one that says it once.

The three fields are indexed as **one** scored field, ``text``, whose term
frequencies carry the field weights (BM25F-style): the name's terms are
written :data:`~fleetprompt_core.domain.search.FIELD_WEIGHTS` ``["name"]``
(3) times, the labels' (tags and categories) twice, the summary's once, so a
term's frequency in a listing is ``3·tf(name) + 2·tf(labels) + tf(summary)``
and its length the same weighted sum. Each query term is then *one* term
scorer instead of a union of three, and the query is a flat conjunction of
term queries. The filters (tags, categories, asset kind, verified publisher)
are term queries boosted by 0: exact, required, adding exactly nothing.

What a search costs (ADR 0035, read in tantivy 0.27's source): the Python
binding's ``Searcher.search`` always collects through a ``MultiCollector``,
whose ``collect_segment`` is the default one, ``Weight::for_each``, so every
match is scored; block-max WAND (``for_each_pruning``, which only
``TopDocs`` used directly calls) is never reached. A search therefore costs
one pass over the postings of its rarest clause plus a seek per candidate in
the others, and a score per match; the one-field shape makes that pass as
cheap as tantivy allows (one term scorer per word, no union per word).

Order and paging: tantivy returns the top ``n`` by score. A hit's sort key is
``(round(score·10⁶), updatedAtMs, listingId)`` descending, like the core's
relevance key. BM25 scores follow the index's statistics, which every insert,
delete and segment merge moves (a deleted document still counts until its
segment is merged), so a cursor's listing is scored again before the next page:
the page continues from where that listing stands in the index answering it.
Every listing not returned scores at most the lowest returned score, so the
returned hits whose rounded score is strictly above the lowest one are exactly
ordered; when they do not fill the page (ties at the boundary, or a cursor
deeper than ``n``), ``n`` grows. A page at depth ``d`` keeps a top-``d`` heap
over the same pass.
"""

from __future__ import annotations

import functools
import itertools
import operator
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs

from fleetprompt_adapters import MissingExtra

try:
    import tantivy
except ModuleNotFoundError as missing:  # installed without the search extra
    raise MissingExtra("fleetprompt_adapters.search", "search", missing.name) from None

from fleetprompt_core.domain.search import (
    FIELD_WEIGHTS,
    IndexedListing,
    ListingSearch,
    RankedHit,
    SortKey,
    tokenize,
)

__all__ = ["SCORE_SCALE", "IndexedListing", "ListingIndex", "RankedHit", "prefix_terms"]

#: Scores are compared (and carried in cursors) as integers: ``round(score · SCALE)``.
SCORE_SCALE: Final = 1_000_000
#: The one scored field (the name, labels and summary, weighted by repetition).
_TEXT: Final = "text"
_FIRST_FETCH: Final = 2
#: The writer's memory budget for incremental commits (the log's changes) ...
_HEAP: Final = 64_000_000
#: ... and for a bulk build: one thread, so a million listings fill few segments.
_BULK_HEAP: Final = 1_000_000_000
#: Remembered cursor positions per searcher (cleared when full).
_MEMO: Final = 4096


def prefix_terms(text_tokens: Iterable[str]) -> str:
    """Every prefix of every token, space-separated (the field's indexed terms)."""
    return " ".join(token[:end] for token in text_tokens for end in range(1, len(token) + 1))


@attrs.define
class _View:
    """A searcher and what cursor walks learnt about it (valid for this searcher only)."""

    searcher: tantivy.Searcher
    #: (search without cursor and limit, a page's last listing id) → where in the engine's
    #: order the group of equal score holding that listing starts.
    positions: dict[tuple[ListingSearch, str], int] = attrs.field(factory=dict)


@functools.cache
def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Required fields read frequencies: the shape tantivy's block-max pruning needs, should
    # a binding ever collect with it (ADR 0035: the Python binding's collector does not).
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="freq")
    builder.add_text_field(_TEXT, tokenizer_name="whitespace", index_option="freq")
    for field in ("tag", "category", "kind", "verified"):
        builder.add_text_field(field, tokenizer_name="raw", index_option="freq")
    builder.add_integer_field("updated", stored=True, fast=True)
    return builder.build()


def _document(item: IndexedListing) -> tantivy.Document:
    listing = item.listing
    labels = (t for label in (*listing.tags, *listing.categories) for t in tokenize(label))
    fields = {
        "name": prefix_terms(tokenize(listing.name)),
        "labels": prefix_terms(labels),
        "summary": prefix_terms(tokenize(listing.summary)),
    }
    # A field's terms written `weight` times: its term frequencies and length count `weight`×.
    text = " ".join(fields[field] for field, weight in FIELD_WEIGHTS.items() for _ in range(weight))
    return tantivy.Document(
        id=listing.listing_id,
        text=text,
        tag=list(listing.tags),
        category=list(listing.categories),
        kind=listing.asset_kind.value,
        verified="1" if item.publisher_verified else "0",
        updated=listing.updated_at_ms,
    )


def _unscored(query: tantivy.Query) -> tantivy.Query:
    """``query`` required but scoring 0, and still a term scorer (tantivy's block-max
    intersection needs every required clause to be one; ADR 0035)."""
    return tantivy.Query.boost_query(query, 0.0)


def _conjunction(clauses: list[tantivy.Query]) -> tantivy.Query:
    """Every clause required, flat (one term query stays itself: block-max WAND)."""
    if not clauses:
        return tantivy.Query.all_query()
    if len(clauses) == 1:
        return clauses[0]
    must = tantivy.Occur.Must
    return tantivy.Query.boolean_query([(must, clause) for clause in clauses])


class ListingIndex:
    """The published catalogue in tantivy (in RAM, or in a directory): the
    :class:`~fleetprompt_core.ports.SearchIndex` of every adapter.

    Thread-safe: writes are serialised; searches use the searcher of the last
    commit, reloaded after each commit.
    """

    def __init__(self, directory: Path | None = None) -> None:
        schema = _schema()
        if directory is None:
            self._index = tantivy.Index(schema)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self._index = tantivy.Index(schema, path=str(directory), reuse=True)
        # The searcher changes only when this index reloads after its own commits (not
        # when a background merge finishes): the same search gives the same page until
        # the next write (ADR 0034).
        self._index.config_reader(reload_policy="Manual")
        self._schema = schema
        self._lock = threading.Lock()
        self._writer: tantivy.IndexWriter | None = None
        #: The searcher of the last commit, reused by every search until the next one.
        self._view = _View(self._index.searcher())

    # ------------------------------------------------------------------ writes

    def _open_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self._index.writer(heap_size=_HEAP, num_threads=1)
        return self._writer

    def _publish(self) -> None:
        """Make the last commit visible: reload, and swap the shared searcher."""
        self._index.reload()
        self._view = _View(self._index.searcher())

    def apply(self, upserts: Iterable[IndexedListing], deletes: Iterable[str] = ()) -> None:
        """Replace or add ``upserts``, drop ``deletes`` (listing ids), in one commit.

        Each commit adds a small segment; the writer's merge policy (tantivy's
        log merge policy: segments of similar size are merged eight at a time, in the
        background) keeps their number logarithmic in the number of commits.
        """
        with self._lock:
            writer = self._open_writer()
            for listing_id in deletes:
                writer.delete_documents_by_term("id", listing_id)
            for item in upserts:
                writer.delete_documents_by_term("id", item.listing.listing_id)
                writer.add_document(_document(item))
            writer.commit()
            self._publish()

    def rebuild(self, items: Iterable[IndexedListing]) -> int:
        """Drop everything and index ``items`` (one commit at the end); how many.

        A bulk build uses one writer thread with a large heap, so the catalogue
        lands in few segments, and waits for the merges that commit starts: a
        search then walks few, large segments (every segment collects its own top
        ``n``, so many small ones weaken block-max WAND's pruning).
        """
        count = 0
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None
            writer = self._index.writer(heap_size=_BULK_HEAP, num_threads=1)
            writer.delete_all_documents()
            for item in items:
                writer.add_document(_document(item))
                count += 1
            writer.commit()
            writer.garbage_collect_files()
            writer.wait_merging_threads()  # consumes the bulk writer
            self._publish()
        return count

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None

    @property
    def size(self) -> int:
        return int(self._view.searcher.num_docs)

    @property
    def segments(self) -> int:
        """How many segments the current searcher reads."""
        return int(self._view.searcher.num_segments)

    # ------------------------------------------------------------------ reads

    def _clauses(self, search: ListingSearch) -> list[tantivy.Query]:
        """The required clauses of ``search``: one term query per word (scored), then one
        term query boosted by 0 per filter (exact, scoring nothing)."""
        schema = self._schema
        clauses = [tantivy.Query.term_query(schema, _TEXT, term) for term in search.terms]
        filters: list[tuple[str, str]] = [("tag", tag) for tag in search.tags]
        filters += [("category", category) for category in search.categories]
        if search.asset_kind is not None:
            filters.append(("kind", search.asset_kind.value))
        if search.verified_only:
            filters.append(("verified", "1"))
        clauses += [_unscored(tantivy.Query.term_query(schema, f, v)) for f, v in filters]
        return clauses

    def query(self, search: ListingSearch) -> tantivy.Query:
        """The tantivy query of ``search``: a flat conjunction of term queries (words
        scored, filters boosted by 0; ADR 0035)."""
        return _conjunction(self._clauses(search))

    def ranked(self, search: ListingSearch) -> list[RankedHit]:
        """The page of ``search`` by relevance: at most ``search.limit`` hits strictly after
        ``search.after`` in ``(score, updatedAtMs, listingId)`` descending order.

        The engine collects the top ``n`` by score; ``updatedAtMs`` comes from its
        fast field for the groups of equal score that could reach the page, and a
        stored document (the listing id) is read only for the page's own hits and for
        hits tied on ``(score, updatedAtMs)``.

        A cursor walk in one process costs one collection per page: each answer
        remembers, for the searcher that produced it, where the group of its last hit
        starts in the engine's order, and the next page with that cursor asks the
        engine only for the window from there (``offset``). A cursor from elsewhere,
        or after a commit, starts from the top and widens ``n``.
        """
        if search.limit <= 0:
            return []
        view = self._view  # one searcher (and its memo) for the whole call
        searcher, memo = view.searcher, view.positions
        query = self.query(search)
        after = tuple(search.after) if search.after is not None else None
        shape = attrs.evolve(search, after=None, limit=0)
        start = 0
        if after is not None:
            # Scores move with the statistics (inserts, deletes, merges, another process's
            # index): the cursor's listing is scored again, so the page continues from where
            # that listing stands now; the cursor's own score is kept only when it is gone.
            now = self._score_of(searcher, query, str(after[-1]))
            if now is not None:
                after = (now, *after[1:])
            start = memo.get((shape, str(after[-1])), 0)
        after_score = int(after[0]) if after is not None else None
        # The window's first hit must lie strictly before the cursor's group: one earlier.
        offset = max(0, start - 1)
        window = max(_FIRST_FETCH * search.limit, 8) + (start - offset)
        while True:
            hits = searcher.search(query, limit=window, count=False, offset=offset).hits
            scored = [(round(score * SCORE_SCALE), address) for score, address in hits]
            if offset and (not scored or after_score is None or scored[0][0] <= after_score):
                offset, window = 0, window + offset  # not where remembered: from the top
                continue
            exhausted = len(scored) < window
            floor = None if exhausted or not scored else scored[-1][0]
            page, starts = self._page(searcher, scored, floor, after, search.limit)
            if len(page) >= search.limit or exhausted:
                if page and not exhausted:
                    if len(memo) >= _MEMO:
                        memo.clear()
                    # The next cursor names the last hit, or the one before it when the
                    # caller asked one more than it shows (the core's look-ahead).
                    for hit, group_start in zip(page[-2:], starts[-2:], strict=True):
                        memo[(shape, hit.listing_id)] = offset + group_start
                return page
            window *= 4

    def _page(
        self,
        searcher: tantivy.Searcher,
        scored: list[tuple[int, tantivy.DocAddress]],
        floor: int | None,
        after: SortKey | None,
        limit: int,
    ) -> tuple[list[RankedHit], list[int]]:
        """The hits of ``scored`` (the engine's order) after ``after``, in key order, up to
        ``limit``; and for each, where (in ``scored``) its score's group starts.

        Only groups whose score is above ``floor`` (the lowest fetched, which may
        continue past the window) are complete and taken.
        """
        after_score = None if after is None else int(after[0])
        page: list[RankedHit] = []
        starts: list[int] = []
        position = 0
        for score, members in itertools.groupby(scored, key=operator.itemgetter(0)):
            group = [address for _, address in members]
            begins, position = position, position + len(group)
            if after_score is not None and score > after_score:
                continue  # wholly before the cursor
            if floor is not None and score <= floor:
                break  # this group may continue past the fetched hits
            updated = searcher.fast_field_values("updated", group)
            newest = operator.itemgetter(0)
            ordered = sorted(zip(updated, range(len(group)), strict=True), key=newest, reverse=True)
            for when, ties in itertools.groupby(ordered, key=newest):
                stamp = int(when)
                if after is not None and score == after_score and stamp > int(after[1]):
                    continue  # before the cursor
                tied = [self._hit(searcher, score, group[n]) for _, n in ties]
                tied.sort(key=lambda hit: hit.key, reverse=True)
                if after is not None:
                    tied = [hit for hit in tied if hit.key < after]
                page += tied
                starts += [begins] * len(tied)
                if len(page) >= limit:
                    return page[:limit], starts[:limit]
        return page, starts

    def _score_of(
        self, searcher: tantivy.Searcher, query: tantivy.Query, listing_id: str
    ) -> int | None:
        """The listing's current score for ``query``, or ``None`` when it does not match.

        ``query`` stays one clause, scored as a unit beside a constant 0 for the id: its
        score is the page's bit for bit. (Flattening the id into the conjunction would
        let tantivy regroup the float sum, ``(a + b) + c`` against ``a + (b + c)``, and
        move a score by one unit.)
        """
        only = tantivy.Query.const_score_query(
            tantivy.Query.term_query(self._schema, "id", listing_id), 0.0
        )
        must = tantivy.Occur.Must
        hits = searcher.search(
            tantivy.Query.boolean_query([(must, query), (must, only)]), limit=1, count=False
        ).hits
        return round(hits[0][0] * SCORE_SCALE) if hits else None

    @staticmethod
    def _hit(searcher: tantivy.Searcher, score: int, address: tantivy.DocAddress) -> RankedHit:
        document = searcher.doc(address)
        return RankedHit(
            listing_id=str(document["id"][0]),
            score=score,
            updated_at_ms=int(document["updated"][0]),
        )

    def count(self, search: ListingSearch) -> int:
        """How many listings match (for benchmarks and checks)."""
        result = self._view.searcher.search(self.query(search), limit=1, count=True)
        return int(result.count)  # type: ignore[attr-defined] # the stub omits `count`
