"""The schema: SQLAlchemy Core tables, constraints and indexes.

The domain classes stay free of SQLAlchemy; :mod:`.mapping` converts rows to
entities and back. The invariants the core relies on hold in the database
itself: unique external ids, release versions, token hashes (of install and
API tokens) and idempotency keys; foreign keys; a check constraint on every
enum column.

Two tables exist only for search and hold **published listings only**:
``listing_terms`` (an inverted index of the tokens of name, labels and
summary, tokenised by the core's own tokenizer, see ADR 0012) and
``listing_labels`` (tags and categories with the sort keys copied, so a
label filter walks an index in the requested order). The repository rewrites
a listing's rows in both whenever the listing changes.

Every column that takes part in a keyset order or a prefix range compares by
code point: SQLite's default ``BINARY`` collation does, and on PostgreSQL
those columns are declared ``COLLATE "C"``, so the database orders strings
exactly as Python does.
"""

from __future__ import annotations

import enum

import sqlalchemy as sa

from fleetprompt_core.base.enums import (
    ActorType,
    AssetKind,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
    VerificationStatus,
)

__all__ = [
    "LABEL_CATEGORY",
    "LABEL_TAG",
    "accounts",
    "api_tokens",
    "audit_events",
    "browser_sessions",
    "idempotency_records",
    "install_intents",
    "install_tokens",
    "listing_labels",
    "listing_terms",
    "listings",
    "metadata",
    "publisher_profiles",
    "releases",
    "search_log",
    "search_log_head",
    "users",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Text that sorts by code point on every database (see the module doc).
OrderedText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
#: Milliseconds since the epoch.
Millis = sa.BigInteger

LABEL_TAG = "tag"
LABEL_CATEGORY = "category"


def _enum(cls: type[enum.StrEnum], name: str) -> sa.Enum:
    """A VARCHAR with a CHECK constraint naming the contract's values."""
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in cls),
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def _id(name: str, *, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(name, OrderedText, primary_key=primary_key, nullable=False)


def _ref(
    name: str, target: str, *, nullable: bool = False, cascade: bool = False
) -> sa.Column[str]:
    return sa.Column(
        name,
        OrderedText,
        sa.ForeignKey(target, ondelete="CASCADE" if cascade else None),
        nullable=nullable,
    )


# --------------------------------------------------------------------------- users

users = sa.Table(
    "users",
    metadata,
    _id("user_id", primary_key=True),
    sa.Column("external_id", sa.Text, nullable=False, unique=True),
    sa.Column("display_name", sa.Text),
    sa.Column("email", sa.Text),
    #: Granted roles, sorted: a JSON array of role names.
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
)

publisher_profiles = sa.Table(
    "publisher_profiles",
    metadata,
    sa.Column("publisher_id", OrderedText, sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("bio_markdown", sa.Text, nullable=False),
    sa.Column("bio_html", sa.Text, nullable=False),
    sa.Column("bio_renderer", sa.Text, nullable=False),
    sa.Column(
        "verification_status",
        _enum(VerificationStatus, "verification_status"),
        nullable=False,
    ),
    sa.Column("verification_checked_at_ms", Millis),
    sa.Column("verification_reason", sa.Text),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
)

# --------------------------------------------------------------------------- listings

listings = sa.Table(
    "listings",
    metadata,
    _id("listing_id", primary_key=True),
    _ref("publisher_user_id", "users.user_id"),
    sa.Column("asset_kind", _enum(AssetKind, "asset_kind"), nullable=False),
    sa.Column("status", _enum(ListingStatus, "status"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    #: ``casefold(name)``: the key of the ``name`` sort.
    sa.Column("name_key", OrderedText, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("description_markdown", sa.Text, nullable=False),
    sa.Column("description_html", sa.Text, nullable=False),
    sa.Column("description_renderer", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("images", sa.JSON, nullable=False),
    sa.Column("docs_url", sa.Text),
    sa.Column("repo_url", sa.Text),
    sa.Column(
        "moderation_flagged",
        sa.Boolean(create_constraint=True, name="moderation_flagged"),
        nullable=False,
    ),
    sa.Column("moderation_reason", sa.Text),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
    # Publisher console: my listings, newest first.
    sa.Index(None, "publisher_user_id", "created_at_ms", "listing_id"),
    # Public browse in each order (published only, with or without an asset kind).
    sa.Index(None, "status", "updated_at_ms", "listing_id"),
    sa.Index(None, "status", "created_at_ms", "listing_id"),
    sa.Index(None, "status", "name_key", "listing_id"),
    sa.Index(None, "status", "asset_kind", "updated_at_ms", "listing_id"),
)

#: Tags and categories of published listings, with the sort keys of the listing.
listing_labels = sa.Table(
    "listing_labels",
    metadata,
    sa.Column("kind", OrderedText, nullable=False),
    sa.Column("value", OrderedText, nullable=False),
    _ref("listing_id", "listings.listing_id", cascade=True),
    sa.Column("asset_kind", _enum(AssetKind, "asset_kind"), nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("name_key", OrderedText, nullable=False),
    sa.PrimaryKeyConstraint("kind", "value", "listing_id"),
    sa.CheckConstraint(f"kind IN ('{LABEL_TAG}', '{LABEL_CATEGORY}')", name="kind"),
    sa.Index(None, "kind", "value", "updated_at_ms", "listing_id"),
    sa.Index(None, "kind", "value", "created_at_ms", "listing_id"),
    sa.Index(None, "kind", "value", "name_key", "listing_id"),
    sa.Index(None, "listing_id"),
)

#: The inverted index of published listings: one row per distinct token of a listing,
#: flagging the fields it occurs in (a term's score is 3·name + 2·labels + 1·summary),
#: with the listing's update time (SQLite stores the rows in primary-key order:
#: a term's range holds everything relevance needs to rank).
listing_terms = sa.Table(
    "listing_terms",
    metadata,
    sa.Column("token", OrderedText, nullable=False),
    _ref("listing_id", "listings.listing_id", cascade=True),
    sa.Column("in_name", sa.SmallInteger, nullable=False),
    sa.Column("in_labels", sa.SmallInteger, nullable=False),
    sa.Column("in_summary", sa.SmallInteger, nullable=False),
    #: The listing's ``updated_at_ms``: relevance and ``updated`` rank without a join.
    sa.Column("updated_at_ms", Millis, nullable=False),
    sa.PrimaryKeyConstraint("token", "listing_id"),
    sa.CheckConstraint(
        "in_name IN (0, 1) AND in_labels IN (0, 1) AND in_summary IN (0, 1)", name="flags"
    ),
    # A candidate's other terms are probed by listing, then token range.
    sa.Index(None, "listing_id", "token", "in_name", "in_labels", "in_summary"),
    sqlite_with_rowid=False,
)

# --------------------------------------------------------------------------- releases

releases = sa.Table(
    "releases",
    metadata,
    _id("release_id", primary_key=True),
    _ref("listing_id", "listings.listing_id"),
    _ref("publisher_user_id", "users.user_id"),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("status", _enum(ReleaseStatus, "status"), nullable=False),
    sa.Column("whs_agent_id", sa.Text),
    sa.Column("whs_deployment_id", sa.Text),
    sa.Column("agentromatic_workflow_id", sa.Text),
    sa.Column("spec_asset_id", sa.Text),
    sa.Column("min_whs_version", sa.Text),
    sa.Column("min_agentromatic_version", sa.Text),
    sa.Column("min_agentelic_version", sa.Text),
    sa.Column("artifacts", sa.JSON, nullable=False),
    sa.Column("notes_markdown", sa.Text, nullable=False),
    sa.Column("notes_html", sa.Text, nullable=False),
    sa.Column("notes_renderer", sa.Text, nullable=False),
    sa.Column("published_at_ms", Millis, nullable=False),
    sa.Column("revoked_at_ms", Millis),
    sa.Column("revoke_reason", sa.Text),
    sa.UniqueConstraint("listing_id", "version"),
    # Release history (all, or published only) newest first.
    sa.Index(None, "listing_id", "published_at_ms", "release_id"),
    sa.Index(None, "listing_id", "status", "published_at_ms", "release_id"),
)

# --------------------------------------------------------------------------- installs

install_intents = sa.Table(
    "install_intents",
    metadata,
    _id("install_intent_id", primary_key=True),
    _ref("buyer_user_id", "users.user_id"),
    _ref("listing_id", "listings.listing_id"),
    _ref("release_id", "releases.release_id"),
    sa.Column("target_system", _enum(InstallTargetSystem, "target_system"), nullable=False),
    sa.Column("telespace_id", sa.Text),
    sa.Column("room_id", sa.Text),
    sa.Column("org_id", sa.Text),
    sa.Column("status", _enum(InstallIntentStatus, "status"), nullable=False),
    sa.Column("expires_at_ms", Millis, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
    # My installs, newest first.
    sa.Index("ix_install_intents_buyer", "buyer_user_id", "created_at_ms", "install_intent_id"),
    # Install counts per listing over a window.
    sa.Index(None, "listing_id", "created_at_ms"),
    # Retention: open intents past their expiry.
    sa.Index(None, "status", "expires_at_ms", "install_intent_id"),
)

install_tokens = sa.Table(
    "install_tokens",
    metadata,
    _id("token_id", primary_key=True),
    _ref("install_intent_id", "install_intents.install_intent_id"),
    _ref("buyer_user_id", "users.user_id"),
    sa.Column("target_system", _enum(InstallTargetSystem, "target_system"), nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("status", _enum(InstallTokenStatus, "status"), nullable=False),
    sa.Column("issued_at_ms", Millis, nullable=False),
    sa.Column("expires_at_ms", Millis, nullable=False),
    sa.Column("redeemed_at_ms", Millis),
    sa.Column("redeemed_by_system", sa.Text),
    sa.Index(None, "install_intent_id", "status"),
    sa.Index(None, "status", "expires_at_ms", "token_id"),
)

# --------------------------------------------------------------------------- credentials

#: Personal API tokens (§8): hashes only; revocation is a timestamp, never a delete.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id("token_id", primary_key=True),
    _ref("user_id", "users.user_id"),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("expires_at_ms", Millis),
    sa.Column("revoked_at_ms", Millis),
    # Resolving a bearer token: one look-up by hash.
    sa.Index(None, "token_hash", unique=True),
    # A user's tokens, newest first.
    sa.Index(None, "user_id", "created_at_ms", "token_id"),
)

#: Built-in accounts (§8): one per user; the password only as an argon2id hash.
accounts = sa.Table(
    "accounts",
    metadata,
    _ref("user_id", "users.user_id"),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    #: Unique when present (several rows may hold NULL).
    sa.Column("email", sa.Text, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("password_changed_at_ms", Millis, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("updated_at_ms", Millis, nullable=False),
    sa.PrimaryKeyConstraint("user_id"),
)

#: Server-side browser sessions (§12): the SHA-256 of the session token, never the token.
browser_sessions = sa.Table(
    "browser_sessions",
    metadata,
    sa.Column("session_hash", sa.Text, primary_key=True),
    _ref("user_id", "users.user_id"),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("last_seen_at_ms", Millis, nullable=False),
    sa.Column("expires_at_ms", Millis, nullable=False),
    # Ending every session of a user (sign-out everywhere, password change).
    sa.Index(None, "user_id"),
    # The retention job's sweep of ended sessions.
    sa.Index(None, "expires_at_ms"),
    sa.Index(None, "last_seen_at_ms"),
)

# --------------------------------------------------------------------------- idempotency

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("scope_user_id", sa.Text, nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("claim_id", sa.Text, nullable=False),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("expires_at_ms", Millis, nullable=False),
    sa.Column("lease_until_ms", Millis, nullable=False),
    sa.Column("response_json", sa.Text),
    # The (scope, endpoint, key) uniqueness of the contract is the primary key.
    sa.PrimaryKeyConstraint("scope_user_id", "endpoint", "key"),
    sa.Index(None, "expires_at_ms"),
)

# --------------------------------------------------------------------------- audit

audit_events = sa.Table(
    "audit_events",
    metadata,
    _id("event_id", primary_key=True),
    sa.Column("type", OrderedText, nullable=False),
    sa.Column("actor_type", _enum(ActorType, "actor_type"), nullable=False),
    sa.Column("actor_user_id", OrderedText),
    sa.Column("actor_system", sa.Text),
    sa.Column("created_at_ms", Millis, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    # Audit rows outlive what they describe: no foreign keys.
    sa.Column("publisher_user_id", OrderedText),
    sa.Column("listing_id", OrderedText),
    sa.Column("release_id", OrderedText),
    sa.Column("install_intent_id", OrderedText),
    sa.Column("request_id", sa.Text),
    sa.Index(None, "created_at_ms", "event_id"),
    sa.Index(None, "type", "created_at_ms", "event_id"),
    sa.Index(None, "listing_id", "created_at_ms", "event_id"),
    sa.Index(None, "actor_user_id", "created_at_ms", "event_id"),
    sa.Index(None, "publisher_user_id", "created_at_ms", "event_id"),
)

# --------------------------------------------------------------------------- catalogue version

#: One row (``id`` = 1): the catalogue version (the core's ``CatalogVersion`` port).
#: A transaction that changes what a public read shows increments it before it
#: commits, so the new value and the change become visible together.
catalog_version = sa.Table(
    "catalog_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)


# --------------------------------------------------------------------------- search change log

#: The listings whose searchable state changed, in commit order (ADR 0027): every
#: search engine process applies the rows after the last ``seq`` it applied. A
#: transaction that changes listings takes the next ``seq`` from
#: ``search_log_head`` (its single row stays locked until commit), so ``seq``
#: order is commit order and no committed ``seq`` ever appears behind one
#: already seen. The head's ``epoch`` is drawn when the row is first written: a
#: follower that finds another epoch (the database was emptied or restored)
#: rebuilds its index instead of trusting its position.
search_log = sa.Table(
    "search_log",
    metadata,
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("listing_id", OrderedText, nullable=False),
    sa.Column("changed_at_ms", Millis, nullable=False),
    sa.PrimaryKeyConstraint("seq", "listing_id"),
)
search_log_head = sa.Table(
    "search_log_head",
    metadata,
    sa.Column("id", sa.SmallInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.Text, nullable=False),
    #: The highest ``seq`` whose rows pruning may have deleted (migration 0007).
    sa.Column("pruned_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("id"),
)
