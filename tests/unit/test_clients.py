"""The client address behind proxies (issue 14 item 12): ``X-Forwarded-For`` is believed
only from configured proxies, and read from the right."""

from __future__ import annotations

from typing import Any

import pytest

from fleetprompt_http.clients import TrustedProxies, parse_networks


def _scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {
        "client": (peer, 5000) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = TrustedProxies(parse_networks(["10.0.0.5", "192.168.0.0/16", "::1"]))


def test_by_default_nobody_is_trusted_and_the_header_is_ignored() -> None:
    """Default settings: the peer is the client, whatever ``X-Forwarded-For`` claims."""
    assert TrustedProxies().client(_scope("127.0.0.1", "203.0.113.7")) == "127.0.0.1"
    assert TrustedProxies().client(_scope("198.51.100.1", "203.0.113.7")) == "198.51.100.1"


def test_header_from_an_untrusted_peer_is_ignored() -> None:
    """A client that is not a listed proxy cannot name another address."""
    assert PROXIES.client(_scope("198.51.100.1", "203.0.113.7")) == "198.51.100.1"


def test_trusted_proxy_names_the_client() -> None:
    """The address a trusted proxy appended is the client."""
    assert PROXIES.client(_scope("10.0.0.5", "203.0.113.7")) == "203.0.113.7"


def test_values_a_client_put_in_front_are_never_reached() -> None:
    """The walk goes from the right and stops at the first address that is not a proxy:
    what the client wrote itself (left) is never believed."""
    spoofed = _scope("10.0.0.5", "1.2.3.4, 203.0.113.7, 192.168.1.20")
    assert PROXIES.client(spoofed) == "203.0.113.7"
    split = _scope("10.0.0.5", "1.2.3.4", "203.0.113.7")  # two header lines
    assert PROXIES.client(split) == "203.0.113.7"


def test_garbage_stops_at_the_proxy_that_passed_it_on() -> None:
    """An entry that is not an IP address is not a client: the last trusted hop is."""
    assert PROXIES.client(_scope("10.0.0.5", "not-an-ip")) == "10.0.0.5"
    assert PROXIES.client(_scope("10.0.0.5", "evil, not-an-ip, 192.168.1.2")) == "192.168.1.2"


def test_ports_and_ipv6_are_understood() -> None:
    """``v4:port`` and ``[v6]:port`` entries and an IPv6 proxy work."""
    assert PROXIES.client(_scope("::1", "203.0.113.7:4711")) == "203.0.113.7"
    assert PROXIES.client(_scope("10.0.0.5", "[2001:db8::1]:443")) == "2001:db8::1"


def test_no_peer_and_no_header() -> None:
    """Without a peer address there is no client; a trusted peer without a header is itself."""
    assert PROXIES.client(_scope(None, "203.0.113.7")) is None
    assert PROXIES.client(_scope("10.0.0.5")) == "10.0.0.5"


def test_bad_proxy_setting_is_refused() -> None:
    """A value that is not an address or network is a ``ValueError`` naming it."""
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks(["10.0.0.300"])
