"""The catalogue version: one row that every change of the public catalogue increments.

A transaction that writes a listing, a release, a publisher profile, a user or
an install intent increments ``catalog_version.version`` (row ``id`` = 1)
before it commits; server processes poll the row to know when their cached
public responses are out of date (ADR 0028). The row is created on first
use (an upsert), so the table starts empty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_version")),
    )


def downgrade() -> None:
    op.drop_table("catalog_version")
