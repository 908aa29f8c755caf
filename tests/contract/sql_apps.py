"""FleetPrompt applications over real databases, for the SQL race and fault suites.

``test_sql_races`` and ``test_sql_faults`` drive the use cases of a
:class:`~fleetprompt_core.FleetPrompt` built by ``fleetprompt_adapters.sql.bootstrap``
over a SQLite file (WAL) or this run's PostgreSQL database, and look at the
result from the outside: every table's rows (:func:`contents`), counts.

Race actions are plain module-level functions returning a picklable
:class:`Result`, so that the same action runs in a thread of the test process
or in a ``spawn`` worker process (:func:`run_in_process`), which builds its own
engine and application from the database URL and the keys it is given.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import attrs
import pytest
import sqlalchemy as sa

import databases
from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.tables import metadata
from fleetprompt_core import Call, CoreSettings, DomainError, FleetPrompt, Role
from fleetprompt_core.policies.signing import RedeemVerifier, signed_headers
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services.views import Redemption
from support import CURSOR_KEY, IMAGE_HOST, listing_payload, new_key, release_payload

__all__ = [
    "KINDS",
    "REDEEM_KEY",
    "SETTINGS",
    "Database",
    "Issued",
    "Result",
    "SequentialIds",
    "canonical",
    "contents",
    "count",
    "empty",
    "init_worker",
    "issued_token",
    "open_database",
    "publisher",
    "run_action",
    "run_in_process",
    "signed_redeem",
    "user",
]

#: The databases every SQL suite runs on (PostgreSQL skips without its URL).
KINDS: Final = ("sqlite", "postgres")
SETTINGS: Final = CoreSettings(image_hosts=frozenset({IMAGE_HOST}))
#: The HMAC key target systems sign internal redemption requests with.
REDEEM_KEY: Final = b"s" * 32
#: How long a racer waits for the others at the start line.
START_TIMEOUT_S: Final = 30.0


# --------------------------------------------------------------------------- databases


@attrs.frozen
class Database:
    """A migrated database of one kind and the engine of the test process on it."""

    kind: str
    engine: sa.Engine

    @property
    def url(self) -> str:
        """The URL with its password, for a worker process to connect with."""
        return self.engine.url.render_as_string(hide_password=False)

    def app(self, **overrides: Any) -> FleetPrompt:
        return build_app(self.engine, **overrides)


@contextlib.contextmanager
def open_database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated SQLite file or this run's PostgreSQL database (skips without its URL)."""
    if kind == "sqlite":
        engine = databases.sqlite_engine(tmp_path_factory.mktemp("sql-app"))
    elif kind == "postgres":
        engine = databases.postgres_engine()
    else:  # pragma: no cover - a typo in a parametrization
        raise ValueError(kind)
    try:
        yield Database(kind, engine)
    finally:
        engine.dispose()


empty = databases.empty


def build_app(engine: sa.Engine, **overrides: Any) -> FleetPrompt:
    """The application over ``engine`` with the suites' settings and cursor key."""
    options: dict[str, Any] = {"settings": SETTINGS, "cursor_key": CURSOR_KEY, **overrides}
    return sql.bootstrap(engine, **options)


def contents(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every FleetPrompt table, in a stable order."""
    with engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(row) for row in connection.execute(sa.select(table))), key=repr
            )
            for table in metadata.sorted_tables
        }


def count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    """How many rows of ``table`` match every condition of ``where``."""
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(connection.execute(query).scalar_one())


class SequentialIds:
    """``prefix_00000001``, ``prefix_00000002``…: the same ids on every backend."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._next):08d}"


# --------------------------------------------------------------------------- set-up


def publisher(fp: FleetPrompt, name: str = "pub") -> Call:
    fp.operator.ensure_user(name, display_name=name.title(), roles=[Role.PUBLISHER])
    return Call.as_user(name, request_id=f"req-{name}")


def user(fp: FleetPrompt, name: str) -> Call:
    fp.operator.ensure_user(name, display_name=name.title())
    return Call.as_user(name, request_id=f"req-{name}")


def draft(fp: FleetPrompt, owner: Call, **overrides: Any) -> str:
    """A new draft listing of ``owner``; its id."""
    payload = listing_payload(**overrides)
    return fp.publishing.create_listing(
        owner, payload, idempotency_key=new_key()
    ).value.listing.listing_id


def published(fp: FleetPrompt, owner: Call) -> tuple[str, str]:
    """A published listing with release 1.0.0: the listing and release ids."""
    listing_id = draft(fp, owner)
    release = fp.publishing.publish_release(
        owner, listing_id, release_payload("1.0.0"), idempotency_key=new_key()
    ).value
    fp.publishing.change_status(
        owner, listing_id, {"status": "published"}, idempotency_key=new_key()
    )
    return listing_id, release.release_id


@attrs.frozen
class Issued:
    """A published listing, a buyer's intent for ``whs`` and a fresh install token."""

    owner: Call
    buyer: Call
    listing_id: str
    release_id: str
    intent_id: str
    token_id: str
    token: str = attrs.field(repr=False)


def issued_token(fp: FleetPrompt) -> Issued:
    owner = publisher(fp)
    buyer = user(fp, "buyer")
    listing_id, release_id = published(fp, owner)
    intent = fp.installs.create_intent(
        buyer, {"listingId": listing_id, "targetSystem": "whs"}, idempotency_key=new_key()
    ).value
    issued = fp.installs.issue_token(
        buyer, intent.install_intent_id, None, idempotency_key=new_key()
    ).value
    assert issued.install_token is not None
    return Issued(
        owner,
        buyer,
        listing_id,
        release_id,
        intent.install_intent_id,
        issued.token_id,
        issued.install_token,
    )


# --------------------------------------------------------------------------- race actions


@attrs.frozen
class Result:
    """What one racer got: a value (canonical JSON) or a domain error's code, message, hint."""

    value: str | None = None
    replayed: bool = False
    code: str | None = None
    message: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    def field(self, *path: str) -> Any:
        """A field of the value, e.g. ``field("listing", "listing_id")``."""
        assert self.value is not None, self
        found: Any = json.loads(self.value)
        for name in path:
            found = found[name]
        return found


def canonical(value: object) -> str:
    """A use case's result as sorted JSON (what the idempotency store keeps)."""
    return json.dumps(idempotency.converter.unstructure(value), sort_keys=True)


def _attempt(action: Callable[[], tuple[object, bool]]) -> Result:
    try:
        value, replayed = action()
    except DomainError as error:
        return Result(code=error.code.value, message=error.message, hint=error.hint)
    return Result(value=canonical(value), replayed=replayed)


def create_listing(
    fp: FleetPrompt, external_id: str, payload: Mapping[str, Any], key: str
) -> Result:
    def action() -> tuple[object, bool]:
        outcome = fp.publishing.create_listing(
            Call.as_user(external_id), payload, idempotency_key=key
        )
        return outcome.value, outcome.replayed

    return _attempt(action)


def publish_release(
    fp: FleetPrompt, external_id: str, listing_id: str, payload: Mapping[str, Any], key: str
) -> Result:
    def action() -> tuple[object, bool]:
        outcome = fp.publishing.publish_release(
            Call.as_user(external_id), listing_id, payload, idempotency_key=key
        )
        return outcome.value, outcome.replayed

    return _attempt(action)


def signed_redeem(fp: FleetPrompt, redeem_key: bytes, token: str) -> Redemption:
    """Redeem ``token`` as the ``whs`` target system signing with ``redeem_key``, now."""
    body = json.dumps({"installToken": token, "targetSystem": "whs"}).encode()
    headers = signed_headers(body, redeem_key, "whs", fp.runtime.clock.now_ms())
    return fp.redemption.redeem_signed(
        RedeemVerifier(keys=(redeem_key,)),
        body=body,
        source=headers["X-WHS-Delegation-Source"],
        timestamp=headers["X-WHS-Delegation-Timestamp"],
        signature=headers["X-WHS-Delegation-Signature"],
    )


def redeem(fp: FleetPrompt, redeem_key: bytes, token: str) -> Result:
    return _attempt(lambda: (signed_redeem(fp, redeem_key, token), False))


ACTIONS: Final[Mapping[str, Callable[..., Result]]] = {
    "create_listing": create_listing,
    "publish_release": publish_release,
    "redeem": redeem,
}


def run_action(fp: FleetPrompt, action: str, args: tuple[Any, ...]) -> Result:
    return ACTIONS[action](fp, *args)


# --------------------------------------------------------------------------- worker processes

_start_line: Any = None


def init_worker(start_line: Any) -> None:
    """Pool initializer: remember the barrier every racer of a round waits at."""
    global _start_line  # noqa: PLW0603 - one barrier per worker process
    _start_line = start_line


def run_in_process(url: str, cursor_key: bytes, action: str, args: tuple[Any, ...]) -> Result:
    """In a worker process: own engine and app on ``url``, wait for the others, then race."""
    engine = sql.create_engine(url, pool_size=1, max_overflow=0)
    try:
        fp = build_app(engine, cursor_key=cursor_key)
        with engine.connect():  # connect before the start line, not during the race
            pass
        _start_line.wait(START_TIMEOUT_S)
        return run_action(fp, action, args)
    finally:
        engine.dispose()
