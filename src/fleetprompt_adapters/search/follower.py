"""A tantivy index that follows the SQL database through its search change log (ADR 0027).

The database stays the source of truth. Every transaction that changes a
listing's searchable state appends its id to ``search_log`` under a
commit-ordered ``seq`` (``sql/search_log.py``). Before a search is answered,
every change after the last ``seq`` the index applied is applied
(:meth:`SearchFollower.catch_up`): the current rows of those listings are
re-indexed (published ones) or dropped (the rest). So a search reflects every
change committed before it began, in every process on every host: the lag
bound is zero, paid for by the log's head, which the SQL adapter reads with the
page's rows (:meth:`SearchFollower.ranked_as_held`, ADR 0042), and, after
writes, one index commit.

Crashes converge: a change committed in the database but not yet in the index
is still in the log after the last applied ``seq`` and is applied by the next
search; an index committed but whose ``seq`` was not yet recorded re-applies
changes it already holds (applying is idempotent: it indexes the current
row). An index directory that is missing, unreadable or written by another
schema is wiped and rebuilt from the database, never served. An index whose
position is older than the log's pruning (``search_log.prune``: rows past a
retention horizon) is rebuilt too: the log no longer lists what it missed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import sqlalchemy as sa

from fleetprompt_adapters.heap import trim_heap
from fleetprompt_adapters.search.tantivy_index import IndexedListing, ListingIndex
from fleetprompt_adapters.sql import mapping as m
from fleetprompt_adapters.sql import search_log
from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.engine import in_transaction
from fleetprompt_core.base.enums import ListingStatus, VerificationStatus
from fleetprompt_core.domain.search import ListingSearch, RankedHit

__all__ = ["INDEX_FORMAT", "SearchFollower", "claim_slot", "count_published", "free_slots"]

#: Written beside the index; a directory with another format is rebuilt.
INDEX_FORMAT: Final = "fleetprompt-tantivy-2"
_STATE: Final = "fleetprompt-index.json"
_BATCH: Final = 2_000

_L = t.listings
_P = t.publisher_profiles


def _indexed(conn: sa.Connection, where: sa.ColumnElement[bool]) -> Iterator[IndexedListing]:
    verified = (
        sa.select(sa.literal(1))
        .where(
            _P.c.publisher_id == _L.c.publisher_user_id,
            _P.c.verification_status == VerificationStatus.VERIFIED,
        )
        .exists()
    )
    query = sa.select(_L, verified.label("publisher_verified")).where(where)
    # Streamed (a server-side cursor on PostgreSQL): inside a transaction, which a
    # read-only unit of work's autocommit connection opens for it (ADR 0042). The option
    # is the statement's: on the connection it would stream every later statement too.
    with (
        in_transaction(conn),
        conn.execute(query.execution_options(yield_per=_BATCH)) as rows,
    ):
        for row in rows:
            mapping = row._mapping
            yield IndexedListing(m.to_listing(mapping), bool(mapping["publisher_verified"]))


def _release_memory(conn: sa.Connection) -> None:
    """Give back what a full build used and no longer needs: the SQLite connection's page
    cache, which reading every listing filled (the connection returns to the pool), and
    the heap the bulk writer freed (glibc keeps freed memory until asked to return it).
    A process whose index lives in RAM otherwise carries both for its whole life."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA shrink_memory")
    trim_heap()


def count_published(conn: sa.Connection) -> int:
    query = sa.select(sa.func.count()).where(_L.c.status == ListingStatus.PUBLISHED)
    return int(conn.execute(query).scalar_one())


def _lock(slot: Path) -> IO[str] | None:
    """An exclusive lock on ``slot`` (held while the file stays open), or ``None``."""
    slot.mkdir(parents=True, exist_ok=True)
    handle = (slot.parent / f"{slot.name}.lock").open("a", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def claim_slot(root: Path, limit: int = 256) -> tuple[Path, IO[str]]:
    """The first index directory under ``root`` that no live process holds, locked.

    tantivy allows one writer per directory, so each server process (each
    ``--workers`` worker) takes its own ``slot-N``; a restarted process reuses
    a free one and catches up from the position recorded there.
    """
    for number in range(limit):
        slot = root / f"slot-{number}"
        handle = _lock(slot)
        if handle is not None:
            return slot, handle
    raise RuntimeError(f"every search index slot under {root} is in use")


@contextlib.contextmanager
def free_slots(root: Path) -> Iterator[list[Path]]:
    """The existing slots under ``root`` that no process holds (``slot-0`` when none
    exists), locked for the duration of the ``with`` block."""
    handles: list[IO[str]] = []
    slots: list[Path] = []
    existing = sorted(p for p in root.glob("slot-*") if p.is_dir()) if root.exists() else []
    try:
        for slot in existing or [root / "slot-0"]:
            handle = _lock(slot)
            if handle is not None:
                handles.append(handle)
                slots.append(slot)
        yield slots
    finally:
        for handle in handles:
            handle.close()


class SearchFollower:
    """The search index of one process, kept up to date from the database's log.

    ``directory`` keeps the index across restarts (one directory per process:
    tantivy allows one writer); ``None`` keeps it in memory and builds it from
    the database on first use.
    """

    def __init__(self, directory: Path | None = None, *, holder: IO[str] | None = None) -> None:
        self._directory = directory
        #: The slot lock this follower holds (released by :meth:`close`).
        self._holder = holder
        self._lock = threading.Lock()
        self._applied: int | None = None
        self._epoch: str | None = None
        #: ``(epoch, applied)`` in one value (read without the lock by
        #: :meth:`ranked_as_held`), ``None`` before the first build.
        self._held: search_log.Head | None = None
        self.index = self._open()

    # ------------------------------------------------------------------ opening

    def _open(self) -> ListingIndex:
        directory = self._directory
        if directory is None:
            return ListingIndex()
        state = directory / _STATE
        try:
            recorded = json.loads(state.read_text(encoding="utf-8"))
            if recorded.get("format") != INDEX_FORMAT or not isinstance(recorded["applied"], int):
                raise ValueError("another index format")
            epoch = recorded["epoch"]
            if epoch is not None and not isinstance(epoch, str):
                raise ValueError("a malformed epoch")
            index = ListingIndex(directory / "tantivy")
            index.size  # noqa: B018 - reading proves the segments open
        except (OSError, ValueError, KeyError, TypeError):
            # Missing, unreadable, corrupt or foreign: rebuilt from the database, never served.
            shutil.rmtree(directory, ignore_errors=True)
            return ListingIndex(directory / "tantivy")
        self._applied = int(recorded["applied"])
        self._epoch = epoch
        self._held = (epoch, self._applied)
        return index

    def _record(self, epoch: str | None, applied: int) -> None:
        self._applied, self._epoch = applied, epoch
        self._held = (epoch, applied)
        if self._directory is None:
            return
        state = self._directory / _STATE
        temporary = state.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            out.write(json.dumps({"format": INDEX_FORMAT, "epoch": epoch, "applied": applied}))
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(state)

    # ------------------------------------------------------------------ following

    @property
    def applied(self) -> int | None:
        """The last log ``seq`` the index holds (``None`` before the first build)."""
        return self._applied

    def catch_up(self, conn: sa.Connection) -> int:
        """Apply every logged change up to the log's head; how many listings changed."""
        epoch, upto = search_log.head(conn)
        if epoch == self._epoch and upto == self._applied:
            return 0  # the common case, without waiting for another thread's update
        with self._lock:
            applied = self._applied
            if applied is None or epoch != self._epoch:
                # Never built, or another log (the database was emptied or restored).
                return self._rebuild(conn, (epoch, upto))
            if upto <= applied:
                # Another thread applied a newer head than this connection's snapshot.
                return 0
            ids = search_log.changes_since(conn, applied, upto)
            # Read after the changes: a pruning committed before that read shows here.
            if search_log.pruned_through(conn) > applied:
                # Changes this index has not applied were pruned from the log: the log
                # cannot say which listings changed, so the index is built again.
                return self._rebuild(conn, (epoch, upto))
            current = list(_indexed(conn, _L.c.listing_id.in_(ids))) if ids else []
            published = [item for item in current if item.listing.status is ListingStatus.PUBLISHED]
            self.index.apply(published, deletes=ids)
            self._record(epoch, upto)
            return len(ids)

    def rebuild(self, conn: sa.Connection, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the whole index from the database; how many listings it holds."""
        with self._lock:
            return self._rebuild(conn, search_log.head(conn), progress)

    def _rebuild(
        self,
        conn: sa.Connection,
        upto: search_log.Head,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        def items() -> Iterator[IndexedListing]:
            for n, item in enumerate(_indexed(conn, _L.c.status == ListingStatus.PUBLISHED), 1):
                if progress is not None and n % _BATCH == 0:
                    progress(_BATCH)
                yield item

        count = self.index.rebuild(items())
        if progress is not None:
            progress(count % _BATCH)
        self._record(*upto)
        _release_memory(conn)
        return count

    # ------------------------------------------------------------------ searching

    def ranked_as_held(
        self, search: ListingSearch
    ) -> tuple[Sequence[RankedHit], search_log.Head | None]:
        """The page of ``search`` from the index as it stands, without reading the
        database, and the log position ``(epoch, seq)`` the index holds at least
        (``None`` before the first build).

        The position is read before the ranking: an update applied meanwhile only makes
        the page newer than it says. The caller compares it with the log's head read
        beside the page's rows (one round trip instead of two, ADR 0042) and calls
        :meth:`catch_up` when the index is behind.
        """
        held = self._held
        return self.index.ranked(search), held

    @classmethod
    def in_slot(cls, root: Path) -> SearchFollower:
        """A follower in the first free slot under ``root`` (see :func:`claim_slot`)."""
        slot, holder = claim_slot(root)
        return cls(slot, holder=holder)

    def close(self) -> None:
        self.index.close()
        if self._holder is not None:
            self._holder.close()
            self._holder = None
