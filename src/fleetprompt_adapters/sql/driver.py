"""Hot statements compiled once and run close to the driver.

For a short statement on SQLite, SQLAlchemy's per-call work on an already
compiled statement — building the parameters, an execution context, a result
with its column metadata, a ``Row`` per row — costs several times what SQLite
takes to run it (a redemption's joined read of 70 columns: about 200 µs in
SQLAlchemy, under 40 µs on the driver's cursor). A :class:`DriverStatement` is
a Core statement compiled once for one engine's dialect: its driver text, the
order and bind processors of its parameters and the result processors of its
columns, so that it binds and reads exactly the values Core would.

What is kept of SQLAlchemy's execution, on SQLite (:func:`_on_cursor`): the
connection's ``before_cursor_execute`` and ``after_cursor_execute`` events
fire as for any statement (the statement deadline of ``engine.py`` arms and
disarms; tests count statements), and a driver error is handled by the
connection as its own statements' errors are — wrapped as SQLAlchemy's
exception, a lost connection invalidated — so that ``store.guarded`` translates
it. Elsewhere (PostgreSQL) it runs with ``exec_driver_sql``: SQLAlchemy's
execution context, without its per-call parameter work.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

__all__ = ["DriverStatement", "on_cursor", "prepared"]

_Fetch = Callable[[Any], Any]


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


def _on_cursor(conn: sa.Connection, text: str, bound: Any, fetch: _Fetch) -> Any:
    """Run ``text`` on a cursor of ``conn``'s driver connection; ``fetch(cursor)``."""
    cursor = None
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        dispatch = conn.dispatch
        dispatch.before_cursor_execute(conn, cursor, text, bound, None, False)
        cursor.execute(text, bound)
        dispatch.after_cursor_execute(conn, cursor, text, bound, None, False)
        return fetch(cursor)
    except Exception as error:
        # As for SQLAlchemy's own statements: the driver's error wrapped as SQLAlchemy's
        # exception, a lost connection invalidated, ``handle_error`` events fired.
        conn._handle_dbapi_exception(error, text, bound, cursor, None)
        raise  # pragma: no cover - _handle_dbapi_exception always raises
    finally:
        if cursor is not None:
            with contextlib.suppress(Exception):  # a connection closed under us
                cursor.close()


@attrs.frozen
class DriverStatement:
    """A Core statement compiled once for one dialect (see the module doc)."""

    text: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    #: The driver's parameters by position (SQLite's ``?``) or by name (psycopg's ``%(x)s``).
    positional: bool
    #: The result processor of each selected column (``None``: the driver's value).
    results: tuple[Callable[[Any], Any] | None, ...]
    #: Whether it runs on the driver's cursor (SQLite) rather than through SQLAlchemy.
    on_cursor: bool
    #: The values the statement itself holds (``status == 'published'``), by name: used
    #: for a parameter the call does not give.
    values: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def compile(
        cls, statement: sa.Insert | sa.Update | sa.Select[Any], dialect: sa.Dialect
    ) -> DriverStatement:
        compiled = statement.compile(dialect=dialect)
        positional = compiled.positiontup is not None
        names = tuple(compiled.positiontup or compiled.binds)
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        columns = statement.selected_columns if isinstance(statement, sa.Select) else ()
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        values = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        return cls(
            str(compiled),
            names,
            processors,
            positional,
            results,
            on_cursor=dialect.name == "sqlite",
            values=values,
        )

    def _bound(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.values:
            params = {**self.values, **params}
        values = [
            params[name] if process is None else process(params[name])
            for name, process in zip(self.names, self.processors, strict=True)
        ]
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def _rows(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        results = self.results
        if not any(results):
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if process is None else process(value)
                for value, process in zip(row, results, strict=True)
            )
            for row in rows
        ]

    def run(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Execute a write; the rows it changed (the driver's ``rowcount``)."""
        bound = self._bound(params)
        if self.on_cursor:
            return int(_on_cursor(conn, self.text, bound, _rowcount))
        return int(conn.exec_driver_sql(self.text, bound).rowcount)

    def rows(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute a ``SELECT``; its rows, each value as Core would have read it."""
        bound = self._bound(params)
        if self.on_cursor:
            return self._rows(_on_cursor(conn, self.text, bound, _fetchall))
        return self._rows(conn.exec_driver_sql(self.text, bound).all())

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute a ``SELECT``; its first row, or ``None``."""
        bound = self._bound(params)
        if self.on_cursor:
            found = _on_cursor(conn, self.text, bound, _fetchone)
        else:
            found = conn.exec_driver_sql(self.text, bound).first()
        return None if found is None else self._rows([found])[0]


def on_cursor(conn: sa.Connection, text: str) -> None:
    """Run ``text`` (a statement without parameters, such as ``BEGIN``) on the cursor."""
    _on_cursor(conn, text, (), _nothing)


def _nothing(_cursor: Any) -> None:
    return None


def _fetchall(cursor: Any) -> Any:
    return cursor.fetchall()


def _fetchone(cursor: Any) -> Any:
    return cursor.fetchone()


@functools.lru_cache(maxsize=256)
def prepared(
    statement: sa.Insert | sa.Update | sa.Select[Any], dialect: sa.Dialect
) -> DriverStatement:
    """``statement`` compiled for ``dialect`` (the engine's), once per process.

    ``statement`` must be built once (a module constant or a cached builder):
    the cache holds it by identity.
    """
    return DriverStatement.compile(statement, dialect)
