"""Redemption's SQL (issue 11): one transaction, one read, the two state changes and the
audit row, on SQLite and PostgreSQL — counted statement by statement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sql_apps
import sqlalchemy as sa
from sql_apps import Database
from sqlalchemy import event

from fleetprompt_core import NotFound


@pytest.fixture(scope="module", params=sql_apps.KINDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with sql_apps.open_database(request.param, tmp_path_factory) as database:
        sql_apps.empty(database.engine)
        yield database


def _statements(engine: sa.Engine, action: object) -> list[str]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert callable(action)
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_redemption_is_one_read_and_the_writes_together(database: Database) -> None:
    """A redemption runs one SELECT (token, intent, release and listing joined), then the
    token and intent updates and the audit insert — on PostgreSQL as one statement
    (data-modifying CTEs), on SQLite as three — in one transaction (SQLite's ``BEGIN
    IMMEDIATE`` is the only other statement); a second redemption reads once and writes
    nothing."""
    fp = database.app()
    issued = sql_apps.issued_token(fp)
    payload = {"installToken": issued.token, "targetSystem": "whs"}

    first = _statements(database.engine, lambda: fp.redemption.redeem("whs", payload))

    begin = ["BEGIN"] if database.kind == "sqlite" else []
    writes = ["UPDATE", "UPDATE", "INSERT"] if database.kind == "sqlite" else ["WITH"]
    assert first == [*begin, "SELECT", *writes]
    with database.engine.connect() as conn:
        token, intent = conn.execute(
            sa.text(
                "SELECT t.status, i.status FROM install_tokens t JOIN install_intents i "
                "ON i.install_intent_id = t.install_intent_id WHERE t.token_id = :id"
            ),
            {"id": issued.token_id},
        ).one()
        events = conn.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE type = 'install_token.redeemed'")
        ).scalar_one()
    assert (token, intent, events) == ("redeemed", "redeemed", 1)

    def again() -> None:
        with pytest.raises(NotFound):
            fp.redemption.redeem("whs", payload)

    second = _statements(database.engine, again)
    assert second == [*begin, "SELECT"]
