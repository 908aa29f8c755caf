"""Developer sessions, each in a fresh virtualenv: ``nox`` runs tests, lint and typecheck.

They run what CI (``.ci/run``) runs: ``tests`` installs the ``dev`` extra (every
test dependency) and runs the whole suite; ``lint`` checks src, tests and bench;
``typecheck`` runs ``mypy --strict`` over src/ with every dependency installed so
that their types are seen. Arguments after ``--`` go to pytest:
``nox -s tests -- tests/unit -x``.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

#: The folders CI lints and formats (.ci/run).
LINTED = ("src", "tests", "bench")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite, the layering and link checks included."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting, over the same folders as CI."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/ (configured in pyproject.toml)."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python="3.11")
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut, configured in pyproject.toml) of the core's policies and
    the idempotency helper against tests/unit; survivors are listed at the end.

    Slow (each mutant runs the tests that reach it): run it before changing a policy,
    not on every commit. ``nox -s mutation -- "fleetprompt_core.policies.urls*"`` runs
    the mutants of one module.
    """
    session.install("-e", ".[dev]")
    # The tests must import the mutated copy in mutants/src, ahead of the editable
    # install; the directory must exist when the interpreter starts.
    mutated = Path("mutants", "src").resolve()
    mutated.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": str(mutated)}
    session.run("mutmut", "run", *session.posargs, env=env)
    session.run("mutmut", "results", env=env)
