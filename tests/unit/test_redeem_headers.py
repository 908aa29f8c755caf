"""The HTTP adapter reads a redeem request's headers (ADR 0020): values, duplicates and
browser context, from the raw ASGI header list."""

from __future__ import annotations

import pytest

from fleetprompt_http.redeem import RedeemHeaders, read_redeem_headers

GOOD = [
    (b"x-whs-delegation-source", b"whs"),
    (b"x-whs-delegation-timestamp", b"1732521600000"),
    (b"x-whs-delegation-signature", b"v1=" + b"a" * 64),
    (b"content-type", b"application/json"),
]


def test_clean_server_request_reads_the_three_values() -> None:
    """A server's request gives the three values, no duplicate, no browser context."""
    assert read_redeem_headers(GOOD) == RedeemHeaders(
        source="whs", timestamp="1732521600000", signature="v1=" + "a" * 64
    )


def test_header_names_compare_case_insensitively() -> None:
    """Names in any case are read (ASGI servers lower-case them; embedders may not)."""
    mixed = [(name.upper(), value) for name, value in GOOD]
    assert read_redeem_headers(mixed) == read_redeem_headers(GOOD)


@pytest.mark.parametrize(
    "marker",
    [b"origin", b"Origin", b"cookie", b"COOKIE", b"sec-fetch-site", b"sec-fetch-mode"],
)
def test_browser_markers_mark_a_browser_context(marker: bytes) -> None:
    """An Origin, any cookie (even empty) or Sec-Fetch metadata marks a browser context."""
    read = read_redeem_headers([*GOOD, (marker, b"")])
    assert read.browser_context
    assert read.source == "whs"


@pytest.mark.parametrize(
    "extra",
    [
        (b"x-whs-delegation-source", b"attacker-spoofed-source"),
        (b"x-whs-delegation-source", b"whs"),
        (b"x-whs-delegation-timestamp", b"1732521600000"),
        (b"x-whs-delegation-signature", b"v1=" + b"b" * 64),
    ],
)
def test_a_delegation_header_sent_twice_is_a_duplicate_with_no_value(
    extra: tuple[bytes, bytes],
) -> None:
    """Issue 14 item 2: a second line of any delegation header is flagged, and neither
    value is taken (the transport never picks one of two sources)."""
    read = read_redeem_headers([extra, *GOOD])
    assert read.duplicate_header
    name = extra[0].decode().rsplit("-", 1)[1]
    assert getattr(read, name) is None


@pytest.mark.parametrize(
    "joined",
    [
        (b"x-whs-delegation-source", b"attacker-spoofed-source, whs"),
        (b"x-whs-delegation-timestamp", b"1732521600000,1732521600001"),
    ],
)
def test_values_joined_by_an_intermediary_are_duplicates(joined: tuple[bytes, bytes]) -> None:
    """A comma in the source or timestamp is two header lines joined (RFC 9110 §5.3)."""
    headers = [joined, *(h for h in GOOD if h[0] != joined[0])]
    assert read_redeem_headers(headers).duplicate_header


def test_a_signature_list_is_not_a_duplicate() -> None:
    """Several comma-separated ``v1=`` values in one line are key rotation, not a duplicate."""
    rotated = [
        (n, b"v1=" + b"a" * 64 + b",v1=" + b"b" * 64) if n.endswith(b"signature") else (n, v)
        for n, v in GOOD
    ]
    assert not read_redeem_headers(rotated).duplicate_header


def test_missing_headers_read_as_none() -> None:
    """An absent header is ``None``; the core's verifier refuses it."""
    assert read_redeem_headers([]) == RedeemHeaders()
