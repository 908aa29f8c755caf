"""Semantic versions and which release is "latest" (contract §14, X-CAT-03; ADR 0023).

A release's ``version`` is 1..64 characters of ``[0-9A-Za-z.+-]``; semantic
versioning is recommended, not required. This module is the one place that
knows SemVer 2.0.0:

* :func:`parse_semver` reads ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`` exactly
  as the specification's grammar (§2, §9, §10): no leading zeros in numeric
  identifiers, no empty identifiers, no ``v`` prefix;
* :attr:`SemVer.precedence` is a key whose natural order is the §11 precedence:
  major, minor and patch compare numerically; a pre-release has lower
  precedence than its release; pre-release identifiers compare one by one,
  numeric ones numerically and below alphanumeric ones, which compare in ASCII
  order; a longer set of identifiers wins when all before are equal. Build
  metadata is ignored;
* :func:`latest` picks the latest among published releases: the highest
  *stable* (non-pre-release) semantic version; if there is none, the newest
  published version that is not semver; if there is none either, the highest
  pre-release. Ties (equal precedence: versions differing only in build
  metadata) go to the later publish time, then the greater release id, so the
  answer never depends on storage order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final, TypeAlias, TypeVar

import attrs

__all__ = [
    "Precedence",
    "SemVer",
    "VersionCandidate",
    "latest",
    "parse_semver",
    "semver_warning",
]

_NUMBER: Final = r"(?:0|[1-9][0-9]*)"
_PRE_IDENTIFIER: Final = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER: Final = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_PRE_IDENTIFIER}(?:\.{_PRE_IDENTIFIER})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)

#: One pre-release identifier in precedence form: ``(0, n)`` numeric, ``(1, text)`` otherwise.
_Identifier: TypeAlias = tuple[int, int] | tuple[int, str]
#: ``(major, minor, patch, (1,) | (0, identifiers))``: sorts as SemVer 2.0.0 §11.
Precedence: TypeAlias = tuple[int, int, int, tuple[int, tuple[_Identifier, ...]]]

_CLASSIFY_CACHE: Final = 16_384
_STABLE: Final = 2
_NOT_SEMVER: Final = 1
_PRERELEASE: Final = 0

_WARNING: Final = (
    "is not a semantic version (MAJOR.MINOR.PATCH, for example 1.4.0 or 2.0.0-rc.1): "
    "it is accepted, but it ranks below every semantic version when choosing the latest release"
)


@attrs.frozen
class SemVer:
    """A parsed semantic version."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def precedence(self) -> Precedence:
        """A key whose ``<`` is SemVer precedence (build metadata ignored)."""
        if not self.prerelease:
            return (self.major, self.minor, self.patch, (1, ()))
        identifiers = tuple(_identifier(part) for part in self.prerelease)
        return (self.major, self.minor, self.patch, (0, identifiers))


def _identifier(part: str) -> _Identifier:
    return (0, int(part)) if part.isdigit() else (1, part)


def parse_semver(version: str) -> SemVer | None:
    """The semantic version ``version`` spells, or ``None`` when it is not one."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        return None
    pre, build = match["pre"], match["build"]
    return SemVer(
        major=int(match["major"]),
        minor=int(match["minor"]),
        patch=int(match["patch"]),
        prerelease=tuple(pre.split(".")) if pre else (),
        build=tuple(build.split(".")) if build else (),
    )


def semver_warning(version: str) -> str | None:
    """What to tell a publisher about ``version``: ``None`` for a semantic version."""
    return None if parse_semver(version) is not None else _WARNING


@attrs.frozen
class VersionCandidate:
    """What choosing the latest release needs to know about one published release."""

    release_id: str
    version: str
    published_at_ms: int


C = TypeVar("C", bound=VersionCandidate)


@functools.lru_cache(maxsize=_CLASSIFY_CACHE)
def _classify(version: str) -> tuple[int, Precedence | tuple[()]]:
    """The class (stable, not semver, pre-release) and precedence of a version string.

    Pure, so memoised: a listing's versions are read again on every detail
    view, and parsing is most of the cost of choosing the latest.
    """
    parsed = parse_semver(version)
    if parsed is None:
        return (_NOT_SEMVER, ())
    return (_PRERELEASE if parsed.is_prerelease else _STABLE, parsed.precedence)


def _rank(candidate: VersionCandidate) -> tuple[int, Precedence | tuple[()], int, str]:
    rank, precedence = _classify(candidate.version)
    return (rank, precedence, candidate.published_at_ms, candidate.release_id)


def latest(candidates: Iterable[C]) -> C | None:
    """The latest of some published, non-revoked releases (see the module docstring).

    The caller passes only releases that may be installed; ``None`` when there
    are none.
    """
    return max(candidates, key=_rank, default=None)
