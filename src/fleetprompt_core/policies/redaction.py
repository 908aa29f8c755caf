"""The redaction step that runs before anything is logged (§10).

:func:`redact` copies a JSON-like value (dicts and other mappings, lists,
tuples, sets) and removes secrets from the copy:

* the value under a sensitive key becomes :data:`REDACTED`, whatever it is
  (see :func:`is_sensitive_key` for which keys are sensitive);
* every string, including mapping keys, goes through :func:`redact_text`;
* containers nested deeper than :data:`MAX_DEPTH` levels become
  :data:`REDACTED` (this also ends self-referencing structures);
* any other value (numbers, booleans, ``None``, bytes, objects) is returned
  unchanged.

:func:`redact_text` replaces, in free text,

* every FleetPrompt-shaped token (:data:`~fleetprompt_core.policies.tokens.TOKEN_PATTERN`),
  even glued to other characters (``token%3Dfpit_…``);
* the credential after ``Bearer`` (``Bearer [REDACTED]``);
* every JWT-shaped string (``eyJ….eyJ….…``);
* the value of a ``name=value`` pair whose name is sensitive
  (``?access_token=…``, ``password=…``).

All matches are found on the original text and their union is replaced, so one
rule can never cut another's match short and leave part of a secret behind.
Every pattern runs in time linear in the length of the text (no rule
backtracks over a long run), so an attacker-chosen log value cannot make
logging slow. Redaction errs on the side of removing too much; it never raises
for JSON-like input and, should anything unexpected go wrong, :func:`redact`
fails closed and returns :data:`REDACTED`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from fleetprompt_core.policies.tokens import TOKEN_PATTERN

__all__ = [
    "MAX_DEPTH",
    "REDACTED",
    "SENSITIVE_KEYS",
    "is_sensitive_key",
    "redact",
    "redact_text",
]

REDACTED = "[REDACTED]"
"""What a removed secret is replaced with."""

MAX_DEPTH = 32
"""Containers nested deeper than this many levels are replaced by :data:`REDACTED`."""

SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "client_secret",
        "cookie",
        "credentials",
        "id_token",
        "install_token",
        "installtoken",
        "passwd",
        "password",
        "private_key",
        "proxy-authorization",
        "refresh_token",
        "secret",
        "set-cookie",
        "signature",
        "token",
        "x-api-key",
        "x-whs-delegation-signature",
    }
)
"""Key names whose values are always redacted, lower-cased (matched normalised, see
:func:`is_sensitive_key`)."""

_SENSITIVE_SUFFIXES = (
    "apikey",
    "authorization",
    "cookie",
    "password",
    "secret",
    "signature",
    "token",
)
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]")


def _normalise(key: str) -> str:
    return _NON_ALPHANUMERIC.sub("", key.lower())


_NORMALISED_SENSITIVE_KEYS = frozenset(_normalise(key) for key in SENSITIVE_KEYS)

# Zero-width look-ahead: finds overlapping candidates, so a near-token just
# before a real one cannot swallow the real one's prefix.
_TOKEN_CANDIDATES = re.compile(f"(?=({TOKEN_PATTERN.pattern}))")
_BEARER_CANDIDATES = re.compile(r"(?=bearer\s++([A-Za-z0-9\-._~+/]++=*+))", re.IGNORECASE)
# A run of base64url characters and dots; JWTs are found inside runs (linear).
_DOTTED_RUN = re.compile(r"[A-Za-z0-9_\-.]++")
_JWT_MARK = "eyJ"
_PAIR_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)
_PAIR_NAME_MAX = 64
_PAIR_VALUE = re.compile(r"[^\s&;,\"'<>]*+")


def is_sensitive_key(key: str) -> bool:
    """Whether values under *key* are secret.

    The key is normalised (lower-cased, every character other than ``a-z`` and
    ``0-9`` removed, so ``installToken``, ``install_token``, ``Install-Token``
    and ``install.token`` are all ``installtoken``). It is sensitive if that
    form is one of :data:`SENSITIVE_KEYS` (normalised the same way) or ends with
    ``token``, ``secret``, ``password``, ``signature``, ``apikey``, ``cookie``
    or ``authorization``.
    """
    normalised = _normalise(key)
    return normalised in _NORMALISED_SENSITIVE_KEYS or normalised.endswith(_SENSITIVE_SUFFIXES)


def redact(value: object) -> object:
    """Return a copy of *value* with every secret replaced by :data:`REDACTED`.

    Mappings become ``dict``; lists, tuples, sets and frozensets keep their
    type. The input is never modified.
    """
    try:
        return _redact(value, 0)
    except Exception:  # fail closed: an unloggable value is not logged
        return REDACTED


def redact_text(text: str) -> str:
    """Return *text* with tokens, bearer credentials, JWTs and secret pairs replaced."""
    spans = sorted(_secret_spans(text))
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        pieces += (text[position:start], REDACTED)
        position, start, end = end, next_start, next_end
    pieces += (text[position:start], REDACTED, text[end:])
    return "".join(pieces)


def _redact(value: object, depth: int) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        return value
    if depth >= MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            _redact_key(key, depth): (
                REDACTED
                if isinstance(key, str) and is_sensitive_key(key)
                else _redact(item, depth + 1)
            )
            for key, item in value.items()
        }
    items = [_redact(item, depth + 1) for item in value]
    if isinstance(value, list):
        return items
    if isinstance(value, tuple):
        return tuple(items)
    if isinstance(value, set):
        return set(items)
    return frozenset(items)


def _redact_key(key: object, depth: int) -> object:
    if isinstance(key, str | tuple | frozenset):
        return _redact(key, depth + 1)
    return key


def _secret_spans(text: str) -> Iterator[tuple[int, int]]:
    """Every ``(start, end)`` range of *text* that holds a secret; may overlap."""
    for match in _TOKEN_CANDIDATES.finditer(text):
        yield match.span(1)
    for match in _BEARER_CANDIDATES.finditer(text):
        yield match.span(1)
    yield from _pair_spans(text)
    for run in _DOTTED_RUN.finditer(text):
        if _JWT_MARK in run[0]:
            yield from _jwt_spans(run[0], run.start())


def _jwt_spans(run: str, offset: int) -> Iterator[tuple[int, int]]:
    """JWS-shaped parts ``eyJ….eyJ….sig`` of a dotted run starting at *offset*.

    The header segment may have characters glued before ``eyJ`` (for example
    ``%3DeyJ…`` or an escaped ``\\neyJ…``): the span starts at its first ``eyJ``.
    """
    segments = run.split(".")
    starts = [0]
    for segment in segments:
        starts.append(starts[-1] + len(segment) + 1)
    for index in range(len(segments) - 2):
        header = segments[index].find(_JWT_MARK)
        if header >= 0 and segments[index + 1].startswith(_JWT_MARK):
            end = starts[index + 2] + len(segments[index + 2])
            yield offset + starts[index] + header, offset + end


def _pair_spans(text: str) -> Iterator[tuple[int, int]]:
    """Values of ``name=value`` pairs whose name is sensitive.

    The name is the run of ``[A-Za-z0-9_.-]`` (at most 64 characters) just
    before each ``=``; the value runs up to whitespace, ``&``, ``;``, ``,``, a
    quote, ``<`` or ``>``. Every ``=`` is examined, also inside another pair's
    value (``next=/cb?token=…``), but a value already redacted is not scanned
    again, which keeps this linear.
    """
    covered = 0
    equals = text.find("=")
    while equals >= 0:
        if equals >= covered:
            start = equals
            while (
                start > 0
                and equals - start < _PAIR_NAME_MAX
                and text[start - 1] in _PAIR_NAME_CHARACTERS
            ):
                start -= 1
            if start < equals and is_sensitive_key(text[start:equals]):
                value = _PAIR_VALUE.match(text, equals + 1)
                if value is not None and value.end() > equals + 1:
                    yield value.span()
                    covered = value.end()
        equals = text.find("=", equals + 1)
