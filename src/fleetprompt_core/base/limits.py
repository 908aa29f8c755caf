"""Every bound of the contract (§3, §4, §5, §6), named once."""

from __future__ import annotations

from typing import Final

NAME_MAX: Final = 80
SUMMARY_MAX: Final = 240
DESCRIPTION_MAX: Final = 20_000
TAGS_MAX: Final = 20
CATEGORIES_MAX: Final = 10
LABEL_MAX: Final = 32
IMAGES_MAX: Final = 10
IMAGE_ALT_MAX: Final = 200
REASON_MAX: Final = 1_000

DISPLAY_NAME_MAX: Final = 80
EMAIL_MAX: Final = 254
BIO_MAX: Final = 5_000
EXTERNAL_ID_MAX: Final = 255

VERSION_MAX: Final = 64
REF_MAX: Final = 200
COMPAT_MAX: Final = 64
ARTIFACTS_MAX: Final = 20
ARTIFACT_HINT_MAX: Final = 1_000
#: An artifact's SHA-256 digest, in hexadecimal.
SHA256_HEX_LENGTH: Final = 64
NOTES_MAX: Final = 10_000
TARGET_CONTEXT_MAX: Final = 200

INTENT_TTL_MS: Final = 24 * 60 * 60 * 1000
TOKEN_TTL_DEFAULT_MS: Final = 15 * 60 * 1000
TOKEN_TTL_MIN_MS: Final = 60_000
TOKEN_TTL_MAX_MS: Final = 3_600_000
#: The longest raw install token a redemption reads (issued ones are far shorter).
INSTALL_TOKEN_MAX: Final = 200

API_TOKEN_NAME_MAX: Final = 80
API_TOKEN_NAME_DEFAULT: Final = "default"  # noqa: S105 - a label, not a secret
API_TOKEN_EXPIRY_DAYS_MIN: Final = 1
API_TOKEN_EXPIRY_DAYS_MAX: Final = 3_650
DAY_MS: Final = 24 * 60 * 60 * 1000

IDEMPOTENCY_KEY_MAX: Final = 255
IDEMPOTENCY_RETENTION_MS: Final = 24 * 60 * 60 * 1000
#: How long a running request holds its idempotency key before another may take it over.
#: How long a redemption sent with an ``Idempotency-Key`` can be replayed (ADR 0021).
REDEEM_REPLAY_WINDOW_MS: Final = 15 * 60 * 1000
IDEMPOTENCY_LEASE_MS: Final = 120_000

QUERY_MAX: Final = 200
#: An audit-log filter value (an event type or an id).
AUDIT_FILTER_MAX: Final = 100
#: The longest pagination cursor accepted.
CURSOR_MAX: Final = 2048
#: The largest integer every JSON client represents exactly (2**53 - 1).
JSON_INTEGER_MAX: Final = 2**53 - 1
AUDIT_SUMMARY_MAX: Final = 500
REQUEST_BODY_MAX_BYTES: Final = 256 * 1024
STATS_WINDOW_MS: Final = 30 * 24 * 60 * 60 * 1000
