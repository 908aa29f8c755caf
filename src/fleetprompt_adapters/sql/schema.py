"""Creating, upgrading and dropping the schema.

:func:`upgrade` applies the Alembic migrations shipped inside this package
(no checkout of the repository, no ``alembic.ini`` needed); it is what
deployments run. :func:`create_schema` builds the same schema straight from
the table definitions, for throw-away test databases; a test proves the two
agree.

Checking a database (:func:`current_revision`, :func:`head_revision`) does not
import Alembic, whose import costs a command-line start-up several hundred
milliseconds: the head is read from the revision files' ``revision`` and
``down_revision`` assignments (a test holds it equal to Alembic's answer).
"""

from __future__ import annotations

import ast
import functools
from importlib import resources
from typing import TYPE_CHECKING

import sqlalchemy as sa

from fleetprompt_adapters.sql.engine import reading
from fleetprompt_adapters.sql.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "alembic_config",
    "create_schema",
    "current_revision",
    "drop_schema",
    "head_revision",
    "upgrade",
]


def alembic_config(engine: sa.Engine | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations (and ``engine``)."""
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    config = Config()
    location = resources.files("fleetprompt_adapters.sql") / "migrations"
    config.set_main_option("script_location", str(location))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> list[str]:
    """Apply every pending migration up to ``revision``; the revisions applied, oldest first."""
    from alembic import command  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    config = alembic_config(engine)
    before = current_revision(engine)
    command.upgrade(config, revision)
    after = current_revision(engine)
    if after is None or after == before:
        return []
    script = ScriptDirectory.from_config(config)
    applied = script.iterate_revisions(after, before or "base")
    return [step.revision for step in reversed(list(applied))]


def head_revision() -> str | None:
    """The newest revision shipped with this package (``None`` if there is none)."""
    return _head_of(_revision_files())


@functools.cache
def _revision_files() -> tuple[tuple[str, str | None], ...]:
    """``(revision, down_revision)`` of every packaged revision file."""
    versions = resources.files("fleetprompt_adapters.sql") / "migrations" / "versions"
    found: list[tuple[str, str | None]] = []
    for entry in versions.iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("_"):
            continue
        values: dict[str, object] = {}
        for node in ast.parse(entry.read_text(encoding="utf-8")).body:
            target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                values[target.id] = value.value
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            raise ValueError(f"{entry.name}: revision and down_revision must be plain strings")
        found.append((revision, down))
    return tuple(sorted(found))


def _head_of(revisions: tuple[tuple[str, str | None], ...]) -> str | None:
    parents = {down for _, down in revisions}
    heads = [revision for revision, _ in revisions if revision not in parents]
    if len(heads) > 1:
        raise ValueError(f"the migrations have several heads: {', '.join(heads)}")
    return heads[0] if heads else None


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with reading(engine) as connection:  # no write lock on SQLite
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        found = list(versions.scalars())
    if len(found) > 1:
        raise ValueError(f"the database is at several revisions: {', '.join(found)}")
    return found[0] if found else None


def create_schema(engine: sa.Engine) -> None:
    """Create every table from the definitions (tests); deployments use :func:`upgrade`."""
    with engine.begin() as connection:
        metadata.create_all(connection)


def drop_schema(engine: sa.Engine) -> None:
    """Drop every FleetPrompt table and the migration bookkeeping."""
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
