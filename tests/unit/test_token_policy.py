"""Install and API tokens (U-TOK-02, U-TOK-03): format, checksum, hashing, detection."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.policies import tokens
from fleetprompt_core.policies.redaction import REDACTED, redact, redact_text
from fleetprompt_core.policies.tokens import (
    API_TOKEN_PREFIX,
    INSTALL_TOKEN_PREFIX,
    TOKEN_PATTERN,
    generate_token,
    has_valid_checksum,
    hash_token,
    looks_like_token,
    tokens_equal,
)

_BODY_AND_CHECKSUM = re.compile(r"[0-9A-Za-z]{49}")
_entropy = st.binary(min_size=32, max_size=32)


def test_u_tok_03_token_hash_is_stable() -> None:
    """Same token, same hash; other token, other hash; 64 hex characters that hide the token."""
    token = generate_token(INSTALL_TOKEN_PREFIX)
    other = generate_token(INSTALL_TOKEN_PREFIX)
    digest = hash_token(token)
    assert hash_token(token) == digest
    assert hash_token(str(token)) == digest
    assert hash_token(other) != digest
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest
    assert token[len(INSTALL_TOKEN_PREFIX) :][:16] not in digest


def test_u_tok_03_token_hash_is_plain_sha256_of_utf8() -> None:
    """The stored hash is SHA-256 of the UTF-8 token (a known vector), so every adapter agrees."""
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("\udc80") == hash_token("\udc80")  # lone surrogate: no exception


def test_u_tok_02_tokens_are_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A generated token in a log message, a log dict or a JSON string is replaced by REDACTED."""
    token = generate_token(INSTALL_TOKEN_PREFIX)
    api_token = generate_token(API_TOKEN_PREFIX)
    message = f"redeem failed for token={token} (caller used {api_token})"
    assert REDACTED in redact_text(message)
    assert token not in redact_text(message)
    assert api_token not in redact_text(message)

    record = {
        "route": "/v1/install/intents/ii_1/token",
        "response": {"installToken": token, "note": f"issued {token}"},
        "query": [f"?t={token}"],
        "body": json.dumps({"token": token}),
    }
    cleaned = redact(record)
    assert token not in repr(cleaned)
    assert isinstance(cleaned, dict)
    assert cleaned["route"] == record["route"]

    logger = logging.getLogger("fleetprompt.test.tokens")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("request %s", redact(record))
    assert caplog.text
    assert token not in caplog.text
    assert not looks_like_token(caplog.text)


@pytest.mark.parametrize("prefix", [INSTALL_TOKEN_PREFIX, API_TOKEN_PREFIX])
def test_token_format_is_prefix_body_and_checksum(prefix: str) -> None:
    """A token is the prefix, 49 base62 characters, and carries a valid checksum."""
    token = generate_token(prefix)
    assert token.startswith(prefix)
    assert len(token) == len(prefix) + 43 + 6
    assert _BODY_AND_CHECKSUM.fullmatch(token[len(prefix) :])
    assert has_valid_checksum(token)
    assert TOKEN_PATTERN.fullmatch(token)


def test_token_prefixes_are_distinct_and_fleetprompt_shaped() -> None:
    """Install and API tokens are told apart by their prefix."""
    assert INSTALL_TOKEN_PREFIX == "fpit_"
    assert API_TOKEN_PREFIX == "fpat_"


def test_token_from_fixed_entropy_is_deterministic() -> None:
    """The same 32 bytes of entropy always give the same token (and the extremes fit)."""
    entropy = bytes(range(32))
    assert generate_token(INSTALL_TOKEN_PREFIX, entropy) == generate_token(
        INSTALL_TOKEN_PREFIX, entropy
    )
    assert generate_token(INSTALL_TOKEN_PREFIX, entropy) != generate_token(
        API_TOKEN_PREFIX, entropy
    )
    lowest = generate_token(INSTALL_TOKEN_PREFIX, bytes(32))
    highest = generate_token(INSTALL_TOKEN_PREFIX, b"\xff" * 32)
    assert lowest[5:48] == "0" * 43
    assert len(lowest) == len(highest) == 54
    assert has_valid_checksum(lowest)
    assert has_valid_checksum(highest)


@given(_entropy)
def test_token_body_encodes_the_entropy(entropy: bytes) -> None:
    """Distinct entropy gives distinct bodies: the base62 body decodes back to the 32 bytes."""
    token = generate_token(INSTALL_TOKEN_PREFIX, entropy)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    value = 0
    for ch in token[5:48]:
        value = value * 62 + alphabet.index(ch)
    assert value.to_bytes(32, "big") == entropy
    assert has_valid_checksum(token)


def test_generated_tokens_are_distinct() -> None:
    """1000 freshly generated tokens are all different (the body is random)."""
    generated = {generate_token(INSTALL_TOKEN_PREFIX) for _ in range(1000)}
    assert len(generated) == 1000
    assert len({token[5:48] for token in generated}) == 1000


def test_generate_token_uses_secrets_token_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without explicit entropy the body comes from secrets.token_bytes(32)."""
    calls: list[int] = []

    def fake_token_bytes(n: int) -> bytes:
        calls.append(n)
        return b"\x01" * n

    monkeypatch.setattr(secrets, "token_bytes", fake_token_bytes)
    assert generate_token(API_TOKEN_PREFIX) == generate_token(API_TOKEN_PREFIX, b"\x01" * 32)
    assert calls == [32]


@pytest.mark.parametrize(
    "prefix", ["", "fp_", "fpit", "FPIT_", "ab_", "fpabcdefg_", "fp1t_", "fpit-"]
)
def test_generate_token_rejects_bad_prefixes(prefix: str) -> None:
    """Only fp + 1..6 lower-case letters + '_' is a prefix, so TOKEN_PATTERN finds every token."""
    with pytest.raises(ValueError, match="prefix"):
        generate_token(prefix)


@pytest.mark.parametrize("entropy", [b"", b"x" * 31, b"x" * 33, bytearray(32)])
def test_generate_token_rejects_wrong_entropy(entropy: bytes) -> None:
    """Entropy must be exactly 32 bytes."""
    with pytest.raises(ValueError, match="32 bytes"):
        generate_token(INSTALL_TOKEN_PREFIX, entropy)


def test_any_single_character_change_fails_the_checksum() -> None:
    """Changing any one character of the body or checksum makes the checksum invalid."""
    token = generate_token(INSTALL_TOKEN_PREFIX, bytes(range(1, 33)))
    for position in range(len(INSTALL_TOKEN_PREFIX), len(token)):
        original = token[position]
        replacement = "a" if original != "a" else "b"
        flipped = token[:position] + replacement + token[position + 1 :]
        assert not has_valid_checksum(flipped), position


def test_prefix_is_covered_by_the_checksum() -> None:
    """Moving a body to another prefix breaks the checksum."""
    token = generate_token(INSTALL_TOKEN_PREFIX)
    assert not has_valid_checksum(API_TOKEN_PREFIX + token[len(INSTALL_TOKEN_PREFIX) :])


@pytest.mark.parametrize(
    "text",
    ["", "fpit_", "not a token", "fpit_" + "0" * 49, "ghp_" + "a" * 36],
)
def test_has_valid_checksum_rejects_non_tokens(text: str) -> None:
    """Strings that are not a well-formed token fail the check."""
    assert not has_valid_checksum(text)


def test_has_valid_checksum_needs_exactly_one_token() -> None:
    """Surrounding text, truncation or an extra character make a token invalid."""
    token = generate_token(INSTALL_TOKEN_PREFIX)
    assert not has_valid_checksum(f" {token}")
    assert not has_valid_checksum(f"{token}\n")
    assert not has_valid_checksum(token[:-1])
    assert not has_valid_checksum(token + "0")


def test_has_valid_checksum_rejects_bodies_beyond_256_bits() -> None:
    """A body of 'z's decodes above 2**256, so no generator produced it, whatever the checksum."""
    prefix, body = "fpit_", "z" * 43
    forged = prefix + body + tokens._checksum(prefix + body)
    assert not has_valid_checksum(forged)


@given(st.text(max_size=200))
def test_has_valid_checksum_never_raises(text: str) -> None:
    """has_valid_checksum answers a bool for arbitrary text, and False unless it is token-shaped."""
    result = has_valid_checksum(text)
    assert isinstance(result, bool)
    if result:
        assert TOKEN_PATTERN.fullmatch(text)


def test_tokens_equal_compares_exactly() -> None:
    """Equal tokens compare equal; any difference, including case or length, does not."""
    token = generate_token(INSTALL_TOKEN_PREFIX)
    assert tokens_equal(token, str(token))
    assert tokens_equal(hash_token(token), hash_token(token))
    assert not tokens_equal(token, generate_token(INSTALL_TOKEN_PREFIX))
    assert not tokens_equal(token, token.upper())
    assert not tokens_equal(token, token[:-1])
    assert not tokens_equal(token, "")
    assert tokens_equal("", "")
    assert tokens_equal("caf\u00e9", "caf\u00e9")
    assert not tokens_equal("\udc80", "\udc81")


def test_tokens_equal_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison goes through hmac.compare_digest on bytes (constant time)."""
    seen: list[tuple[object, object]] = []

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert tokens_equal("x", "x")
    assert seen == [(b"x", b"x")]


def test_token_pattern_finds_tokens_in_text() -> None:
    """TOKEN_PATTERN finds every token in text, including glued or URL-encoded ones."""
    install = generate_token(INSTALL_TOKEN_PREFIX)
    api = generate_token(API_TOKEN_PREFIX)
    text = (
        f"first {install}, then Authorization: Bearer {api}\n"
        f'{{"installToken": "{install}"}} https://x.example/cb?t%3D{api}&x=1'
    )
    found = TOKEN_PATTERN.findall(text)
    assert found == [install, api, install, api]
    assert all(has_valid_checksum(match) for match in found)
    assert looks_like_token(text)
    assert looks_like_token(f"prefix{install}suffix")


def test_looks_like_token_is_false_for_ordinary_text() -> None:
    """Text without a token-shaped string does not look like a token."""
    assert not looks_like_token("")
    assert not looks_like_token("fpit_ is the install token prefix")
    assert not looks_like_token("hash " + hash_token("fpit_x"))
    assert not looks_like_token("fpit_" + "a" * 48)
    assert not looks_like_token("FPIT_" + "a" * 49)
