"""The search change log (ADR 0027): written with the listing, read by every engine.

:func:`append` runs inside the writing transaction: the first call of a
transaction takes the next ``seq`` by upserting the single ``search_log_head``
row (which stays locked until commit, so concurrent writers of listings take
their turns and ``seq`` order is commit order), then records the listing ids
under it. :func:`head` and :func:`changes_since` are what a follower reads.

:func:`prune` deletes the rows older than a retention horizon (``fleetprompt
search prune``) and raises ``pruned_seq`` on the head row to the highest
``seq`` it deleted; a follower whose position is below :func:`pruned_through`
cannot know what it missed and rebuilds from the database.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fleetprompt_adapters.sql import tables as t

__all__ = ["Head", "append", "changes_since", "head", "next_seq", "prune", "pruned_through"]

_H = t.search_log_head
_LOG = t.search_log


def _next_seq_statement(dialect: Any) -> sa.Executable:
    statement = dialect.insert(_H).values(id=1, seq=1, epoch=sa.bindparam("epoch"))
    built: sa.Executable = statement.on_conflict_do_update(
        index_elements=[_H.c.id], set_={"seq": _H.c.seq + 1}
    ).returning(_H.c.seq)
    return built


#: Built once per dialect (every listing write runs it): only the epoch is a parameter.
_NEXT_SEQ: Final = {
    "sqlite": _next_seq_statement(sqlite),
    "postgresql": _next_seq_statement(postgresql),
}


def next_seq(conn: sa.Connection) -> int:
    """Take the next sequence number (locks the head row until the transaction ends)."""
    statement = _NEXT_SEQ["sqlite" if conn.dialect.name == "sqlite" else "postgresql"]
    return int(conn.execute(statement, {"epoch": secrets.token_hex(8)}).scalar_one())


def append(conn: sa.Connection, seq: int, listing_ids: Iterable[str]) -> None:
    """Record that ``listing_ids`` changed, under ``seq`` (ids repeated in one seq once)."""
    now = int(time.time() * 1000)
    rows = [
        {"seq": seq, "listing_id": listing_id, "changed_at_ms": now}
        for listing_id in sorted(set(listing_ids))
    ]
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    conn.execute(dialect.insert(_LOG).on_conflict_do_nothing(), rows)


Head = tuple[str | None, int]


#: Read before every relevance search with words: built once (constructing and keying the
#: statement per call cost twice its execution).
_HEAD = sa.select(_H.c.epoch, _H.c.seq).where(_H.c.id == 1)


def head(conn: sa.Connection) -> Head:
    """The log's epoch and last sequence number committed (``(None, 0)`` before any)."""
    row = conn.execute(_HEAD).first()
    return (None, 0) if row is None else (str(row[0]), int(row[1]))


def changes_since(conn: sa.Connection, after: int, upto: int) -> list[str]:
    """Listing ids changed in ``(after, upto]``, each once."""
    query = (
        sa.select(_LOG.c.listing_id)
        .where(_LOG.c.seq > after, _LOG.c.seq <= upto)
        .group_by(_LOG.c.listing_id)
    )
    return [row[0] for row in conn.execute(query)]


def pruned_through(conn: sa.Connection) -> int:
    """The highest ``seq`` whose rows may have been pruned (0 when none was)."""
    row = conn.execute(sa.select(_H.c.pruned_seq).where(_H.c.id == 1)).first()
    return 0 if row is None else int(row[0])


def prune(conn: sa.Connection, *, before_ms: int) -> tuple[int, int]:
    """Delete every log entry of the ``seq``s up to the last one with a row changed before
    ``before_ms``; how many rows went, and ``pruned_seq`` after.

    Whole ``seq``s go, never part of one. The head row is updated first, so the
    pruning takes its turn with the writers (their ``seq`` is taken on the same
    row) and a follower reading the log after this commits sees the new
    ``pruned_seq``.
    """
    upto = conn.execute(
        sa.select(sa.func.max(_LOG.c.seq)).where(_LOG.c.changed_at_ms < before_ms)
    ).scalar_one()
    if upto is None:
        return 0, pruned_through(conn)
    conn.execute(
        sa.update(_H)
        .where(_H.c.id == 1)
        .values(pruned_seq=sa.case((_H.c.pruned_seq < upto, upto), else_=_H.c.pruned_seq))
    )
    deleted = conn.execute(sa.delete(_LOG).where(_LOG.c.seq <= upto)).rowcount
    return int(deleted), pruned_through(conn)
