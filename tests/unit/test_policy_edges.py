"""The edges of the core's policies that mutation testing found unguarded (issue 15).

Each test pins one boundary a changed constant or operator would slip past:
the port after a bracketed IPv6 host, the signature header's length bound,
the cursor codec's exact format (a golden cursor) and round trip, and the
token checksum check on values that are not strings.
"""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core import Unauthenticated, ValidationFailed
from fleetprompt_core.policies.pagination import CursorCodec
from fleetprompt_core.policies.signing import DEFAULT_SOURCES, RedeemVerifier, sign
from fleetprompt_core.policies.tokens import has_valid_checksum
from fleetprompt_core.policies.urls import url_problem

# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://[2001:db8::1]/x", True),
        ("https://[2001:db8::1]:443/x", True),
        ("https://[2001:db8::1]:1/x", True),
        ("https://[2001:db8::1]:65535/x", True),
        ("https://[2001:db8::1]:0/x", False),
        ("https://[2001:db8::1]:65536/x", False),
        ("https://[2001:db8::1]:99999/x", False),
        ("https://[2001:db8::1]:4a3/x", False),
        ("https://[2001:db8::1]:/x", False),
        ("https://[2001:db8::1]:\u0664\u0664\u0663/x", False),  # Arabic-Indic digits
        ("https://[2001:db8::1]x/x", False),
        ("https://[2001:db8::1/x", False),
    ],
)
def test_u_val_02_the_port_after_a_bracketed_ipv6_host_is_checked(url: str, accepted: bool) -> None:
    assert (url_problem(url) is None) is accepted, (url, url_problem(url))


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://example.com:1/", True),
        ("https://example.com:65535/", True),
        ("https://example.com:0/", False),
        ("https://example.com:65536/", False),
    ],
)
def test_u_val_02_port_bounds_after_a_host_name(url: str, accepted: bool) -> None:
    assert (url_problem(url) is None) is accepted, (url, url_problem(url))


@pytest.mark.parametrize(("length", "accepted"), [(253, True), (254, False), (400, False)])
def test_u_val_02_a_host_name_is_at_most_253_characters(length: int, accepted: bool) -> None:
    host = ".".join(["a" * 62] * 10)[: length - 4].rstrip(".") + ".com"
    host = host if len(host) == length else host.rjust(length, "b")
    assert len(host) == length
    assert (url_problem(f"https://{host}/") is None) is accepted, length


@pytest.mark.parametrize(
    "url", ["https://[::1]]/x", "https://[]/x", "https://[]:443/x", "https://[/x"]
)
def test_u_val_02_malformed_brackets_are_refused(url: str) -> None:
    assert url_problem(url) is not None


# --------------------------------------------------------------------------- signatures

KEY = b"k" * 32
BODY = b'{"installToken":"fpit_x","targetSystem":"whs"}'
NOW = 1_732_521_600_000
#: The longest signature header the verifier reads (characters).
HEADER_LIMIT = 1024


def _verify(signature: str) -> str:
    verifier = RedeemVerifier(keys=(KEY,), allowed_sources=DEFAULT_SOURCES)
    return verifier.verify(
        body=BODY, source="whs", timestamp=str(NOW), signature=signature, now_ms=NOW
    )


def test_i_int_02_a_signature_header_at_its_length_limit_is_read_one_over_is_refused() -> None:
    valid = sign(BODY, KEY)
    at_limit = valid + "," + " " * (HEADER_LIMIT - len(valid) - 1)
    assert len(at_limit) == HEADER_LIMIT
    assert _verify(at_limit) == "whs"
    with pytest.raises(Unauthenticated):
        _verify(at_limit + " ")


def test_i_int_02_the_right_value_as_the_last_item_read_is_accepted() -> None:
    """Items beyond the eighth are ignored; the eighth itself is compared."""
    wrong = sign(BODY, b"w" * 32)
    assert _verify(",".join([wrong] * 7 + [sign(BODY, KEY)])) == "whs"
    with pytest.raises(Unauthenticated):
        _verify(",".join([wrong] * 8 + [sign(BODY, KEY)] + [wrong]))


# --------------------------------------------------------------------------- cursors

GOLDEN_KEY = b"golden-cursor-key-16+"
GOLDEN_SCOPE = "publisher-listings|usr_1|"
GOLDEN_POSITION = (1732521600000, "lst_01ABC")
#: A cursor made by this codec's format: version 1, a JSON body, a 16-byte MAC,
#: unpadded URL-safe base64. A change to any of them breaks every cursor in use.
GOLDEN_CURSOR = "WzEsWzE3MzI1MjE2MDAwMDAsImxzdF8wMUFCQyJdXQ.Qa8iMp6iO-8Z2-MLjJ-jRw"
SHAPE = (int, str)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_r_pag_01_the_golden_cursor_encodes_and_decodes_unchanged() -> None:
    codec = CursorCodec(GOLDEN_KEY)
    assert codec.encode(GOLDEN_SCOPE, GOLDEN_POSITION) == GOLDEN_CURSOR
    assert codec.decode(GOLDEN_SCOPE, GOLDEN_CURSOR, SHAPE) == GOLDEN_POSITION
    body, mac = GOLDEN_CURSOR.split(".")
    assert json.loads(base64.urlsafe_b64decode(body + "==")) == [1, list(GOLDEN_POSITION)]
    assert len(base64.urlsafe_b64decode(mac + "==")) == 16


def _refused(cursor: str, scope: str = GOLDEN_SCOPE, key: bytes = GOLDEN_KEY) -> None:
    with pytest.raises(ValidationFailed) as caught:
        CursorCodec(key).decode(scope, cursor, SHAPE)
    assert [f.field_name for f in caught.value.fields] == ["cursor"]


def test_r_pag_01_a_changed_version_mac_length_or_spelling_is_refused() -> None:
    codec = CursorCodec(GOLDEN_KEY)
    body, mac = GOLDEN_CURSOR.split(".")
    other_version = json.dumps([2, list(GOLDEN_POSITION)], separators=(",", ":")).encode()
    resigned = _b64(other_version) + "." + _b64(codec._mac(GOLDEN_SCOPE, other_version))
    _refused(resigned)  # a correctly signed cursor of another version
    full_mac = codec._mac(GOLDEN_SCOPE, base64.urlsafe_b64decode(body + "=="))
    _refused(body + "." + _b64(full_mac[:15]))  # a MAC one byte short
    _refused(body + "." + mac + "==")  # padding
    _refused(body + "=." + mac)
    _refused(GOLDEN_CURSOR, scope="publisher-listings|usr_2|")  # another list
    _refused(GOLDEN_CURSOR, key=b"another-cursor-key-16")  # another deployment
    _refused(GOLDEN_CURSOR + "." + mac)
    _refused("")


@given(
    scope=st.text(max_size=40),
    position=st.lists(
        st.one_of(st.integers(min_value=-(2**53), max_value=2**53), st.text(max_size=30)),
        min_size=1,
        max_size=3,
    ),
)
def test_r_pag_01_every_position_round_trips(scope: str, position: list[int | str]) -> None:
    codec = CursorCodec(GOLDEN_KEY)
    cursor = codec.encode(scope, tuple(position))
    shape = tuple(type(value) for value in position)
    assert codec.decode(scope, cursor, shape) == tuple(position)
    assert cursor.isascii()
    assert " " not in cursor


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("value", [None, 0, b"fpat_x", ["fpat_x"], object()])
def test_u_tok_02_has_valid_checksum_never_raises_for_a_value_that_is_not_text(
    value: object,
) -> None:
    assert has_valid_checksum(value) is False  # type: ignore[arg-type]


def test_r_pag_01_a_scope_with_a_lone_surrogate_still_signs_and_verifies() -> None:
    """Filters come from JSON, which can carry a lone surrogate (``"\\ud800"``)."""
    codec = CursorCodec(GOLDEN_KEY)
    scope = "publisher-listings|usr_1|\ud800"
    cursor = codec.encode(scope, GOLDEN_POSITION)
    assert codec.decode(scope, cursor, SHAPE) == GOLDEN_POSITION
    _refused(cursor, scope="publisher-listings|usr_1|\ud801")


# --------------------------------------------------------------------------- signing: construction


@pytest.mark.parametrize(
    ("keys", "error", "message"),
    [
        ([KEY], TypeError, "redeem keys must be a tuple of bytes"),
        ((), ValueError, "at least one redeem key is required"),
        ((KEY, "k" * 32), TypeError, "redeem key 2 of 2 is not bytes"),
    ],
)
def test_i_int_02_a_bad_key_set_is_refused_with_a_message_naming_the_problem(
    keys: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        RedeemVerifier(keys=keys)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("sources", "error", "message"),
    [
        ({"whs"}, TypeError, "allowed redeem sources must be a frozenset of str"),
        (frozenset(), ValueError, "at least one redeem source must be allowed"),
        (frozenset({"whs", ""}), ValueError, "redeem sources must be non-empty strings"),
    ],
)
def test_i_int_02_a_bad_source_set_is_refused_with_a_message_naming_the_problem(
    sources: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        RedeemVerifier(keys=(KEY,), allowed_sources=sources)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_i_int_02_the_smallest_skew_window_is_one_millisecond() -> None:
    verifier = RedeemVerifier(keys=(KEY,), max_skew_ms=1)
    signature = sign(BODY, KEY)
    for sent_at in (NOW - 1, NOW + 1):
        assert (
            verifier.verify(
                body=BODY, source="whs", timestamp=str(sent_at), signature=signature, now_ms=NOW
            )
            == "whs"
        )
    with pytest.raises(Unauthenticated):
        verifier.verify(
            body=BODY, source="whs", timestamp=str(NOW - 2), signature=signature, now_ms=NOW
        )
    with pytest.raises(ValueError, match=r"^max_skew_ms must be a positive integer$"):
        RedeemVerifier(keys=(KEY,), max_skew_ms=0)


# --------------------------------------------------------------------------- cursors: bounds

CURSOR_MESSAGE = "The cursor is malformed or does not belong to this query."


def test_r_pag_01_a_refused_cursor_says_why_in_one_message() -> None:
    with pytest.raises(ValidationFailed) as caught:
        CursorCodec(GOLDEN_KEY).decode(GOLDEN_SCOPE, GOLDEN_CURSOR + "x", SHAPE)
    assert [(f.field_name, f.message) for f in caught.value.fields] == [("cursor", CURSOR_MESSAGE)]


def test_r_pag_01_a_cursor_longer_than_2048_characters_is_refused_even_if_signed() -> None:
    codec = CursorCodec(GOLDEN_KEY)
    longest = codec.encode(GOLDEN_SCOPE, (1, "x" * 1508))
    assert len(longest) == 2047  # (2048 cannot be spelled: base64 lengths skip it)
    assert codec.decode(GOLDEN_SCOPE, longest, SHAPE) == (1, "x" * 1508)
    too_long = codec.encode(GOLDEN_SCOPE, (1, "x" * 1509))
    assert len(too_long) == 2049
    _refused(too_long)


@pytest.mark.parametrize("position", [(1,), (1, "lst_1", 2), ()])
def test_r_pag_01_a_signed_cursor_of_another_shape_is_refused(
    position: tuple[int | str, ...],
) -> None:
    """A cursor from a listing with another sort key (fewer or more components)."""
    _refused(CursorCodec(GOLDEN_KEY).encode(GOLDEN_SCOPE, position))


def test_u_tok_02_a_body_no_32_byte_value_encodes_is_refused_even_with_its_checksum() -> None:
    """43 base62 digits reach past 2**256: the first value past the range is not a token."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def base62(number: int, width: int) -> str:
        text = ""
        for _ in range(width):
            number, digit = divmod(number, 62)
            text = digits[digit] + text
        return text

    def token(value: int) -> str:
        body = "fpit_" + base62(value, 43)
        return body + base62(zlib.crc32(body.encode("ascii")), 6)

    assert has_valid_checksum(token(2**256 - 1))
    assert not has_valid_checksum(token(2**256))


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://localhost/", True),  # one label
        ("https://a.1.com/", True),  # a numeric label that is not the last
        ("https://example.123/", False),  # a numeric last label: only an IPv4 address
        ("https://1.2.3.4/", True),
    ],
)
def test_u_val_02_only_a_numeric_last_label_makes_a_host_an_ipv4_address(
    url: str, accepted: bool
) -> None:
    assert (url_problem(url) is None) is accepted
