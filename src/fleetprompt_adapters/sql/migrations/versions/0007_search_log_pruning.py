"""The search change log can be pruned: ``search_log_head.pruned_seq`` (ADR 0027).

``fleetprompt search prune`` deletes the log's rows older than a retention
horizon and records here the highest ``seq`` it deleted; a follower whose
applied position is below it can no longer trust the log to say what it
missed, and rebuilds its index from the database instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("search_log_head") as batch:
        batch.add_column(
            sa.Column("pruned_seq", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("search_log_head") as batch:
        batch.drop_column("pruned_seq")
