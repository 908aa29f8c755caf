"""Install tokens and API tokens: generation, checksum, hashing and detection.

A FleetPrompt token looks like ``fpit_`` + 43 + 6 base62 characters::

    fpit_ 4vJ0…(43 characters: 256 random bits)… Xc9aQ1
    ^^^^^ prefix (``fpit_`` install token, ``fpat_`` API token)
                                                  ^^^^^^ CRC-32 of prefix + body

* The **body** is 32 bytes from :func:`secrets.token_bytes` (256 bits), written
  as a fixed-width base62 number (43 characters are just enough for 2**256).
* The **prefix** tells a human, a log reader and a secret scanner what the
  string is, as GitHub's ``ghp_`` tokens do.
* The **checksum** (CRC-32 of prefix + body, fixed-width base62) lets a secret
  scanner confirm a match offline, with almost no false positives, and lets the
  server refuse a mistyped or truncated token without a database look-up. It is
  not a security control: anyone can compute it.

Only :func:`hash_token` of a token is ever stored (§1, hard rule 3).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

__all__ = [
    "API_TOKEN_PREFIX",
    "INSTALL_TOKEN_PREFIX",
    "TOKEN_PATTERN",
    "generate_token",
    "has_valid_checksum",
    "hash_token",
    "looks_like_token",
    "tokens_equal",
]

INSTALL_TOKEN_PREFIX = "fpit_"  # noqa: S105 -- a public prefix, not a secret
"""Prefix of install tokens (single-use, short-lived; §4)."""

API_TOKEN_PREFIX = "fpat_"  # noqa: S105 -- a public prefix, not a secret
"""Prefix of personal API tokens (bearer credentials; §8)."""

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(_ALPHABET)
_ENTROPY_BYTES = 32
_BODY_WIDTH = 43  # 62**43 > 2**256
_CHECKSUM_WIDTH = 6  # 62**6 > 2**32
_PREFIX_SHAPE = re.compile(r"fp[a-z]{1,6}_")
_TOKEN_SHAPE = re.compile(
    rf"(?P<prefix>fp[a-z]{{1,6}}_)(?P<body>[0-9A-Za-z]{{{_BODY_WIDTH}}})"
    rf"(?P<checksum>[0-9A-Za-z]{{{_CHECKSUM_WIDTH}}})"
)

TOKEN_PATTERN: re.Pattern[str] = re.compile(
    rf"fp[a-z]{{1,6}}_[0-9A-Za-z]{{{_BODY_WIDTH + _CHECKSUM_WIDTH}}}"
)
"""Finds a FleetPrompt-shaped token anywhere in text (log redaction, secret scanning).

Deliberately without word boundaries: a token glued to other characters (for
example URL-encoded, ``token%3Dfpit_…``, where ``\\b`` would not match) must
still be found. A scanner that needs precision confirms a match with
:func:`has_valid_checksum`.
"""


def generate_token(prefix: str, entropy: bytes | None = None) -> str:
    """Return a new token: *prefix* + base62 body (43) + base62 CRC-32 checksum (6).

    *prefix* must be ``fp`` followed by 1 to 6 lower-case letters and ``_``
    (for example :data:`INSTALL_TOKEN_PREFIX`), so that every token this module
    makes is found by :data:`TOKEN_PATTERN`. *entropy* is for deterministic
    tests only: exactly 32 bytes; by default 32 bytes come from
    :func:`secrets.token_bytes`.
    """
    if _PREFIX_SHAPE.fullmatch(prefix) is None:
        raise ValueError("token prefix must be 'fp', 1 to 6 lower-case letters and '_'")
    if entropy is None:
        entropy = secrets.token_bytes(_ENTROPY_BYTES)
    elif not isinstance(entropy, bytes) or len(entropy) != _ENTROPY_BYTES:
        raise ValueError(f"token entropy must be exactly {_ENTROPY_BYTES} bytes")
    body = _base62(int.from_bytes(entropy, "big"), _BODY_WIDTH)
    return prefix + body + _checksum(prefix + body)


def has_valid_checksum(token: str) -> bool:
    """Whether *token* is exactly one well-formed FleetPrompt token with a correct checksum.

    It says nothing about whether the token was ever issued. Never raises.
    """
    match = _TOKEN_SHAPE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return False
    body = match["body"]
    if _base62_value(body) >= 1 << (8 * _ENTROPY_BYTES):
        return False  # no 32-byte value encodes to this body
    return match["checksum"] == _checksum(match["prefix"] + body)


def hash_token(token: str) -> str:
    """Return the SHA-256 of the UTF-8 *token*, as 64 lower-case hex characters.

    This is what is stored and looked up; the raw token never is. A fast,
    unsalted hash is right here: a token carries 256 random bits, so neither a
    dictionary nor brute force can invert the hash, and a deterministic hash is
    what makes the indexed look-up by hash possible. Passwords are low-entropy
    and human-chosen, which is why they (and only they) use a slow, salted hash
    (argon2id) elsewhere. Lone surrogates (possible in decoded JSON) are
    encoded with ``surrogatepass`` so that hashing never raises.
    """
    return hashlib.sha256(_encode(token)).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Compare two tokens (or token hashes) in constant time."""
    return hmac.compare_digest(_encode(a), _encode(b))


def looks_like_token(text: str) -> bool:
    """Whether *text* contains anything shaped like a FleetPrompt token.

    A search, not a full match, so that tests and scanners can ask "does this
    log line, error body or response leak a token?". The checksum is not
    checked: a truncated-checksum look-alike should raise the alarm too.
    """
    return TOKEN_PATTERN.search(text) is not None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode("ascii")), _CHECKSUM_WIDTH)


def _base62(number: int, width: int) -> str:
    """Fixed-width base62 of a non-negative *number* that fits in *width* digits."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, _BASE)
        digits.append(_ALPHABET[digit])
    if number:
        raise ValueError("number does not fit the width")
    return "".join(reversed(digits))


def _base62_value(text: str) -> int:
    value = 0
    for ch in text:
        value = value * _BASE + _ALPHABET.index(ch)
    return value
