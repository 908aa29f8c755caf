"""Built-in accounts and browser sessions: the ``accounts`` and ``browser_sessions`` tables.

``accounts`` holds one row per user that can sign in with a password: the
username and optional e-mail address (each unique, lower case) and the
argon2id hash of the password, never the password. ``browser_sessions``
holds the SHA-256 of each session token (never the token), its user, and
the times that decide its expiry; indexes serve "end every session of this
user" and the sweep of ended sessions.

As in the earlier revisions every constraint and index is named explicitly
with ``op.f`` and the id columns are ``COLLATE "C"`` on PostgreSQL; the
tables are spelled out here, not imported from ``tables.py``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Text that sorts by code point: SQLite's BINARY collation, ``COLLATE "C"`` on PostgreSQL.
ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", ORDERED_TEXT, nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("password_changed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_accounts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
        sa.UniqueConstraint("email", name=op.f("uq_accounts_email")),
    )
    op.create_table(
        "browser_sessions",
        sa.Column("session_hash", sa.Text(), nullable=False),
        sa.Column("user_id", ORDERED_TEXT, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_browser_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_browser_sessions")),
    )
    op.create_index(op.f("ix_browser_sessions_user_id"), "browser_sessions", ["user_id"])
    op.create_index(
        op.f("ix_browser_sessions_expires_at_ms"), "browser_sessions", ["expires_at_ms"]
    )
    op.create_index(
        op.f("ix_browser_sessions_last_seen_at_ms"), "browser_sessions", ["last_seen_at_ms"]
    )


def downgrade() -> None:
    # The tables take their indexes and constraints with them.
    op.drop_table("browser_sessions")
    op.drop_table("accounts")
