"""Creating, upgrading and dropping the schema.

:func:`upgrade` applies the Alembic migrations shipped inside this package
(no checkout of the repository, no ``alembic.ini`` needed); it is what
deployments run. :func:`create_schema` builds the same schema straight from
the table definitions, for throw-away test databases; a test proves the two
agree.
"""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from fleetprompt_adapters.sql.engine import READ_ONLY_OPTION
from fleetprompt_adapters.sql.tables import metadata

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
    config = Config()
    location = resources.files("fleetprompt_adapters.sql") / "migrations"
    config.set_main_option("script_location", str(location))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> list[str]:
    """Apply every pending migration up to ``revision``; the revisions applied, oldest first."""
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
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY_OPTION: True})  # no write lock on SQLite
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(engine: sa.Engine) -> None:
    """Create every table from the definitions (tests); deployments use :func:`upgrade`."""
    with engine.begin() as connection:
        metadata.create_all(connection)


def drop_schema(engine: sa.Engine) -> None:
    """Drop every FleetPrompt table and the migration bookkeeping."""
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
