"""Driver statements (``fleetprompt_adapters/sql/driver.py``) read and write what Core
would, fire the connection's cursor events, and fail as Core's statements fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sql_apps
import sqlalchemy as sa
from sql_apps import Database
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from fleetprompt_adapters.sql import store
from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.driver import prepared
from fleetprompt_core import Unavailable
from fleetprompt_core.policies.tokens import hash_token


@pytest.fixture(scope="module", params=sql_apps.KINDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with sql_apps.open_database(request.param, tmp_path_factory) as database:
        sql_apps.empty(database.engine)
        yield database


def test_a_driver_read_is_the_row_core_reads(database: Database) -> None:
    """Redemption's joined read (every column type the schema has: text, integers,
    enums, JSON, booleans) and a lookup by key give Core's values, processed alike."""
    fp = database.app()
    issued = sql_apps.issued_token(fp)
    params = {"token_hash": hash_token(issued.token)}
    lookup = store._lookup(t.listings, "listing_id")
    with database.engine.connect() as conn:
        core = tuple(conn.execute(store._REDEEMABLE, params).one())
        driver = prepared(store._REDEEMABLE, conn.dialect).first(conn, params)
        by_key = {"listing_id": issued.listing_id}
        listing_core = tuple(conn.execute(lookup, by_key).one())
        listing_driver = prepared(lookup, conn.dialect).rows(conn, by_key)
        missing = prepared(lookup, conn.dialect).first(conn, {"listing_id": "lst_none"})
    assert driver == core
    assert listing_driver == [listing_core]
    assert missing is None
    assert any(isinstance(value, dict | tuple | bool) for value in core)  # JSON, booleans


def test_a_driver_read_binds_the_values_its_statement_holds(database: Database) -> None:
    """A value written into the statement (``status == 'published'``, as the browse walk
    and the detail read hold) is bound by the driver statement as Core binds it."""
    fp = database.app()
    issued = sql_apps.issued_token(fp)
    published = sa.select(t.listings.c.listing_id, t.listings.c.status).where(
        t.listings.c.status == "published",
        t.listings.c.listing_id == sa.bindparam("listing_id"),
    )
    by_key = {"listing_id": issued.listing_id}
    with database.engine.connect() as conn:
        core = [tuple(row) for row in conn.execute(published, by_key).all()]
        driver = prepared(published, conn.dialect).rows(conn, by_key)
    assert core == [(issued.listing_id, "published")]
    assert driver == core


def test_a_driver_write_counts_its_rows_and_fires_the_cursor_events(database: Database) -> None:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    fp = database.app()
    issued = sql_apps.issued_token(fp)
    update = sa.update(t.install_tokens).where(
        t.install_tokens.c.token_id == sa.bindparam("where_id")
    )
    update = update.values(status=sa.bindparam("new_status"))
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with database.engine.begin() as conn:
            statement = prepared(update, conn.dialect)
            changed = statement.run(conn, {"where_id": issued.token_id, "new_status": "revoked"})
            unchanged = statement.run(conn, {"where_id": "itk_none", "new_status": "revoked"})
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert (changed, unchanged) == (1, 0)
    assert seen.count("UPDATE") == 2
    with database.engine.connect() as conn:
        status = conn.execute(
            sa.select(t.install_tokens.c.status).where(
                t.install_tokens.c.token_id == issued.token_id
            )
        ).scalar_one()
    assert status == "revoked"


def test_a_driver_error_is_sqlalchemys_and_a_lost_connection_an_outage(
    database: Database,
) -> None:
    """A failing statement raises SQLAlchemy's exception (``guarded`` translates it); a
    connection lost under a statement is invalidated, which ``guarded`` calls an outage."""
    broken = sa.select(sa.literal_column("no_such_column")).select_from(t.users)
    lookup = store._lookup(t.users, "user_id")
    with database.engine.connect() as conn:
        with pytest.raises(sa_exc.DBAPIError):
            prepared(broken, conn.dialect).rows(conn, {})
        conn.rollback()
        dbapi: Any = conn.connection.dbapi_connection
        if database.kind == "sqlite":
            dbapi.close()
        else:
            with database.engine.connect() as other:
                other.execute(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"),
                    {"pid": dbapi.info.backend_pid},
                )
        with pytest.raises(Unavailable):
            store.guarded(lambda: prepared(lookup, conn.dialect).first(conn, {"user_id": "u"}))
        assert conn.invalidated
