"""Initial schema: every FleetPrompt table with its constraints and indexes.

Users and publisher profiles, listings with their search tables (labels and
terms), releases, install intents and tokens, idempotency records and the
audit log.

Every constraint and index is named explicitly with ``op.f``, so this revision
creates the same names whatever naming convention
:mod:`fleetprompt_adapters.sql.tables` uses later: exactly the names
``metadata.create_all`` produces today, on SQLite and on PostgreSQL (enum and
boolean CHECK constraints included). Columns that take part in a keyset order
or a prefix range are ``COLLATE "C"`` on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 10:35:19.046048
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Text that sorts by code point: SQLite's BINARY collation, ``COLLATE "C"`` on PostgreSQL.
ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", ORDERED_TEXT, nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("external_id", name=op.f("uq_users_external_id")),
    )

    op.create_table(
        "publisher_profiles",
        sa.Column("publisher_id", ORDERED_TEXT, nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("bio_markdown", sa.Text(), nullable=False),
        sa.Column("bio_html", sa.Text(), nullable=False),
        sa.Column("bio_renderer", sa.Text(), nullable=False),
        sa.Column(
            "verification_status",
            sa.Enum(
                "unverified",
                "verified",
                "failed",
                name=op.f("ck_publisher_profiles_verification_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("verification_checked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("verification_reason", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["users.user_id"],
            name=op.f("fk_publisher_profiles_publisher_id_users"),
        ),
        sa.PrimaryKeyConstraint("publisher_id", name=op.f("pk_publisher_profiles")),
    )

    op.create_table(
        "listings",
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column("publisher_user_id", ORDERED_TEXT, nullable=False),
        sa.Column(
            "asset_kind",
            sa.Enum(
                "whs_agent",
                "agentromatic_workflow",
                "spec_asset",
                name=op.f("ck_listings_asset_kind"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "published",
                "unlisted",
                "suspended",
                name=op.f("ck_listings_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_key", ORDERED_TEXT, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description_markdown", sa.Text(), nullable=False),
        sa.Column("description_html", sa.Text(), nullable=False),
        sa.Column("description_renderer", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("docs_url", sa.Text(), nullable=True),
        sa.Column("repo_url", sa.Text(), nullable=True),
        sa.Column(
            "moderation_flagged",
            # A CHECK constraint only where booleans are not native (SQLite).
            sa.Boolean(create_constraint=True, name=op.f("ck_listings_moderation_flagged")),
            nullable=False,
        ),
        sa.Column("moderation_reason", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_user_id"],
            ["users.user_id"],
            name=op.f("fk_listings_publisher_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_listings")),
    )
    op.create_index(
        op.f("ix_listings_publisher_user_id_created_at_ms_listing_id"),
        "listings",
        ["publisher_user_id", "created_at_ms", "listing_id"],
    )
    op.create_index(
        op.f("ix_listings_status_updated_at_ms_listing_id"),
        "listings",
        ["status", "updated_at_ms", "listing_id"],
    )
    op.create_index(
        op.f("ix_listings_status_created_at_ms_listing_id"),
        "listings",
        ["status", "created_at_ms", "listing_id"],
    )
    op.create_index(
        op.f("ix_listings_status_name_key_listing_id"),
        "listings",
        ["status", "name_key", "listing_id"],
    )
    op.create_index(
        op.f("ix_listings_status_asset_kind_updated_at_ms_listing_id"),
        "listings",
        ["status", "asset_kind", "updated_at_ms", "listing_id"],
    )

    op.create_table(
        "listing_labels",
        sa.Column("kind", ORDERED_TEXT, nullable=False),
        sa.Column("value", ORDERED_TEXT, nullable=False),
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column(
            "asset_kind",
            sa.Enum(
                "whs_agent",
                "agentromatic_workflow",
                "spec_asset",
                name=op.f("ck_listing_labels_asset_kind"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("name_key", ORDERED_TEXT, nullable=False),
        sa.CheckConstraint("kind IN ('tag', 'category')", name=op.f("ck_listing_labels_kind")),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.listing_id"],
            name=op.f("fk_listing_labels_listing_id_listings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "value", "listing_id", name=op.f("pk_listing_labels")),
    )
    op.create_index(
        op.f("ix_listing_labels_kind_value_updated_at_ms_listing_id"),
        "listing_labels",
        ["kind", "value", "updated_at_ms", "listing_id"],
    )
    op.create_index(
        op.f("ix_listing_labels_kind_value_created_at_ms_listing_id"),
        "listing_labels",
        ["kind", "value", "created_at_ms", "listing_id"],
    )
    op.create_index(
        op.f("ix_listing_labels_kind_value_name_key_listing_id"),
        "listing_labels",
        ["kind", "value", "name_key", "listing_id"],
    )
    op.create_index(op.f("ix_listing_labels_listing_id"), "listing_labels", ["listing_id"])

    op.create_table(
        "listing_terms",
        sa.Column("token", ORDERED_TEXT, nullable=False),
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column("in_name", sa.SmallInteger(), nullable=False),
        sa.Column("in_labels", sa.SmallInteger(), nullable=False),
        sa.Column("in_summary", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "in_name IN (0, 1) AND in_labels IN (0, 1) AND in_summary IN (0, 1)",
            name=op.f("ck_listing_terms_flags"),
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.listing_id"],
            name=op.f("fk_listing_terms_listing_id_listings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", "listing_id", name=op.f("pk_listing_terms")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_listing_terms_listing_id_token_in_name_in_labels_in_summary"),
        "listing_terms",
        ["listing_id", "token", "in_name", "in_labels", "in_summary"],
    )

    op.create_table(
        "releases",
        sa.Column("release_id", ORDERED_TEXT, nullable=False),
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column("publisher_user_id", ORDERED_TEXT, nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "published",
                "revoked",
                name=op.f("ck_releases_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("whs_agent_id", sa.Text(), nullable=True),
        sa.Column("whs_deployment_id", sa.Text(), nullable=True),
        sa.Column("agentromatic_workflow_id", sa.Text(), nullable=True),
        sa.Column("spec_asset_id", sa.Text(), nullable=True),
        sa.Column("min_whs_version", sa.Text(), nullable=True),
        sa.Column("min_agentromatic_version", sa.Text(), nullable=True),
        sa.Column("min_agentelic_version", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("notes_markdown", sa.Text(), nullable=False),
        sa.Column("notes_html", sa.Text(), nullable=False),
        sa.Column("notes_renderer", sa.Text(), nullable=False),
        sa.Column("published_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.listing_id"], name=op.f("fk_releases_listing_id_listings")
        ),
        sa.ForeignKeyConstraint(
            ["publisher_user_id"],
            ["users.user_id"],
            name=op.f("fk_releases_publisher_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_releases")),
        sa.UniqueConstraint("listing_id", "version", name=op.f("uq_releases_listing_id_version")),
    )
    op.create_index(
        op.f("ix_releases_listing_id_published_at_ms_release_id"),
        "releases",
        ["listing_id", "published_at_ms", "release_id"],
    )
    op.create_index(
        op.f("ix_releases_listing_id_status_published_at_ms_release_id"),
        "releases",
        ["listing_id", "status", "published_at_ms", "release_id"],
    )

    op.create_table(
        "install_intents",
        sa.Column("install_intent_id", ORDERED_TEXT, nullable=False),
        sa.Column("buyer_user_id", ORDERED_TEXT, nullable=False),
        sa.Column("listing_id", ORDERED_TEXT, nullable=False),
        sa.Column("release_id", ORDERED_TEXT, nullable=False),
        sa.Column(
            "target_system",
            sa.Enum(
                "whs",
                "agentromatic",
                "agentelic",
                name=op.f("ck_install_intents_target_system"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("telespace_id", sa.Text(), nullable=True),
        sa.Column("room_id", sa.Text(), nullable=True),
        sa.Column("org_id", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "token_issued",
                "redeemed",
                "expired",
                "canceled",
                name=op.f("ck_install_intents_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["buyer_user_id"],
            ["users.user_id"],
            name=op.f("fk_install_intents_buyer_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.listing_id"],
            name=op.f("fk_install_intents_listing_id_listings"),
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.release_id"],
            name=op.f("fk_install_intents_release_id_releases"),
        ),
        sa.PrimaryKeyConstraint("install_intent_id", name=op.f("pk_install_intents")),
    )
    op.create_index(
        op.f("ix_install_intents_buyer"),
        "install_intents",
        ["buyer_user_id", "created_at_ms", "install_intent_id"],
    )
    op.create_index(
        op.f("ix_install_intents_listing_id_created_at_ms"),
        "install_intents",
        ["listing_id", "created_at_ms"],
    )
    op.create_index(
        op.f("ix_install_intents_status_expires_at_ms_install_intent_id"),
        "install_intents",
        ["status", "expires_at_ms", "install_intent_id"],
    )

    op.create_table(
        "install_tokens",
        sa.Column("token_id", ORDERED_TEXT, nullable=False),
        sa.Column("install_intent_id", ORDERED_TEXT, nullable=False),
        sa.Column("buyer_user_id", ORDERED_TEXT, nullable=False),
        sa.Column(
            "target_system",
            sa.Enum(
                "whs",
                "agentromatic",
                "agentelic",
                name=op.f("ck_install_tokens_target_system"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "issued",
                "redeemed",
                "expired",
                "revoked",
                name=op.f("ck_install_tokens_status"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("redeemed_by_system", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["install_intent_id"],
            ["install_intents.install_intent_id"],
            name=op.f("fk_install_tokens_install_intent_id_install_intents"),
        ),
        sa.ForeignKeyConstraint(
            ["buyer_user_id"], ["users.user_id"], name=op.f("fk_install_tokens_buyer_user_id_users")
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_install_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_install_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_install_tokens_install_intent_id_status"),
        "install_tokens",
        ["install_intent_id", "status"],
    )
    op.create_index(
        op.f("ix_install_tokens_status_expires_at_ms_token_id"),
        "install_tokens",
        ["status", "expires_at_ms", "token_id"],
    )

    op.create_table(
        "idempotency_records",
        sa.Column("scope_user_id", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("claim_id", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "scope_user_id", "endpoint", "key", name=op.f("pk_idempotency_records")
        ),
    )
    op.create_index(
        op.f("ix_idempotency_records_expires_at_ms"), "idempotency_records", ["expires_at_ms"]
    )

    op.create_table(
        "audit_events",
        sa.Column("event_id", ORDERED_TEXT, nullable=False),
        sa.Column("type", ORDERED_TEXT, nullable=False),
        sa.Column(
            "actor_type",
            sa.Enum(
                "user",
                "system",
                name=op.f("ck_audit_events_actor_type"),
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("actor_user_id", ORDERED_TEXT, nullable=True),
        sa.Column("actor_system", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        # Audit rows outlive what they describe: no foreign keys.
        sa.Column("publisher_user_id", ORDERED_TEXT, nullable=True),
        sa.Column("listing_id", ORDERED_TEXT, nullable=True),
        sa.Column("release_id", ORDERED_TEXT, nullable=True),
        sa.Column("install_intent_id", ORDERED_TEXT, nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        op.f("ix_audit_events_created_at_ms_event_id"),
        "audit_events",
        ["created_at_ms", "event_id"],
    )
    op.create_index(
        op.f("ix_audit_events_type_created_at_ms_event_id"),
        "audit_events",
        ["type", "created_at_ms", "event_id"],
    )
    op.create_index(
        op.f("ix_audit_events_listing_id_created_at_ms_event_id"),
        "audit_events",
        ["listing_id", "created_at_ms", "event_id"],
    )
    op.create_index(
        op.f("ix_audit_events_actor_user_id_created_at_ms_event_id"),
        "audit_events",
        ["actor_user_id", "created_at_ms", "event_id"],
    )
    op.create_index(
        op.f("ix_audit_events_publisher_user_id_created_at_ms_event_id"),
        "audit_events",
        ["publisher_user_id", "created_at_ms", "event_id"],
    )


def downgrade() -> None:
    # Children before parents; a table takes its indexes and constraints with it.
    op.drop_table("audit_events")
    op.drop_table("idempotency_records")
    op.drop_table("install_tokens")
    op.drop_table("install_intents")
    op.drop_table("releases")
    op.drop_table("listing_terms")
    op.drop_table("listing_labels")
    op.drop_table("listings")
    op.drop_table("publisher_profiles")
    op.drop_table("users")
