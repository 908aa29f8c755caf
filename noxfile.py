"""Developer sessions: tests, lint (ruff) and type checking (mypy --strict over src/)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite, the layering check included."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests")
    session.run("ruff", "format", "--check", "src", "tests")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/ (configured in pyproject.toml)."""
    session.install("-e", ".[lint]")
    session.run("mypy")
