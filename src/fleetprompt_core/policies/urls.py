"""URL policy of the contract (§3): which links and image URLs a listing may carry.

Every URL a publisher supplies (``links.docsUrl``, ``links.repoUrl``,
``images[].url``) ends up in an ``href`` or ``src`` attribute in somebody's
browser, so the policy is strict and allow-list shaped:

* ``https://`` only (the scheme is compared case-insensitively); everything
  else, including ``javascript:``, ``data:``, ``vbscript:``, ``file:``, ``http:``
  and protocol-relative ``//host`` URLs, is refused;
* at most :data:`MAX_URL_LENGTH` characters;
* no whitespace, control or invisible formatting characters anywhere (C0 and
  C1 controls, DEL, NUL, Unicode spaces and line separators, zero-width and
  bidirectional-override characters);
* no backslash (browsers treat ``\\`` like ``/``, which lets
  ``https://good.example\\@evil.example`` mean two different hosts to two
  different parsers) and none of ``"``, ``<``, ``>`` or a backtick (they are
  never legal unencoded in a URL and only ever help markup injection);
* no credentials (``user@`` or ``user:pass@``) in the authority;
* a host is required and must be a valid host name (ASCII letters, digits and
  hyphens in dot-separated labels; internationalised names in their
  ``xn--`` form), a dotted IPv4 address or a bracketed IPv6 address;
* a port, if present, is 1..65535 written in ASCII digits.

Image URLs must also point at a host on the operator's allowlist and must not
name an SVG file (:func:`image_url_problem`).

The functions return ``None`` for an acceptable URL and otherwise a short
message that is safe to show to a client. A message never repeats the URL.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote, urlsplit

import attrs

__all__ = [
    "MAX_URL_LENGTH",
    "image_url_problem",
    "normalize_host_allowlist",
    "url_problem",
]

MAX_URL_LENGTH = 2048
"""Longest URL accepted, in characters (§3)."""

_HTTPS_PREFIX = "https://"
_FORBIDDEN_CHARACTERS = frozenset('\\"<>`')
# Unicode categories refused anywhere in a URL: controls (C0, C1, DEL, NUL),
# format characters (zero-width, bidi overrides), surrogates, and separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_HOST_LENGTH = 253
_SVG_SUFFIXES = (".svg", ".svgz")
_MAX_UNQUOTE_ROUNDS = 3

_MSG_EMPTY = "URL must not be empty."
_MSG_TOO_LONG = f"URL must be at most {MAX_URL_LENGTH} characters."
_MSG_INVISIBLE = "URL must not contain whitespace or control characters."
_MSG_FORBIDDEN = 'URL must not contain backslashes, quotes, "<", ">" or backticks.'
_MSG_SCHEME = "URL must start with https://."
_MSG_MALFORMED = "URL is malformed."
_MSG_CREDENTIALS = "URL must not contain credentials."
_MSG_NO_HOST = "URL must include a host."
_MSG_BAD_HOST = "URL host is not a valid host name."
_MSG_BAD_PORT = "URL port must be a number from 1 to 65535."
_MSG_IMAGE_HOST = "Image URL host is not on the allowed image hosts list."
_MSG_IMAGE_SVG = "Image URL must not point at an SVG file."


@attrs.frozen
class _Parsed:
    """The parts of an accepted URL the image rules need."""

    host: str
    path: str


def url_problem(value: str) -> str | None:
    """Return ``None`` if *value* is an acceptable URL, else a safe message.

    The message is short, in plain English, and never contains the URL.
    This function never raises for any ``str``.
    """
    result = _parse(value)
    return result if isinstance(result, str) else None


def image_url_problem(value: str, allowed_hosts: frozenset[str]) -> str | None:
    """Return ``None`` if *value* is an acceptable image URL, else a safe message.

    The URL must first pass :func:`url_problem`. Then:

    * its host, lower-cased, must be on *allowed_hosts*. An entry matches a
      host exactly, except an entry of the form ``*.example.com``, which matches
      every subdomain of ``example.com`` at any depth (``cdn.example.com``,
      ``a.b.example.com``) but not ``example.com`` itself. Entries are compared
      as given: build the set with :func:`normalize_host_allowlist`. An empty
      allowlist rejects every image;
    * its path, percent-decoded, must not end with ``.svg`` or ``.svgz``
      (case-insensitively), so ``/logo.SVG`` and ``/logo%2Esvg`` are refused.
      The check is a heuristic against the obvious case; the host allowlist is
      the control that matters, and operators should only list hosts that
      serve raster images with a correct ``Content-Type``.
    """
    parsed = _parse(value)
    if isinstance(parsed, str):
        return parsed
    if not _host_allowed(parsed.host, allowed_hosts):
        return _MSG_IMAGE_HOST
    if _names_svg(parsed.path):
        return _MSG_IMAGE_SVG
    return None


def normalize_host_allowlist(hosts: Iterable[str]) -> frozenset[str]:
    """Trim and lower-case image host allowlist entries; drop empty ones.

    Each entry must be a host name (``images.example.com``), a wildcard
    (``*.example.com``, see :func:`image_url_problem`) or an IP address
    literal (IPv6 without brackets). A malformed entry (a URL, a path, a bare
    ``*``, a trailing dot) raises :class:`ValueError` naming it, so a bad
    configuration fails at start-up rather than silently matching nothing.
    """
    normalized: set[str] = set()
    for raw in hosts:
        entry = raw.strip().lower()
        if not entry:
            continue
        name = entry.removeprefix("*.")
        if not (_valid_host_name(name) or (name == entry and _valid_ipv6(name))):
            raise ValueError(f"image host allowlist entry {entry!r} is not a host name")
        normalized.add(entry)
    return frozenset(normalized)


def _parse(value: str) -> _Parsed | str:
    """Check *value* against the URL policy: the parts, or the problem message."""
    if not value:
        return _MSG_EMPTY
    if len(value) > MAX_URL_LENGTH:
        return _MSG_TOO_LONG
    if any(_invisible(ch) for ch in value):
        return _MSG_INVISIBLE
    if any(ch in _FORBIDDEN_CHARACTERS for ch in value):
        return _MSG_FORBIDDEN
    if value[: len(_HTTPS_PREFIX)].lower() != _HTTPS_PREFIX:
        return _MSG_SCHEME
    try:
        parts = urlsplit(value)
    except ValueError:
        return _MSG_MALFORMED
    return _check_authority(parts)


def _check_authority(parts: SplitResult) -> _Parsed | str:
    """Validate the authority (``host[:port]``) of an ``https`` URL."""
    netloc = parts.netloc
    if "@" in netloc:
        return _MSG_CREDENTIALS
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return _MSG_MALFORMED
        host, rest = netloc[1:end], netloc[end + 1 :]
        if not _valid_ipv6(host):
            return _MSG_BAD_HOST
        if rest and not rest.startswith(":"):
            return _MSG_MALFORMED
        port = rest[1:] if rest else None
    else:
        host, colon, port_text = netloc.partition(":")
        port = port_text if colon else None
        if not host:
            return _MSG_NO_HOST
        host = host.lower()
        if not _valid_host_name(host):
            return _MSG_BAD_HOST
    if port is not None and not _valid_port(port):
        return _MSG_BAD_PORT
    return _Parsed(host=host.lower(), path=parts.path)


def _invisible(ch: str) -> bool:
    """Whether *ch* is whitespace, a control or an invisible formatting character.

    Every character for which ``str.isspace`` is true is in one of these
    categories (ASCII and C1 whitespace controls are ``Cc``).
    """
    return unicodedata.category(ch) in _FORBIDDEN_CATEGORIES


def _valid_host_name(host: str) -> bool:
    """A DNS host name (LDH labels) or a dotted-quad IPv4 address, lower-case."""
    if not host or len(host) > _MAX_HOST_LENGTH:
        return False
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    if labels[-1].isdigit():
        # Browsers parse a host whose last label is numeric as an IPv4 address.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def _valid_ipv6(host: str) -> bool:
    """A bare IPv6 address without a zone id."""
    if "%" in host or not host.isascii():
        return False
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _valid_port(port: str) -> bool:
    """ASCII digits naming a port from 1 to 65535."""
    return _PORT.fullmatch(port) is not None and 1 <= int(port) <= 65535


def _host_allowed(host: str, allowed_hosts: frozenset[str]) -> bool:
    """Exact match, or a ``*.suffix`` entry matching a proper subdomain."""
    if host in allowed_hosts:
        return True
    labels = host.split(".")
    return any(f"*.{'.'.join(labels[i:])}" in allowed_hosts for i in range(1, len(labels)))


def _names_svg(path: str) -> bool:
    """Whether the percent-decoded *path* ends with an SVG file extension."""
    decoded = path
    for _ in range(_MAX_UNQUOTE_ROUNDS):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    return decoded.lower().endswith(_SVG_SUFFIXES)
