"""The packaged Alembic migrations build exactly the schema of the table definitions.

Every database test runs on SQLite (files in the test's temporary directory)
and on PostgreSQL: there each test gets databases of its own, created on the
server of this run's database and dropped at teardown, so the tests sharing
the run's database never see a table appear or disappear.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sql_apps import build_app, publisher

import databases
import fleetprompt_adapters
from fleetprompt_adapters import sql
from fleetprompt_adapters.sql import schema
from fleetprompt_adapters.sql.schema import alembic_config
from fleetprompt_adapters.sql.tables import idempotency_records, metadata, users
from fleetprompt_core import Conflict
from fleetprompt_core.services._idempotency import Operation, request_hash
from support import listing_payload

#: Makes a new, empty database of the backend under test.
NewDatabase = Callable[[], sa.Engine]

FLEETPROMPT_TABLES = frozenset(metadata.tables)
VERSION_TABLE = "alembic_version"
PACKAGE_DIR = Path(fleetprompt_adapters.__file__).resolve().parent
REPOSITORY = Path(__file__).resolve().parents[2]
DDL_PREFIXES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")


@pytest.fixture(params=["sqlite", "postgres"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDatabase]:
    """A factory of empty databases on one backend; every one is disposed of at teardown."""
    engines: list[sa.Engine] = []
    if request.param == "sqlite":

        def new_sqlite() -> sa.Engine:
            engine = sql.create_engine(f"sqlite:///{tmp_path / f'db{len(engines)}.sqlite'}")
            engines.append(engine)
            return engine

        yield new_sqlite
        for engine in engines:
            engine.dispose()
        return

    run_url = databases.postgres_url()  # skips without PostgreSQL
    admin = sa.create_engine(run_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    names: list[str] = []

    def new_postgres() -> sa.Engine:
        name = f"fleetprompt_migrations_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        engine = sql.create_engine(run_url.set(database=name), pool_size=2, max_overflow=0)
        engines.append(engine)
        return engine

    try:
        yield new_postgres
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def reflected_schema(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """What the database reports about every table but Alembic's, in a form that compares."""
    inspector = sa.inspect(engine)
    schema: dict[str, dict[str, Any]] = {}
    for table in sorted(inspector.get_table_names()):
        if table == VERSION_TABLE:
            continue
        primary_key = inspector.get_pk_constraint(table)
        schema[table] = {
            "columns": [
                (
                    column["name"],
                    str(column["type"].compile(dialect=engine.dialect)),
                    column["nullable"],
                    column.get("default"),
                    getattr(column["type"], "collation", None),
                )
                for column in inspector.get_columns(table)
            ],
            "primary_key": (primary_key["name"], tuple(primary_key["constrained_columns"])),
            "unique": sorted(
                (unique["name"], tuple(unique["column_names"]))
                for unique in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (
                    (
                        key["name"],
                        tuple(key["constrained_columns"]),
                        key["referred_table"],
                        tuple(key["referred_columns"]),
                        sorted(key["options"].items()),
                    )
                    for key in inspector.get_foreign_keys(table)
                ),
                key=repr,
            ),
            "indexes": sorted(
                (
                    (index["name"], tuple(index["column_names"]), index["unique"])
                    for index in inspector.get_indexes(table)
                ),
                key=repr,
            ),
            "checks": sorted(
                (
                    (check["name"], check["sqltext"])
                    for check in inspector.get_check_constraints(table)
                ),
                key=repr,
            ),
            "options": inspector.get_table_options(table),
        }
    return schema


def created_schema(new_database: NewDatabase) -> dict[str, dict[str, Any]]:
    """The reflected schema of a new database built by ``create_schema`` (``create_all``)."""
    engine = new_database()
    sql.create_schema(engine)
    return reflected_schema(engine)


def schema_objects(engine: sa.Engine) -> set[str]:
    """Every table, index, view, sequence and type in the database but Alembic's bookkeeping."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE tbl_name != 'alembic_version'"
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema()"
                " AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')"
                " UNION ALL SELECT t.typname FROM pg_type t"
                " JOIN pg_namespace n ON n.oid = t.typnamespace"
                " WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd')"
            )
        return {row[0] for row in rows}


def test_upgrade_takes_an_empty_database_to_the_head_revision(new_database: NewDatabase) -> None:
    """``upgrade`` on an empty database creates every table and records the head revision."""
    engine = new_database()
    assert sql.current_revision(engine) is None

    sql.upgrade(engine)

    head = sql.head_revision()
    assert head is not None
    assert sql.current_revision(engine) == head
    assert set(sa.inspect(engine).get_table_names()) == FLEETPROMPT_TABLES | {VERSION_TABLE}


def test_upgraded_database_has_no_drift_from_the_table_definitions(
    new_database: NewDatabase,
) -> None:
    """Autogenerate finds nothing to change between a migrated database and ``metadata``."""
    engine = new_database()
    sql.upgrade(engine)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_upgrade_builds_the_same_schema_as_create_schema(new_database: NewDatabase) -> None:
    """Migrated and ``create_all`` schemas reflect identically: names, types, keys, collations."""
    migrated = new_database()
    sql.upgrade(migrated)

    schema = reflected_schema(migrated)

    assert set(schema) == FLEETPROMPT_TABLES
    assert schema == created_schema(new_database)
    if migrated.dialect.name == "postgresql":
        # The comparison covers collations: the code-point columns really are COLLATE "C".
        collated = {
            (table, column[0])
            for table, parts in schema.items()
            for column in parts["columns"]
            if column[4] == "C"
        }
        expected = {
            (table.name, column.name)
            for table in metadata.sorted_tables
            for column in table.columns
            if 'COLLATE "C"' in str(column.type.compile(dialect=migrated.dialect))
        }
        assert expected
        assert collated == expected


def test_migrations_name_every_constraint_without_the_naming_convention(
    new_database: NewDatabase,
) -> None:
    """The revisions give every name themselves: no naming convention needed to match create_all."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions("base", "heads"))))
    migrated = new_database()

    with migrated.begin() as connection:
        # No target_metadata: the operations build their tables on a plain MetaData.
        context = MigrationContext.configure(connection)
        with Operations.context(context):
            for revision in revisions:
                revision.module.upgrade()

    assert revisions
    assert reflected_schema(migrated) == created_schema(new_database)


def test_downgrade_to_base_drops_everything_and_upgrade_works_again(
    new_database: NewDatabase,
) -> None:
    """Downgrading to ``base`` leaves no FleetPrompt table or index; upgrading again rebuilds."""
    engine = new_database()
    sql.upgrade(engine)
    assert schema_objects(engine)

    command.downgrade(alembic_config(engine), "base")

    assert schema_objects(engine) == set()
    assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
    assert sql.current_revision(engine) is None

    sql.upgrade(engine)

    assert sql.current_revision(engine) == sql.head_revision()
    assert reflected_schema(engine) == created_schema(new_database)


def test_upgrade_twice_is_a_no_op(new_database: NewDatabase) -> None:
    """A second ``upgrade`` at head runs no DDL or write and keeps the schema and the data."""
    engine = new_database()
    sql.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            users.insert().values(
                user_id="u1", external_id="ext-1", roles=[], created_at_ms=1, updated_at_ms=1
            )
        )
    before = reflected_schema(engine)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        sql.upgrade(engine)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    assert statements  # the upgrade did look at the version table
    assert [s for s in statements if s.lstrip().upper().startswith(DDL_PREFIXES)] == []
    assert sql.current_revision(engine) == sql.head_revision()
    assert reflected_schema(engine) == before
    with engine.connect() as connection:
        assert connection.execute(sa.select(users.c.user_id)).scalars().all() == ["u1"]


def test_migrations_run_outside_the_checkout(tmp_path: Path) -> None:
    """A process started in an unrelated directory migrates with the installed package alone."""
    assert not tmp_path.resolve().is_relative_to(REPOSITORY)
    code = (
        "from fleetprompt_adapters import sql; e = sql.create_engine('sqlite:///x.db'); "
        "sql.upgrade(e); print(sql.current_revision(e))"
    )
    # The child imports the package the tests import, whether installed or on PYTHONPATH.
    path = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sql.head_revision()
    assert (tmp_path / "x.db").is_file()


def test_alembic_script_location_is_inside_the_installed_package() -> None:
    """The migrations Alembic runs are the ones shipped in ``fleetprompt_adapters``."""
    location = alembic_config().get_main_option("script_location")

    assert location is not None
    script_dir = Path(location).resolve()
    assert script_dir.is_relative_to(PACKAGE_DIR)
    assert (script_dir / "env.py").is_file()
    assert any((script_dir / "versions").glob("*.py"))


def test_idempotency_scopes_migrate_from_routes_to_operations_and_still_replay(
    new_database: NewDatabase,
) -> None:
    """Revision 0003 renames route-template scopes to operation names (ADR 0020).

    A record stored by the old code (scope ``POST /v1/publisher/listings``, hash
    over that name) is renamed; the same request with the same key then replays
    the stored answer, another body is ``CONFLICT``, and downgrading restores the
    record exactly as the old code wrote it.
    """
    engine = new_database()
    sql.upgrade(engine)
    fp = build_app(engine)
    owner = publisher(fp)
    payload = listing_payload(name="Migrated")
    first = fp.publishing.create_listing(owner, payload, idempotency_key="old-key")
    # Back to the schema of the old code (today's code needs today's tables to write).
    command.downgrade(alembic_config(engine), "0002")
    old_scope = "POST /v1/publisher/listings"
    old_hash = request_hash(old_scope, {}, payload)
    with engine.begin() as connection:  # what the code before operations stored
        connection.execute(
            idempotency_records.update().values(endpoint=old_scope, request_hash=old_hash)
        )
        stored_before = connection.execute(sa.select(idempotency_records)).mappings().one()

    sql.upgrade(engine)

    with engine.connect() as connection:
        migrated = connection.execute(sa.select(idempotency_records)).mappings().one()
    assert migrated["endpoint"] == Operation.LISTING_CREATE.value
    assert migrated["request_hash"] == f"legacy:{old_scope}:{old_hash}"
    replay = fp.publishing.create_listing(owner, payload, idempotency_key="old-key")
    assert replay.replayed
    assert replay.value == first.value
    with pytest.raises(Conflict):
        fp.publishing.create_listing(
            owner, listing_payload(name="Other"), idempotency_key="old-key"
        )
    with engine.connect() as connection:
        listings = connection.execute(sa.text("SELECT count(*) FROM listings")).scalar_one()
    assert listings == 1

    command.downgrade(alembic_config(engine), "0002")

    with engine.connect() as connection:
        restored = connection.execute(sa.select(idempotency_records)).mappings().one()
    assert dict(restored) == dict(stored_before)


def test_the_head_read_from_the_revision_files_is_alembics_head() -> None:
    """``head_revision`` parses the revision files instead of importing Alembic (start-up
    speed); it must name the head Alembic would."""
    script = ScriptDirectory.from_config(alembic_config())
    assert sql.head_revision() == script.get_current_head()
    shipped = {(r.revision, r.down_revision) for r in script.walk_revisions()}
    assert set(schema._revision_files()) == shipped


def test_several_heads_are_refused_rather_than_one_picked() -> None:
    assert schema._head_of((("0001", None), ("0002", "0001"), ("0003", "0002"))) == "0003"
    assert schema._head_of(()) is None
    with pytest.raises(ValueError, match="several heads: 0002a, 0002b"):
        schema._head_of((("0001", None), ("0002a", "0001"), ("0002b", "0001")))
