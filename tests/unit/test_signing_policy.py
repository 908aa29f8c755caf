"""The server-to-server HMAC scheme of internal redemption (§7, I-INT-01, I-INT-02)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.base.errors import ErrorCode, Unauthenticated
from fleetprompt_core.policies.signing import (
    DEFAULT_SOURCES,
    MAX_SKEW_MS,
    MIN_SECRET_BYTES,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    UNAUTHENTICATED_MESSAGE,
    RedeemVerifier,
    sign,
    signed_headers,
)

KEY = b"k" * 32
OLD_KEY = bytes(range(100, 140))
WRONG_KEY = b"w" * 32
BODY = b'{"installToken":"fpit_x","targetSystem":"whs"}'
NOW = 1_732_521_600_000


def _request(
    *,
    body: bytes = BODY,
    key: bytes = KEY,
    source: str = "whs",
    sent_at: int = NOW,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments of verify() for a request a target system signed correctly."""
    headers = signed_headers(body, key, source, sent_at)
    request: dict[str, Any] = {
        "body": body,
        "source": headers[SOURCE_HEADER],
        "timestamp": headers[TIMESTAMP_HEADER],
        "signature": headers[SIGNATURE_HEADER],
        "now_ms": NOW,
        "browser_context": False,
        "duplicate_header": False,
    }
    request.update(overrides)
    return request


def _refused(verifier: RedeemVerifier, request: dict[str, Any]) -> Unauthenticated:
    """Assert verify() refuses *request* with the generic error; return the error."""
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(**request)
    error = caught.value
    assert error.code is ErrorCode.UNAUTHENTICATED
    assert error.message == UNAUTHENTICATED_MESSAGE
    assert str(error) == UNAUTHENTICATED_MESSAGE
    assert error.hint is None
    return error


@pytest.fixture
def verifier() -> RedeemVerifier:
    """A verifier with one key and the default sources."""
    return RedeemVerifier(keys=(KEY,), allowed_sources=DEFAULT_SOURCES)


def test_header_names_and_defaults_match_the_contract() -> None:
    """Header names, default sources, skew and minimum key length are the contract's."""
    assert SOURCE_HEADER == "X-WHS-Delegation-Source"
    assert TIMESTAMP_HEADER == "X-WHS-Delegation-Timestamp"
    assert SIGNATURE_HEADER == "X-WHS-Delegation-Signature"
    assert frozenset({"whs", "agentromatic", "agentelic", "specprompt"}) == DEFAULT_SOURCES
    assert MAX_SKEW_MS == 300_000
    assert MIN_SECRET_BYTES == 32
    assert UNAUTHENTICATED_MESSAGE == "The request could not be authenticated."


def test_sign_is_v1_hex_hmac_sha256_of_the_body() -> None:
    """sign() is 'v1=' + lower-case hex HMAC-SHA256(key, body), checked against hmac directly."""
    expected = hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, KEY) == "v1=" + expected
    # RFC 4231 test case 2.
    assert sign(b"what do ya want for nothing?", b"Jefe") == (
        "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_signed_headers_are_the_three_contract_headers() -> None:
    """The client helper returns source, timestamp (epoch ms) and signature."""
    assert signed_headers(BODY, KEY, "agentelic", NOW) == {
        "X-WHS-Delegation-Source": "agentelic",
        "X-WHS-Delegation-Timestamp": str(NOW),
        "X-WHS-Delegation-Signature": sign(BODY, KEY),
    }


@pytest.mark.parametrize("source", sorted(DEFAULT_SOURCES))
def test_valid_signature_verifies_and_returns_the_source(
    verifier: RedeemVerifier, source: str
) -> None:
    """A correctly signed request from an allowed source verifies and names its source."""
    assert verifier.verify(**_request(source=source)) == source


def test_default_sources_are_used_when_none_are_configured() -> None:
    """A verifier built with keys only allows the contract's default sources."""
    verifier = RedeemVerifier(keys=(KEY,))
    assert verifier.allowed_sources == DEFAULT_SOURCES
    assert verifier.max_skew_ms == MAX_SKEW_MS
    assert verifier.verify(**_request(source="specprompt")) == "specprompt"


def test_uppercase_hex_signature_is_accepted(verifier: RedeemVerifier) -> None:
    """The hex digest is compared case-insensitively."""
    signature = "v1=" + sign(BODY, KEY)[3:].upper()
    assert verifier.verify(**_request(signature=signature)) == "whs"


def test_one_matching_value_among_several_is_accepted(verifier: RedeemVerifier) -> None:
    """Several comma-separated values, with whitespace and unknown schemes, need one match."""
    good = sign(BODY, KEY)
    others = [sign(BODY, WRONG_KEY), "v0=" + "0" * 64, "v2=abc", "v1=not-hex", "garbage"]
    for signature in (
        f"{others[0]},{good}",
        f"{good}, {others[0]}",
        f"  {others[1]} ,  {others[2]} , {good}  ",
        f"{others[3]},{others[4]},{good}",
    ):
        assert verifier.verify(**_request(signature=signature)) == "whs", signature


def test_rotation_verifier_with_two_keys_accepts_either() -> None:
    """During a rotation a verifier holding old and new keys accepts a signature by either."""
    verifier = RedeemVerifier(keys=(KEY, OLD_KEY), allowed_sources=frozenset({"whs"}))
    assert verifier.verify(**_request(key=KEY)) == "whs"
    assert verifier.verify(**_request(key=OLD_KEY)) == "whs"
    both = f"{sign(BODY, KEY)},{sign(BODY, OLD_KEY)}"
    assert verifier.verify(**_request(signature=both)) == "whs"
    _refused(verifier, _request(key=WRONG_KEY))


def test_only_the_first_signature_items_are_considered(verifier: RedeemVerifier) -> None:
    """A correct value hidden after eight wrong items is not looked at (bounded work)."""
    wrong = sign(BODY, WRONG_KEY)
    within = ",".join([wrong] * 7 + [sign(BODY, KEY)])
    beyond = ",".join([wrong] * 8 + [sign(BODY, KEY)])
    assert verifier.verify(**_request(signature=within)) == "whs"
    _refused(verifier, _request(signature=beyond))


def test_skew_boundary_is_inclusive(verifier: RedeemVerifier) -> None:
    """A timestamp exactly five minutes early or late is accepted."""
    assert verifier.verify(**_request(sent_at=NOW - MAX_SKEW_MS)) == "whs"
    assert verifier.verify(**_request(sent_at=NOW + MAX_SKEW_MS)) == "whs"


def test_custom_skew_is_honoured() -> None:
    """max_skew_ms sets the window."""
    verifier = RedeemVerifier(keys=(KEY,), allowed_sources=DEFAULT_SOURCES, max_skew_ms=1_000)
    assert verifier.verify(**_request(sent_at=NOW - 1_000)) == "whs"
    _refused(verifier, _request(sent_at=NOW - 1_001))


def test_i_int_01_browser_shaped_requests_are_refused(verifier: RedeemVerifier) -> None:
    """A correctly signed request the transport saw come from a browser is refused."""
    error = _refused(verifier, _request(browser_context=True))
    assert error.reason == "browser_context"
    assert verifier.verify(**_request()) == "whs"  # the same request without them passes


def _tampered_body() -> bytes:
    flipped = bytearray(BODY)
    flipped[10] ^= 0x01
    return bytes(flipped)


_BAD_REQUESTS: dict[str, dict[str, Any]] = {
    "unknown-source": _request(source="evil"),
    "source-case-differs": _request(source="WHS"),
    "empty-source": _request(source=""),
    "missing-source": _request() | {"source": None},
    "missing-timestamp": _request(timestamp=None),
    "missing-signature": _request(signature=None),
    "all-headers-missing": _request(timestamp=None, signature=None) | {"source": None},
    "skew-just-beyond-past": _request(sent_at=NOW - MAX_SKEW_MS - 1),
    "skew-just-beyond-future": _request(sent_at=NOW + MAX_SKEW_MS + 1),
    "skew-far-past": _request(sent_at=0),
    "timestamp-not-a-number": _request(timestamp="yesterday"),
    "timestamp-empty": _request(timestamp=""),
    "timestamp-negative": _request(timestamp=str(-NOW)),
    "timestamp-with-sign": _request(timestamp=f"+{NOW}"),
    "timestamp-with-spaces": _request(timestamp=f" {NOW} "),
    "timestamp-decimal": _request(timestamp=f"{NOW}.0"),
    "timestamp-seconds-not-ms": _request(timestamp=str(NOW // 1000)),
    "timestamp-unicode-digits": _request(timestamp="\u0661" * 13),
    "timestamp-too-long": _request(timestamp="0" * 17),
    "tampered-body": _request(body=BODY, signature=sign(BODY, KEY)) | {"body": _tampered_body()},
    "body-with-trailing-newline": _request() | {"body": BODY + b"\n"},
    "empty-body": _request() | {"body": b""},
    "wrong-key": _request(key=WRONG_KEY),
    "signature-empty": _request(signature=""),
    "signature-scheme-only": _request(signature="v1="),
    "signature-no-scheme": _request(signature=sign(BODY, KEY)[3:]),
    "signature-unknown-scheme": _request(signature="v2=" + sign(BODY, KEY)[3:]),
    "signature-upper-scheme": _request(signature="V1=" + sign(BODY, KEY)[3:]),
    "signature-truncated": _request(signature=sign(BODY, KEY)[:-1]),
    "signature-extended": _request(signature=sign(BODY, KEY) + "0"),
    "signature-not-hex": _request(signature="v1=" + "g" * 64),
    "signature-base64": _request(signature="v1=" + "A" * 43 + "="),
    "signature-only-commas": _request(signature=",,,,"),
    "signature-huge": _request(signature=",".join([sign(BODY, KEY)] * 100)),
    "signature-spaces-inside": _request(signature="v1 = " + sign(BODY, KEY)[3:]),
    "signature-other-body": _request(signature=sign(b"{}", KEY)),
}


@pytest.mark.parametrize("case", sorted(_BAD_REQUESTS))
def test_i_int_02_bad_signatures_are_unauthenticated_with_one_message(
    verifier: RedeemVerifier, case: str
) -> None:
    """Every failed check raises the same Unauthenticated error with the same message."""
    error = _refused(verifier, _BAD_REQUESTS[case])
    assert error.args == (UNAUTHENTICATED_MESSAGE,)
    assert error.__cause__ is None


def test_i_int_02_bad_requests_cannot_be_told_apart() -> None:
    """The failures of different checks are indistinguishable (type, message, args, hint)."""
    verifier = RedeemVerifier(keys=(KEY,), allowed_sources=DEFAULT_SOURCES)
    shapes = set()
    for request in [
        *_BAD_REQUESTS.values(),
        _request(browser_context=True),
        _request(duplicate_header=True),
    ]:
        error = _refused(verifier, request)
        shapes.add((type(error), error.code, error.message, error.args, error.hint, error.fields))
    assert len(shapes) == 1


def test_failures_never_reveal_the_key_signature_or_body() -> None:
    """Neither the exception text, its repr nor the verifier's repr holds key, signature or body."""
    secret_key = b"S3cr3t-Key-Material-0123456789-ABCDEF"
    verifier = RedeemVerifier(keys=(secret_key,), allowed_sources=DEFAULT_SOURCES)
    wrong = sign(BODY, WRONG_KEY)
    right = sign(BODY, secret_key)
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(**_request(key=WRONG_KEY))
    rendered = [str(caught.value), repr(caught.value), repr(caught.value.args), repr(verifier)]
    for text in rendered:
        for secret in (secret_key.decode(), repr(secret_key), wrong, wrong[3:], right[3:]):
            assert secret not in text
        assert BODY.decode() not in text
    assert "keys" not in repr(verifier)
    assert "whs" in repr(verifier)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ((), "at least one"),
        ((b"Q7zK!tiny",), "shorter than 32 bytes"),
        ((b"x" * 31,), "shorter than 32 bytes"),
        ((KEY, b"y" * 31), "key 2 of 2 is shorter"),
    ],
)
def test_short_or_missing_keys_are_rejected_at_construction(
    keys: tuple[bytes, ...], problem: str
) -> None:
    """No keys, or a key under 32 bytes, fails construction; the message never shows the key."""
    with pytest.raises(ValueError, match=problem) as caught:
        RedeemVerifier(keys=keys, allowed_sources=DEFAULT_SOURCES)
    for key in keys:
        assert repr(key) not in str(caught.value)
        assert key.decode() not in str(caught.value)


def test_key_of_exactly_32_bytes_is_accepted() -> None:
    """32 bytes is long enough."""
    assert RedeemVerifier(keys=(b"x" * 32,)).verify(**_request(key=b"x" * 32)) == "whs"


def test_wrong_types_and_empty_sources_are_rejected_at_construction() -> None:
    """Keys must be a tuple of bytes, sources a non-empty frozenset, skew positive."""
    with pytest.raises(TypeError):
        RedeemVerifier(keys=[KEY])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RedeemVerifier(keys=("k" * 32,))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RedeemVerifier(keys=(KEY,), allowed_sources={"whs"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        RedeemVerifier(keys=(KEY,), allowed_sources=frozenset())
    with pytest.raises(ValueError, match="source"):
        RedeemVerifier(keys=(KEY,), allowed_sources=frozenset({""}))
    for skew in (0, -1, True):
        with pytest.raises(ValueError, match="max_skew_ms"):
            RedeemVerifier(keys=(KEY,), max_skew_ms=skew)


def test_verifier_is_immutable() -> None:
    """A verifier's keys cannot be swapped after construction."""
    verifier = RedeemVerifier(keys=(KEY,))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        verifier.keys = (WRONG_KEY,)  # type: ignore[misc]


def test_every_candidate_is_compared_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch, verifier: RedeemVerifier
) -> None:
    """Candidates are compared as lower-case hex bytes through hmac.compare_digest, never ==."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    upper = "v1=" + sign(BODY, KEY)[3:].upper()
    signature = f"{sign(BODY, WRONG_KEY)},{upper}"
    assert verifier.verify(**_request(signature=signature)) == "whs"
    expected = sign(BODY, KEY)[3:].encode()
    assert seen == [(sign(BODY, WRONG_KEY)[3:].encode(), expected), (expected, expected)]


@given(
    source=st.none() | st.text(max_size=20),
    timestamp=st.none() | st.text(max_size=20),
    signature=st.none() | st.text(max_size=200),
    body=st.binary(max_size=64),
)
def test_verify_raises_only_unauthenticated_for_garbage(
    source: str | None, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    """Arbitrary header values never crash verify(); unsigned garbage is refused."""
    verifier = RedeemVerifier(keys=(KEY,))
    with pytest.raises(Unauthenticated, match=f"^{re.escape(UNAUTHENTICATED_MESSAGE)}$"):
        verifier.verify(
            body=body,
            source=source,
            timestamp=timestamp,
            signature=signature,
            now_ms=NOW,
        )
