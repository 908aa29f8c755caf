"""Semantic versions and the latest release (contract §14, X-CAT-03; ADR 0023).

The precedence is checked three ways: the examples of SemVer 2.0.0 §11,
hypothesis properties (a total order, pre-release below its release, numeric
identifiers compare numerically) and, for generated versions, agreement with
an independent implementation (python-semver) used as an oracle.
"""

from __future__ import annotations

import itertools
import random

import pytest
import semver as oracle
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.policies.validation import VERSION_PATTERN
from fleetprompt_core.policies.versions import (
    SemVer,
    VersionCandidate,
    latest,
    parse_semver,
    semver_warning,
)

# SemVer 2.0.0 §11.4, in ascending precedence.
SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
]

NOT_SEMVER = [
    "v1.0.0",
    "1.0",
    "1",
    "latest",
    "01.0.0",
    "1.02.0",
    "1.0.0-01",
    "1.0.0-",
    "1.0.0+",
    "1.0.0-a..b",
    "1.0.0+a..b",
    "1.0.0-beta+",
    "1.0.0.0",
    "-1.0.0",
]


def precedence(version: str) -> object:
    parsed = parse_semver(version)
    assert parsed is not None, version
    return parsed.precedence


def test_x_cat_03_spec_examples_are_in_precedence_order() -> None:
    """The §11 examples sort exactly as the specification lists them, from any shuffle."""
    shuffled = SPEC_ORDER[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(shuffled, key=precedence) == SPEC_ORDER  # type: ignore[arg-type]


@pytest.mark.parametrize("version", NOT_SEMVER)
def test_x_cat_03_versions_outside_the_grammar_are_not_semver(version: str) -> None:
    """Leading zeros, missing parts, a v prefix, empty identifiers: not semantic versions."""
    assert parse_semver(version) is None
    assert semver_warning(version) is not None


def test_x_cat_03_parse_reads_every_part() -> None:
    """Major, minor, patch, pre-release and build identifiers are read as written."""
    assert parse_semver("1.20.3-rc.1.x-y+build.007") == SemVer(
        1, 20, 3, ("rc", "1", "x-y"), ("build", "007")
    )
    assert semver_warning("1.20.3-rc.1") is None


def test_x_cat_03_build_metadata_does_not_change_precedence() -> None:
    """1.0.0+a and 1.0.0+b have equal precedence (§10)."""
    assert precedence("1.0.0+a") == precedence("1.0.0+b") == precedence("1.0.0")


# -- generated versions -----------------------------------------------------------------

_numbers = st.integers(min_value=0, max_value=10**12)
_alnum = st.text("0123456789abcXYZ-", min_size=1, max_size=4).filter(lambda s: not s.isdigit())
_pre_identifier = st.one_of(_numbers.map(str), _alnum)
_build_identifier = st.text("0123456789abZ-", min_size=1, max_size=4)


@st.composite
def semvers(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(_numbers)) for _ in range(3))
    pre = draw(st.lists(_pre_identifier, max_size=3))
    build = draw(st.lists(_build_identifier, max_size=2))
    return core + ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")


def _cmp(a: str, b: str) -> int:
    pa, pb = precedence(a), precedence(b)
    return (pa > pb) - (pa < pb)  # type: ignore[operator]


@given(semvers())
def test_x_cat_03_every_generated_semver_parses_and_matches_the_contract_pattern(v: str) -> None:
    """Generated versions are semantic versions (and valid release versions when short)."""
    assert parse_semver(v) is not None
    assert oracle.Version.is_valid(v)
    if len(v) <= 64:
        assert VERSION_PATTERN.fullmatch(v)


@given(semvers(), semvers())
def test_x_cat_03_precedence_agrees_with_an_independent_implementation(a: str, b: str) -> None:
    """Our comparison equals python-semver's for any two versions."""
    assert _cmp(a, b) == oracle.Version.parse(a).compare(b)


@given(semvers(), semvers(), semvers())
def test_x_cat_03_precedence_is_a_total_order(a: str, b: str, c: str) -> None:
    """Antisymmetric, transitive and total (ties only between equal precedences)."""
    assert _cmp(a, b) == -_cmp(b, a)
    if _cmp(a, b) <= 0 and _cmp(b, c) <= 0:
        assert _cmp(a, c) <= 0
    for x, y in itertools.permutations((a, b, c), 2):
        assert _cmp(x, y) in (-1, 0, 1)


@given(semvers(), st.lists(_pre_identifier, min_size=1, max_size=3))
def test_x_cat_03_a_prerelease_is_below_its_release(v: str, pre: list[str]) -> None:
    """X.Y.Z-anything < X.Y.Z."""
    release = v.split("+", maxsplit=1)[0].split("-", maxsplit=1)[0]
    assert _cmp(f"{release}-{'.'.join(pre)}", release) == -1


@given(_numbers, _numbers)
def test_x_cat_03_numeric_identifiers_compare_numerically(m: int, n: int) -> None:
    """1.0.0-m < 1.0.0-n and m.0.0 < n.0.0 exactly when m < n (not as text: 2 < 11)."""
    assert _cmp(f"1.0.0-{m}", f"1.0.0-{n}") == (m > n) - (m < n)
    assert _cmp(f"{m}.0.0", f"{n}.0.0") == (m > n) - (m < n)
    assert _cmp(f"1.{m}.0", f"1.{n}.0") == (m > n) - (m < n)


# -- choosing the latest ----------------------------------------------------------------


def _candidates(*specs: tuple[str, int]) -> list[VersionCandidate]:
    return [VersionCandidate(f"rel_{i}", version, at) for i, (version, at) in enumerate(specs)]


def _latest(*specs: tuple[str, int]) -> str | None:
    chosen = latest(_candidates(*specs))
    return None if chosen is None else chosen.version


def test_x_cat_03_latest_is_the_highest_version_not_the_newest() -> None:
    """1.0.0 then a 0.9.0 backport: 1.0.0 stays latest (issue 14 item 7)."""
    assert _latest(("1.0.0", 1), ("0.9.0", 2)) == "1.0.0"
    assert _latest(("1.9.0", 1), ("1.10.0", 0)) == "1.10.0"


def test_x_cat_03_prereleases_only_when_nothing_else_exists() -> None:
    """A pre-release is latest only when there is no stable and no non-semver release."""
    assert _latest(("1.0.0", 1), ("2.0.0-rc.1", 2)) == "1.0.0"
    assert _latest(("nightly", 1), ("2.0.0-rc.1", 2)) == "nightly"
    assert _latest(("2.0.0-rc.1", 1), ("2.0.0-beta.3", 2)) == "2.0.0-rc.1"


def test_x_cat_03_non_semver_versions_come_after_semver_by_publish_time() -> None:
    """Non-semver versions rank below every stable semver; among them the newest wins."""
    assert _latest(("0.0.1", 1), ("v9", 5)) == "0.0.1"
    assert _latest(("v1.0", 1), ("latest", 3), ("v2.0", 2)) == "latest"


def test_x_cat_03_equal_precedence_goes_to_the_later_publish_then_the_greater_id() -> None:
    """1.0.0+a and 1.0.0+b: the one published later; same time: the greater release id."""
    assert _latest(("1.0.0+a", 2), ("1.0.0+b", 1)) == "1.0.0+a"
    chosen = latest(_candidates(("1.0.0+a", 1), ("1.0.0+b", 1)))
    assert chosen is not None
    assert chosen.release_id == "rel_1"


def test_x_cat_03_latest_of_nothing_is_none() -> None:
    """No published release ⇒ no latest."""
    assert latest([]) is None


@given(st.lists(st.tuples(st.one_of(semvers(), st.sampled_from(NOT_SEMVER)), _numbers), max_size=8))
def test_x_cat_03_latest_does_not_depend_on_order(specs: list[tuple[str, int]]) -> None:
    """Any permutation of the candidates gives the same latest release."""
    candidates = _candidates(*specs)
    assert latest(candidates) == latest(list(reversed(candidates)))
    assert latest(candidates) == latest(sorted(candidates, key=lambda c: c.version))
