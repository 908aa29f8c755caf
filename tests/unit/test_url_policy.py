"""The URL policy of §3 (U-VAL-02): links and image URLs."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.policies.urls import (
    MAX_URL_LENGTH,
    image_url_problem,
    normalize_host_allowlist,
    url_problem,
)

_LONG_PREFIX = "https://example.com/"

_INVISIBLE = [
    chr(c)
    for c in range(0x110000)
    if chr(c).isspace() or unicodedata.category(chr(c)) in {"Cc", "Cf", "Zs", "Zl", "Zp"}
]


def test_u_val_02_every_whitespace_and_control_character_is_rejected() -> None:
    """Each Unicode whitespace, control and format character is refused in host, path and query."""
    assert len(_INVISIBLE) > 200
    for ch in _INVISIBLE:
        for url in (
            f"https://exa{ch}mple.com/",
            f"https://example.com/a{ch}b",
            f"https://example.com/?q={ch}",
        ):
            assert url_problem(url) == "URL must not contain whitespace or control characters.", (
                hex(ord(ch))
            )


UNSAFE_URLS = [
    pytest.param("", id="empty"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("JaVaScRiPt:alert(1)", id="javascript-mixed-case"),
    pytest.param("javascript://example.com/%0Aalert(1)", id="javascript-with-slashes"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("data:image/png;base64,iVBORw0KGgo=", id="data-image"),
    pytest.param("vbscript:msgbox(1)", id="vbscript"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("http://example.com/", id="http"),
    pytest.param("HTTP://example.com/", id="http-upper"),
    pytest.param("ftp://example.com/", id="ftp"),
    pytest.param("//evil.com/x", id="protocol-relative"),
    pytest.param("/relative/path", id="relative"),
    pytest.param("example.com", id="no-scheme"),
    pytest.param("https:example.com", id="https-without-slashes"),
    pytest.param("https:/example.com", id="https-one-slash"),
    pytest.param("https://user:pass@x.com/", id="user-and-password"),
    pytest.param("https://user@x.com/", id="user"),
    pytest.param("https://:pass@x.com/", id="password-only"),
    pytest.param("https://good.com@evil.com/", id="host-looking-credentials"),
    pytest.param("https://exa mple.com", id="space-in-host"),
    pytest.param("https://example.com/a b", id="space-in-path"),
    pytest.param(" https://example.com/", id="leading-space"),
    pytest.param("https://example.com/ ", id="trailing-space"),
    pytest.param("https://example.com/\t", id="tab"),
    pytest.param("https://exam\tple.com/", id="tab-in-host"),
    pytest.param("https://example.com/\n", id="newline"),
    pytest.param("https://example.com/\r", id="carriage-return"),
    pytest.param("java\nscript:alert(1)", id="newline-in-scheme"),
    pytest.param("https://example.com/\x00", id="nul"),
    pytest.param("\x00https://example.com/", id="leading-nul"),
    pytest.param("https://example.com/\x7f", id="del"),
    pytest.param("https://example.com/\x85", id="c1-next-line"),
    pytest.param("https://example.com/\x9b", id="c1-csi"),
    pytest.param("https://example.com/\u00a0", id="no-break-space"),
    pytest.param("https://example.com/\u2028", id="line-separator"),
    pytest.param("https://example.com/\u3000", id="ideographic-space"),
    pytest.param("https://example.com/\u200b", id="zero-width-space"),
    pytest.param("https://example.com/\u202e", id="bidi-override"),
    pytest.param("https://example.com/\ufeff", id="byte-order-mark"),
    pytest.param("https://example.com/\ud800", id="lone-surrogate"),
    pytest.param(_LONG_PREFIX + "a" * (MAX_URL_LENGTH + 1 - len(_LONG_PREFIX)), id="2049-chars"),
    pytest.param("https:///path", id="no-host"),
    pytest.param("https://", id="scheme-only"),
    pytest.param("https://?q=1", id="query-without-host"),
    pytest.param("https://:443/", id="port-without-host"),
    pytest.param("https:\\\\evil.com", id="backslashes-instead-of-slashes"),
    pytest.param("https://good.com\\@evil.com/", id="backslash-before-at"),
    pytest.param("https://example.com\\path", id="backslash-in-path"),
    pytest.param("https://example.com:0/", id="port-zero"),
    pytest.param("https://example.com:65536/", id="port-too-large"),
    pytest.param("https://example.com:99999999/", id="port-far-too-large"),
    pytest.param("https://example.com:-1/", id="port-negative"),
    pytest.param("https://example.com:+443/", id="port-with-sign"),
    pytest.param("https://example.com:http/", id="port-not-a-number"),
    pytest.param("https://example.com:\u0664\u0664\u0663/", id="port-arabic-digits"),
    pytest.param("https://example.com:/", id="port-empty"),
    pytest.param("https://example.com:443:443/", id="two-ports"),
    pytest.param("https://[::1/", id="unclosed-ipv6-bracket"),
    pytest.param("https://::1]/", id="unopened-ipv6-bracket"),
    pytest.param("https://[not-an-ip]/", id="bracketed-non-address"),
    pytest.param("https://[fe80::1%25eth0]/", id="ipv6-zone-id"),
    pytest.param("https://[::1]junk/", id="junk-after-ipv6"),
    pytest.param("https://exa_mple.com/", id="underscore-in-host"),
    pytest.param("https://-example.com/", id="label-starts-with-hyphen"),
    pytest.param("https://example-.com/", id="label-ends-with-hyphen"),
    pytest.param("https://example..com/", id="empty-label"),
    pytest.param("https://example.com./", id="trailing-dot"),
    pytest.param("https://" + "a" * 64 + ".com/", id="label-too-long"),
    pytest.param("https://ex%61mple.com/", id="percent-in-host"),
    pytest.param("https://exa!mple.com/", id="punctuation-in-host"),
    pytest.param("https://b\u00fccher.example/", id="unicode-host"),
    pytest.param("https://1.2.3.4.5/", id="five-part-ipv4"),
    pytest.param("https://256.0.0.1/", id="ipv4-octet-too-large"),
    pytest.param('https://example.com/"onmouseover="alert(1)', id="double-quote"),
    pytest.param("https://example.com/<script>", id="angle-brackets"),
    pytest.param("https://example.com/`", id="backtick"),
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_u_val_02_url_policy_rejects_unsafe_urls(url: str) -> None:
    """Every unsafe or malformed URL gets a problem message that does not echo the URL."""
    problem = url_problem(url)
    assert problem is not None
    assert problem
    if len(url) >= 4:
        assert url not in problem
    # The same URL is not acceptable as an image either, whatever the allowlist.
    assert image_url_problem(url, frozenset({"example.com", "x.com", "*.com"})) is not None


SAFE_URLS = [
    "https://example.com",
    "https://example.com/",
    "https://docs.example.com/guide/intro.html?lang=en#install",
    "HTTPS://EXAMPLE.COM/Path",
    "hTtPs://example.com/",
    "https://example.com:443/",
    "https://example.com:1/",
    "https://example.com:65535/",
    "https://xn--bcher-kva.example/",
    "https://a-b.c-d.example/",
    "https://203.0.113.7/",
    "https://[2001:db8::1]/",
    "https://[2001:db8::1]:8443/x",
    "https://github.com/org/repo/blob/main/README.md",
    "https://example.com/@user",
    "https://example.com/?next=https://example.org/",
    "https://example.com/%20encoded%0Aspace",
    "https://example.com/caf\u00e9",
    "https://" + "a" * 63 + ".com/",
    _LONG_PREFIX + "a" * (MAX_URL_LENGTH - len(_LONG_PREFIX)),
]


@pytest.mark.parametrize("url", SAFE_URLS)
def test_u_val_02_url_policy_accepts_https_urls(url: str) -> None:
    """Well-formed https URLs, up to exactly 2048 characters, are accepted."""
    assert url_problem(url) is None


def test_u_val_02_url_policy_boundary_is_2048_characters() -> None:
    """2048 characters pass and 2049 do not, with a message naming the limit."""
    at_limit = _LONG_PREFIX + "a" * (MAX_URL_LENGTH - len(_LONG_PREFIX))
    assert len(at_limit) == MAX_URL_LENGTH == 2048
    assert url_problem(at_limit) is None
    problem = url_problem(at_limit + "a")
    assert problem is not None
    assert "2048" in problem


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://example.com/", "https"),
        ("https://user:pass@x.com/", "credentials"),
        ("https://example.com/\t", "whitespace"),
        ("https:///path", "include a host"),
        ("https://exa_mple.com/", "not a valid host name"),
        ("https://example.com:65536/", "port"),
        ("https://[::1/", "malformed"),
        ("https://example.com\\x", "backslash"),
    ],
)
def test_u_val_02_url_problem_names_the_rule(url: str, fragment: str) -> None:
    """Each kind of problem gets its own message, so the publisher knows what to fix."""
    problem = url_problem(url)
    assert problem is not None
    assert fragment in problem.lower()


_PNG = "https://images.example.com/logo.png"


def test_u_val_02_image_urls_need_allowlisted_host_and_no_svg() -> None:
    """Images need an allowlisted host (exact or *.suffix, never empty) and must not be SVG."""
    allowed = normalize_host_allowlist(["images.example.com", "*.cdn.example.net"])

    # Empty allowlist: every image is rejected, even a perfectly good one.
    assert url_problem(_PNG) is None
    assert image_url_problem(_PNG, frozenset()) is not None

    # Exact host, compared case-insensitively on the URL side.
    assert image_url_problem(_PNG, allowed) is None
    assert image_url_problem("https://IMAGES.Example.COM/logo.png", allowed) is None
    assert image_url_problem("https://images.example.com:8443/logo.png", allowed) is None
    assert image_url_problem("https://other.example.com/logo.png", allowed) is not None
    assert image_url_problem("https://example.com/logo.png", allowed) is not None
    assert image_url_problem("https://x.images.example.com/logo.png", allowed) is not None
    assert image_url_problem("https://images.example.com.evil.net/logo.png", allowed) is not None

    # Wildcard: any subdomain at any depth, but not the bare domain or a look-alike.
    assert image_url_problem("https://a.cdn.example.net/i.png", allowed) is None
    assert image_url_problem("https://a.b.cdn.example.net/i.png", allowed) is None
    assert image_url_problem("https://cdn.example.net/i.png", allowed) is not None
    assert image_url_problem("https://evilcdn.example.net/i.png", allowed) is not None
    assert image_url_problem("https://a.cdn.example.net.evil.com/i.png", allowed) is not None

    # SVG in any case and in percent-encoded form.
    for path in ("/a.svg", "/a.SVG", "/a.SvG", "/a%2esvg", "/a%2Esvg", "/a.%73vg", "/a%252esvg"):
        assert image_url_problem(f"https://images.example.com{path}", allowed) is not None, path
    assert image_url_problem("https://images.example.com/a.svgz", allowed) is not None
    assert image_url_problem("https://images.example.com/a.svg?v=1#x", allowed) is not None
    assert image_url_problem("https://images.example.com/svg/a.png", allowed) is None
    assert image_url_problem("https://images.example.com/a.png?format=svg", allowed) is None

    # The general URL policy still applies first.
    assert image_url_problem("http://images.example.com/a.png", allowed) is not None
    assert image_url_problem("https://u@images.example.com/a.png", allowed) is not None


def test_u_val_02_image_problems_are_distinct_and_do_not_echo_the_url() -> None:
    """Host and SVG problems have their own messages, and neither repeats the URL."""
    allowed = frozenset({"images.example.com"})
    host_problem = image_url_problem("https://elsewhere.example.com/a.png", allowed)
    svg_problem = image_url_problem("https://images.example.com/a.svg", allowed)
    assert host_problem is not None
    assert svg_problem is not None
    assert host_problem != svg_problem
    assert "elsewhere" not in host_problem
    assert "a.svg" not in svg_problem


def test_u_val_02_image_ipv6_host_matches_bare_allowlist_entry() -> None:
    """An IPv6 image host is matched without its brackets."""
    allowed = normalize_host_allowlist(["2001:db8::1"])
    assert image_url_problem("https://[2001:db8::1]/a.png", allowed) is None
    assert image_url_problem("https://[2001:db8::2]/a.png", allowed) is not None


def test_normalize_host_allowlist_trims_lowercases_and_drops_blanks() -> None:
    """Allowlist entries are trimmed and lower-cased; blank entries are dropped."""
    assert normalize_host_allowlist(
        ["  Images.Example.COM ", "", "   ", "*.CDN.example.net", "images.example.com"]
    ) == frozenset({"images.example.com", "*.cdn.example.net"})
    assert normalize_host_allowlist([]) == frozenset()


@pytest.mark.parametrize(
    "entry",
    ["https://images.example.com", "images.example.com/path", "*", "*.", "a.*.com", "bad host"],
)
def test_normalize_host_allowlist_rejects_malformed_entries(entry: str) -> None:
    """A malformed allowlist entry is a configuration error, not a silent no-match."""
    with pytest.raises(ValueError, match="allowlist"):
        normalize_host_allowlist([entry])


@given(st.text(max_size=300))
def test_u_val_02_url_problem_never_raises_and_accepts_only_https(value: str) -> None:
    """For arbitrary text, url_problem answers; what it accepts is https with no whitespace."""
    problem = url_problem(value)
    image_problem = image_url_problem(value, frozenset({"example.com", "*.example.com"}))
    if problem is None:
        assert value[:8].lower() == "https://"
        assert not any(ch.isspace() for ch in value)
    else:
        assert image_problem is not None


_LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_PATHS = st.from_regex(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}", fullmatch=True)


@given(
    labels=st.lists(_LABELS, min_size=1, max_size=4),
    tld=st.sampled_from(["com", "org", "example", "dev"]),
    port=st.none() | st.integers(min_value=1, max_value=65535),
    path=_PATHS,
    scheme=st.sampled_from(["https", "HTTPS", "Https"]),
)
def test_u_val_02_url_policy_accepts_generated_https_urls(
    labels: list[str], tld: str, port: int | None, path: str, scheme: str
) -> None:
    """Any https URL built from valid host labels, an optional valid port and a path passes."""
    host = ".".join([*labels, tld])
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    assert url_problem(url) is None
