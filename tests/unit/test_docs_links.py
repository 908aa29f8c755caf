"""The documentation stands on its own: every markdown link resolves inside the repository.

A relative link must name a file or folder of the repository (and, for a
``#fragment`` into a markdown file, one of its headings); a link may leave the
repository only for the well-known documentation hosts in ``EXTERNAL_HOSTS``.
Nothing tracked may point at the workspace outside the repository (``../shared``)
where the contract used to live: it is ``docs/contract.md`` now.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[2]

#: Hosts a document may link to: the reference pages of tools and formats the
#: project follows. Anything else is either inside the repository or a mistake.
EXTERNAL_HOSTS = frozenset(
    {
        "nox.thea.codes",
        "keepachangelog.com",
        "semver.org",
        "docs.python.org",
        "packaging.python.org",
        "pre-commit.com",
        "hypothesis.readthedocs.io",
        "mutmut.readthedocs.io",
        "docs.litestar.dev",
        "docs.sqlalchemy.org",
        "alembic.sqlalchemy.org",
        "www.attrs.org",
        "www.python-httpx.org",
        "modelcontextprotocol.io",
        "www.rfc-editor.org",
        "pages.nist.gov",
        "cheatsheetseries.owasp.org",
        "developer.mozilla.org",
    }
)


def _markdown_files() -> list[Path]:
    """The tracked markdown files (or, outside a git checkout, every one not ignored)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.md"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        paths = [ROOT / name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - an sdist
        skip = {".git", ".nox", ".venv", "node_modules"}
        paths = [p for p in ROOT.rglob("*.md") if not skip & set(p.relative_to(ROOT).parts)]
    return sorted(p for p in paths if p.is_file())


def _links(tokens: list[Token]) -> list[str]:
    found: list[str] = []
    for token in tokens:
        if token.type == "link_open":
            found.append(str(token.attrs.get("href", "")))
        elif token.type == "image":
            found.append(str(token.attrs.get("src", "")))
        if token.children:
            found.extend(_links(token.children))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            base = _slug("".join(c.content for c in inline.children or () if c.content))
            anchor, n = base, 0
            while anchor in anchors:
                n += 1
                anchor = f"{base}-{n}"
            anchors.add(anchor)
    return anchors


def _problem(source: Path, href: str) -> str | None:
    """What is wrong with one link of ``source`` (``None`` if it resolves)."""
    parts = urlsplit(href)
    if parts.scheme in {"http", "https"}:
        if parts.hostname not in EXTERNAL_HOSTS:
            return f"leaves the repository for {parts.hostname} (not in EXTERNAL_HOSTS)"
        return None
    if parts.scheme or parts.netloc:
        return f"uses the {parts.scheme or '//'} scheme"
    target = source if not parts.path else (source.parent / unquote(parts.path)).resolve()
    if not target.is_relative_to(ROOT):
        return "points outside the repository"
    if not target.exists():
        return "points at a missing file"
    if parts.fragment and target.suffix == ".md" and parts.fragment not in _anchors(target):
        return f"names a heading #{parts.fragment} that {target.name} does not have"
    return None


def _all_links() -> list[tuple[Path, str]]:
    parser = MarkdownIt("commonmark")
    return [
        (path, href)
        for path in _markdown_files()
        for href in _links(parser.parse(path.read_text(encoding="utf-8")))
    ]


def test_every_markdown_link_resolves_inside_the_repository() -> None:
    links = _all_links()
    assert len(links) > 20, "the link check found almost no links: is it reading the docs?"
    problems = [
        f"{path.relative_to(ROOT)}: ({href}) {problem}"
        for path, href in links
        if (problem := _problem(path, href)) is not None
    ]
    assert problems == []


def test_nothing_tracked_points_at_the_workspace_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", r"\.\./(shared|seed)/", "--", "."],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode not in (0, 1):  # pragma: no cover - not a git checkout
        pytest.skip("needs a git checkout to list the tracked files")
    this = "tests/unit/test_docs_links.py:"  # its own examples of what must not resolve
    hits = [line for line in listed.stdout.splitlines() if not line.startswith(this)]
    assert hits == []


@pytest.mark.parametrize(
    ("href", "problem"),
    [
        ("contract.md", None),
        ("contract.md#6-idempotency", None),
        ("#house-rules", None),
        ("../adr/", None),
        ("https://keepachangelog.com/en/1.1.0/", None),
        ("contract.md#no-such-heading", "names a heading"),
        ("missing.md", "missing file"),
        ("../../shared/spec/FLEETPROMPT_V1.md", "outside the repository"),
        ("https://example.com/page", "leaves the repository"),
        ("file:///etc/passwd", "scheme"),
        ("//evil.example/x", "scheme"),
    ],
)
def test_the_link_check_itself(href: str, problem: str | None) -> None:
    """The checker accepts what resolves and names what does not (seen from docs/)."""
    found = _problem(ROOT / "docs" / "architecture.md", href)
    if problem is None:
        assert found is None, found
    else:
        assert found is not None
        assert problem in found, found


def test_github_heading_anchors() -> None:
    assert _slug("6. Idempotency") == "6-idempotency"
    assert _slug("Rate limits (§9)") == "rate-limits-9"
    assert _slug("5. API (HTTP, JSON)") == "5-api-http-json"
    assert re.fullmatch(r"[a-z0-9_-]+", _slug("Command-line start-up"))
