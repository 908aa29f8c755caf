"""Personal API tokens: the ``api_tokens`` table (hashes only).

One row per token: the owning user, a name, the SHA-256 of the raw token
(unique: resolving a bearer token is one look-up by hash), the creation time,
an optional expiry and the revocation time (revocation is never a delete).
A second index lists a user's tokens newest first.

As in revision 0001, every constraint and index is named explicitly with
``op.f`` (exactly the names ``metadata.create_all`` produces) and the id
columns are ``COLLATE "C"`` on PostgreSQL. The table is spelled out here, not
imported from :mod:`fleetprompt_adapters.sql.tables`, so this revision keeps
building the same table whatever later revisions change there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:12:44.318205
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Text that sorts by code point: SQLite's BINARY collation, ``COLLATE "C"`` on PostgreSQL.
ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("token_id", ORDERED_TEXT, nullable=False),
        sa.Column("user_id", ORDERED_TEXT, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_api_tokens")),
    )
    op.create_index(
        op.f("ix_api_tokens_token_hash"),
        "api_tokens",
        ["token_hash"],
        unique=True,
    )
    op.create_index(
        op.f("ix_api_tokens_user_id_created_at_ms_token_id"),
        "api_tokens",
        ["user_id", "created_at_ms", "token_id"],
    )


def downgrade() -> None:
    # The table takes its indexes and constraints with it.
    op.drop_table("api_tokens")
