"""Idempotency scopes named by operation instead of by HTTP route (data only).

Until now the core scoped idempotency keys by route template
(``"POST /v1/install/intents"``); it now names the operation
(``"intent.create"``, see ``fleetprompt_core.services._idempotency.Operation``),
so the core knows no URL. This revision renames the stored scopes. A stored
request hash was computed over the old name, so it becomes
``legacy:<old name>:<hash>``: the core recomputes such a hash with the old name,
and a retry of a request sent before the upgrade still replays its answer
(ADR 0020). Records are kept 24 h, so the legacy form disappears by itself.

The mapping is spelled out here, not imported from the core, so this revision
keeps doing the same thing whatever later code changes. Downgrading renames
the scopes back and restores legacy hashes; a record stored after the upgrade
keeps a hash over the new name, so its retry would answer ``CONFLICT`` on the
old code (never a second execution).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Old scope (route template) → new scope (operation name).
RENAMED: dict[str, str] = {
    "POST /v1/publisher/listings": "listing.create",
    "PATCH /v1/publisher/listings/{id}": "listing.update",
    "POST /v1/publisher/listings/{id}/status": "listing.status",
    "POST /v1/publisher/listings/{id}/releases": "release.publish",
    "POST /v1/publisher/releases/{releaseId}/revoke": "release.revoke",
    "PUT /v1/publisher/profile": "profile.update",
    "POST /v1/install/intents": "intent.create",
    "POST /v1/install/intents/{id}/token": "intent.token",
    "POST /v1/install/intents/{id}/cancel": "intent.cancel",
    "POST /v1/admin/listings/{id}/suspend": "admin.listing.suspend",
    "POST /v1/admin/listings/{id}/unsuspend": "admin.listing.unsuspend",
    "POST /v1/admin/users/{userId}/roles": "admin.user.roles",
    "POST /v1/admin/publishers/{publisherId}/verification": "admin.publisher.verification",
}

LEGACY = "legacy:"

records = sa.table(
    "idempotency_records",
    sa.column("endpoint", sa.Text),
    sa.column("request_hash", sa.Text),
)


def upgrade() -> None:
    for old, new in RENAMED.items():
        op.execute(
            records.update()
            .where(records.c.endpoint == old)
            .values(
                endpoint=new,
                request_hash=sa.literal(f"{LEGACY}{old}:") + records.c.request_hash,
            )
        )


def downgrade() -> None:
    for old, new in RENAMED.items():
        prefix = f"{LEGACY}{old}:"
        op.execute(
            records.update()
            .where(records.c.endpoint == new)
            .values(
                endpoint=old,
                request_hash=sa.case(
                    (
                        sa.func.substr(records.c.request_hash, 1, len(prefix)) == prefix,
                        sa.func.substr(records.c.request_hash, len(prefix) + 1),
                    ),
                    else_=records.c.request_hash,
                ),
            )
        )
