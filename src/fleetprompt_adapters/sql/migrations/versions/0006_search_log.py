"""The search change log: ``search_log`` and its ``search_log_head`` counter (ADR 0027).

Every transaction that changes a listing's searchable state (or a publisher's
verification) appends the listing ids under the next ``seq``, taken from the
single row of ``search_log_head``; search engine processes apply the log in
``seq`` order; the head's ``epoch``, drawn when its row is first written,
tells a follower that the database it followed was emptied or restored.
Spelled out here, not imported from ``tables``, so that this
revision keeps building the same tables whatever later revisions change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 20:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Text that sorts by code point: SQLite's BINARY collation, ``COLLATE "C"`` on PostgreSQL.
ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_log",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column("changed_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", "listing_id", name=op.f("pk_search_log")),
    )
    op.create_table(
        "search_log_head",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_log_head")),
    )


def downgrade() -> None:
    op.drop_table("search_log_head")
    op.drop_table("search_log")
