"""Storage faults and edge-case text through the application on SQLite and PostgreSQL.

* A use case whose connection dies mid-transaction, or whose commit fails,
  leaves every table exactly as it was (audit log included), answers the
  core's ``Unavailable`` (503: the database went away) without SQL text or
  parameter values, and can simply be retried. Connections are broken for
  real: ``pg_terminate_backend`` from a second connection on PostgreSQL,
  closing the DBAPI connection on SQLite, at the right moment through
  SQLAlchemy event hooks.
* A real deadlock on PostgreSQL answers ``Conflict`` (retry) and changes nothing.
* Text at the exact contract limits, characters outside the BMP, NUL bytes and
  lone surrogates behave identically on the in-memory, SQLite and PostgreSQL
  applications (same views, same errors, nothing stored on a rejection).
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from contract import sql_apps
from contract.sql_apps import Database, Issued, SequentialIds, contents
from fleetprompt_adapters.memory import ManualClock
from fleetprompt_core import Call, Conflict, DomainError, FleetPrompt, Role, Unavailable
from fleetprompt_core.base import limits
from fleetprompt_core.policies.urls import MAX_URL_LENGTH
from fleetprompt_core.services.views import Redemption
from support import IMAGE_HOST, Market, listing_payload, new_key, release_payload

T0 = 1_767_225_600_000
FOX = "\U0001f98a"  # 🦊, outside the BMP: 4 bytes of UTF-8, a surrogate pair in UTF-16
FRAKTUR_U = "\U0001d518"  # 𝔘
#: A value that may only ever be a parameter of a statement, never part of an error.
MARKER = "Marker Zq7 " + FOX
#: What SQL text or a driver message in an error would look like.
SQL_TEXT = re.compile(
    r"\b(INSERT|SELECT|UPDATE|DELETE|VALUES|COMMIT|ROLLBACK)\b|\[SQL|\[parameters|"
    r"psycopg|sqlite3|terminating connection|closed database|deadlock",
    re.IGNORECASE,
)


@pytest.fixture(scope="module", params=sql_apps.KINDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with sql_apps.open_database(request.param, tmp_path_factory) as database:
        yield database


@pytest.fixture
def db(database: Database) -> Database:
    """The database of the test, emptied."""
    sql_apps.empty(database.engine)
    return database


# --------------------------------------------------------------------------- fault injection


def _server_connection(db: Database) -> sa.Engine:
    """A second, unpooled autocommit engine on the database (to kill or lock from)."""
    return sa.create_engine(db.engine.url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")


@attrs.define
class Fault:
    """Breaks the connection of the first unit of work that runs a statement starting with
    ``statement``: just before that statement runs, or when that unit of work commits."""

    db: Database
    statement: str
    at_commit: bool
    fired: int = 0
    _armed: sa.Connection | None = None
    _server: sa.Engine | None = None

    def __enter__(self) -> Fault:
        self._server = _server_connection(self.db)
        event.listen(self.db.engine, "before_cursor_execute", self._before_statement)
        event.listen(self.db.engine, "commit", self._before_commit)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.db.engine, "before_cursor_execute", self._before_statement)
        event.remove(self.db.engine, "commit", self._before_commit)
        assert self._server is not None
        self._server.dispose()

    def _before_statement(
        self,
        conn: sa.Connection,
        cursor: object,
        statement: str,
        parameters: object,
        context: object,
        executemany: bool,
    ) -> None:
        if self.fired or self._armed is not None or not statement.startswith(self.statement):
            return
        if self.at_commit:
            self._armed = conn
        else:
            self._break(conn)

    def _before_commit(self, conn: sa.Connection) -> None:
        if conn is self._armed and not self.fired:
            self._break(conn)

    def _break(self, conn: sa.Connection) -> None:
        self.fired += 1
        dbapi_connection: Any = conn.connection.dbapi_connection
        if self.db.kind == "sqlite":
            dbapi_connection.close()  # SQLite rolls back the open transaction
            return
        assert self._server is not None
        with self._server.connect() as server:
            killed = server.execute(
                sa.text("SELECT pg_terminate_backend(:pid, 5000)"),
                {"pid": dbapi_connection.info.backend_pid},
            ).scalar_one()
        assert killed, "the backend did not terminate within 5 s"


def _chain(error: BaseException, *, honour_suppression: bool) -> list[BaseException]:
    """``error`` and its causes and contexts (only those a traceback shows, if asked)."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        pending.append(current.__cause__)
        if not (honour_suppression and current.__suppress_context__):
            pending.append(current.__context__)
    return found


def _leaks(
    error: BaseException, secrets: tuple[str, ...], *, honour_suppression: bool
) -> list[str]:
    """Texts of the chain that hold SQL, a driver message or one of ``secrets``."""
    texts = []
    for link in _chain(error, honour_suppression=honour_suppression):
        texts += [str(link), repr(link)]
        if isinstance(link, DomainError):
            texts += [link.message, link.hint or ""]
    if honour_suppression:
        texts.append("".join(traceback.format_exception_only(error)))
    return [
        text for text in texts if SQL_TEXT.search(text) or any(secret in text for secret in secrets)
    ]


# --------------------------------------------------------------------------- scenarios


@attrs.frozen
class Scenario:
    """A use case to break: its set-up, the call (retryable as is), and where to break it."""

    setup: Callable[[FleetPrompt], Any]
    call: Callable[[FleetPrompt, Any], object]
    #: The statement that runs inside the use case's transaction, after it wrote something.
    mid_statement: str
    #: A statement of the use case's transaction; its commit is the one that fails.
    commit_statement: str
    #: The same two where PostgreSQL runs other statements (by database kind).
    per_database: Mapping[str, tuple[str, str]] = attrs.field(factory=dict)

    def statement(self, kind: str, moment: str) -> str:
        mid, commit = self.per_database.get(kind, (self.mid_statement, self.commit_statement))
        return mid if moment == "mid_transaction" else commit


def _owner(fp: FleetPrompt) -> Call:
    return sql_apps.publisher(fp, "owner")


def _draft_and_key(fp: FleetPrompt) -> tuple[Call, str, str]:
    owner = _owner(fp)
    return owner, sql_apps.draft(fp, owner), new_key()


def _with_release(fp: FleetPrompt) -> tuple[Call, str, str]:
    owner, listing_id, key = _draft_and_key(fp)
    fp.publishing.publish_release(
        owner, listing_id, release_payload("1.0.0"), idempotency_key=new_key()
    )
    return owner, listing_id, key


def _intent(fp: FleetPrompt) -> tuple[Call, str, str]:
    owner = _owner(fp)
    buyer = sql_apps.user(fp, "buyer")
    listing_id, _ = sql_apps.published(fp, owner)
    intent = fp.installs.create_intent(
        buyer, {"listingId": listing_id, "targetSystem": "whs"}, idempotency_key=new_key()
    ).value
    return buyer, intent.install_intent_id, new_key()


def _redeem(fp: FleetPrompt, issued: Issued) -> Redemption:
    return sql_apps.signed_redeem(fp, sql_apps.REDEEM_KEY, issued.token)


SCENARIOS = {
    "create_listing": Scenario(
        setup=lambda fp: (_owner(fp), new_key()),
        call=lambda fp, s: fp.publishing.create_listing(
            s[0], listing_payload(name=MARKER), idempotency_key=s[1]
        ),
        mid_statement="INSERT INTO audit_events",
        commit_statement="INSERT INTO listings",
    ),
    "publish_release": Scenario(
        setup=_draft_and_key,
        call=lambda fp, s: fp.publishing.publish_release(
            s[0], s[1], release_payload("2.0.0", notes={"markdown": MARKER}), idempotency_key=s[2]
        ),
        mid_statement="INSERT INTO audit_events",
        commit_statement="INSERT INTO releases",
    ),
    "publish_listing": Scenario(  # also rewrites the search tables
        setup=_with_release,
        call=lambda fp, s: fp.publishing.change_status(
            s[0], s[1], {"status": "published"}, idempotency_key=s[2]
        ),
        mid_statement="INSERT INTO audit_events",
        commit_statement="UPDATE listings",
    ),
    "issue_token": Scenario(
        setup=_intent,
        call=lambda fp, s: fp.installs.issue_token(
            s[0], s[1], {"ttlMs": 600_000}, idempotency_key=s[2]
        ),
        mid_statement="UPDATE install_intents",
        commit_statement="INSERT INTO install_tokens",
    ),
    "redeem": Scenario(
        setup=sql_apps.issued_token,
        call=_redeem,
        mid_statement="UPDATE install_intents",
        commit_statement="UPDATE install_tokens",
        # PostgreSQL writes a redemption in one statement of data-modifying CTEs (token,
        # intent, audit row): broken just before it (after the read), or at its commit.
        per_database={"postgres": ("WITH t_set AS", "WITH t_set AS")},
    ),
}


def _secrets(state: object) -> tuple[str, ...]:
    """Parameter values of the broken statements that must not reach an error."""
    if isinstance(state, Issued):
        return (MARKER, state.token, state.token_id, state.intent_id)
    assert isinstance(state, tuple)
    return (MARKER, *(value for value in state if isinstance(value, str)))


@pytest.mark.parametrize("moment", ["mid_transaction", "at_commit"])
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=list(SCENARIOS))
def test_r_tok_03_sql_broken_connection_leaves_no_partial_state_and_no_sql_in_the_error(
    db: Database, scenario: Scenario, moment: str
) -> None:
    """A connection killed mid-transaction or at commit: every table (audit log included)
    is unchanged, the caller gets Unavailable free of SQL and values, and a retry succeeds."""
    fp = db.app()
    state = scenario.setup(fp)
    before = contents(db.engine)
    fault = Fault(db, scenario.statement(db.kind, moment), at_commit=moment == "at_commit")

    with fault, pytest.raises(Unavailable) as caught:
        scenario.call(fp, state)

    assert fault.fired == 1
    error = caught.value
    assert type(error) is Unavailable
    assert error.message == "The database is unavailable."
    assert _leaks(error, _secrets(state), honour_suppression=True) == []
    after = contents(db.engine)
    assert after["audit_events"] == before["audit_events"]
    assert after == before
    # Nothing half-done blocks the same request (same Idempotency-Key) from running again.
    outcome = scenario.call(fp, state)
    assert getattr(outcome, "replayed", False) is False
    assert contents(db.engine) != before


def test_raw_exception_chain_of_a_storage_failure_holds_no_sql(db: Database) -> None:
    """Even the suppressed __context__ chain of the error a caller gets holds no SQL text
    and no parameter values."""
    fp = db.app()
    state = SCENARIOS["create_listing"].setup(fp)
    with (
        Fault(db, "INSERT INTO audit_events", at_commit=False),
        pytest.raises(Unavailable) as caught,
    ):
        SCENARIOS["create_listing"].call(fp, state)
    assert _leaks(caught.value, _secrets(state), honour_suppression=False) == []


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_deadlock_victim_gets_conflict_and_changes_nothing(db: Database) -> None:
    """A redemption chosen as a PostgreSQL deadlock victim answers Conflict (retry), leaves
    every table unchanged, carries no SQL, and the retried redemption succeeds."""
    fp = db.app()
    issued = sql_apps.issued_token(fp)
    before = contents(db.engine)
    server = _server_connection(db)
    intent_locked = threading.Event()
    other_errors: list[BaseException] = []
    ours: list[int] = []  # the redemption's backend

    def waiting_for_a_lock(pid: int) -> bool:
        with server.connect() as watcher:
            found = watcher.execute(
                sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            ).scalar()
        return bool(found == "Lock")

    def other_transaction() -> None:
        """Locks the intent; once the redemption (which writes the token first) waits for
        it, asks for the token: a cycle."""
        try:
            with server.connect() as connection:
                connection.exec_driver_sql("BEGIN")
                connection.exec_driver_sql("SET LOCAL deadlock_timeout = '10s'")
                connection.execute(
                    sa.text(
                        "UPDATE install_intents SET status = status WHERE install_intent_id = :i"
                    ),
                    {"i": issued.intent_id},
                )
                intent_locked.set()
                for _ in range(1000):
                    if waiting_for_a_lock(ours[0]):
                        break
                    time.sleep(0.01)
                else:  # pragma: no cover - reported below
                    raise AssertionError("the redemption never waited for the intent")
                connection.execute(
                    sa.text("UPDATE install_tokens SET status = status WHERE token_id = :i"),
                    {"i": issued.token_id},
                )
                connection.exec_driver_sql("ROLLBACK")
        except BaseException as error:  # pragma: no cover - reported below
            other_errors.append(error)
            intent_locked.set()

    other = threading.Thread(target=other_transaction, daemon=True)
    fired = []

    def before_intent_update(conn: sa.Connection, *args: Any) -> None:
        # The statement that writes the intent: its own UPDATE, or (PostgreSQL) the one
        # statement of data-modifying CTEs that writes the token, then the intent.
        if fired or "UPDATE install_intents" not in args[1]:
            return
        fired.append(True)
        dbapi_connection: Any = conn.connection.dbapi_connection
        with dbapi_connection.cursor() as cursor:  # this transaction detects the cycle first
            cursor.execute("SET LOCAL deadlock_timeout = '50ms'")
            cursor.execute("SELECT pg_backend_pid()")
            ours.append(cursor.fetchone()[0])
        other.start()
        assert intent_locked.wait(10)

    event.listen(db.engine, "before_cursor_execute", before_intent_update)
    try:
        with pytest.raises(Conflict) as caught:
            _redeem(fp, issued)
    finally:
        event.remove(db.engine, "before_cursor_execute", before_intent_update)
        if fired:
            other.join(10)
        server.dispose()

    assert fired == [True]
    assert not other.is_alive()
    assert other_errors == []
    error = caught.value
    assert type(error) is Conflict
    assert (error.message, error.hint) == (
        "The request lost a race with a concurrent request.",
        "retry the request",
    )
    assert (
        _leaks(error, (issued.token, issued.token_id, issued.intent_id), honour_suppression=True)
        == []
    )
    assert contents(db.engine) == before
    assert _redeem(fp, issued)
    assert contents(db.engine) != before


# --------------------------------------------------------------------------- text edge cases


@attrs.frozen
class Twin:
    """One backend of a comparison: an application and a snapshot of everything it stores."""

    name: str
    fp: FleetPrompt
    state: Callable[[], object]


def _memory_twin() -> Twin:
    market = Market.create(clock=ManualClock(T0), ids=SequentialIds())

    def state() -> object:
        return {
            name: (
                list(table)
                if isinstance(table, list)
                else {key: list(v) if isinstance(v, list) else v for key, v in table.items()}
            )
            for name, table in vars(market.store).items()
            if isinstance(table, list | dict)
        }

    return Twin("memory", market.fp, state)


def _sql_twin(db: Database) -> Twin:
    fp = db.app(clock=ManualClock(T0), ids=SequentialIds())
    return Twin(db.kind, fp, lambda: contents(db.engine))


@pytest.fixture
def twins(db: Database) -> tuple[Twin, Twin]:
    """The in-memory app and the SQL app, with the same clock, ids and keys."""
    return _memory_twin(), _sql_twin(db)


def _text(length: int, *chars: str) -> str:
    pattern = "".join(chars) or FOX
    return (pattern * length)[:length]


def _url(length: int, host: str = "docs.example.com") -> str:
    head = f"https://{host}/{FRAKTUR_U}/"
    return head + "a" * (length - len(head))


def _at_limits(extra: int = 0) -> dict[str, Any]:
    """Listing, release, intent, profile and reason payloads at (or ``extra`` past) each limit.

    Every text is made of characters outside the BMP where the field allows them.
    """
    e = extra
    return {
        "listing": listing_payload(
            name=_text(limits.NAME_MAX + e, FRAKTUR_U, FOX),
            summary=_text(limits.SUMMARY_MAX + e, FOX, "x"),
            description={
                "format": "markdown",
                "markdown": _text(limits.DESCRIPTION_MAX + e, "# 𝔘 ", FOX, "\n\n*", FOX, "*\n"),
            },
            tags=[
                f"{i:02d}" + _text(limits.LABEL_MAX - 2 + e, FOX) for i in range(limits.TAGS_MAX)
            ],
            categories=[
                f"{i:02d}" + _text(limits.LABEL_MAX - 2 + e, FRAKTUR_U)
                for i in range(limits.CATEGORIES_MAX)
            ],
            images=[
                {
                    "url": _url(MAX_URL_LENGTH, IMAGE_HOST)[:-3] + f"{i:03d}",
                    "alt": _text(limits.IMAGE_ALT_MAX + e, FOX),
                }
                for i in range(limits.IMAGES_MAX)
            ],
            links={"docsUrl": _url(MAX_URL_LENGTH + e), "repoUrl": _url(MAX_URL_LENGTH)},
        ),
        "release": release_payload(
            "1.0.0-" + "a" * (limits.VERSION_MAX - 6 + e),
            refs={
                "whsAgentId": _text(limits.REF_MAX + e, FOX),
                "whsDeploymentId": _text(limits.REF_MAX, FRAKTUR_U),
            },
            compat={"minWHSVersion": _text(limits.COMPAT_MAX + e, FOX)},
            artifacts=[
                {
                    "kind": "manifest",
                    "sha256": f"{i:064x}",
                    "sizeBytes": 2**53 - 1,
                    "download": {"mode": "none", "hint": _text(limits.ARTIFACT_HINT_MAX + e, FOX)},
                }
                for i in range(limits.ARTIFACTS_MAX)
            ],
            notes={"markdown": _text(limits.NOTES_MAX + e, FOX, " **𝔘**\n")},
        ),
        "context": {
            "telespaceId": _text(limits.TARGET_CONTEXT_MAX + e, FOX),
            "roomId": _text(limits.TARGET_CONTEXT_MAX, FRAKTUR_U),
            "orgId": _text(limits.TARGET_CONTEXT_MAX, "o"),
        },
        "profile": {
            "displayName": _text(limits.DISPLAY_NAME_MAX + e, FOX),
            "bioMarkdown": _text(limits.BIO_MAX + e, FRAKTUR_U, " "),
        },
        "reason": {"reason": _text(limits.REASON_MAX + e, FOX)},
    }


def _outcome(action: Callable[[], object]) -> object:
    """The value of a call, or what a client sees of its domain error."""
    try:
        value = action()
    except DomainError as error:
        return (type(error).__name__, error.code, error.message, error.hint, error.fields)
    return getattr(value, "value", value)


def _round_trip(fp: FleetPrompt) -> list[object]:
    """Create, publish, read back, search, install and revoke with every text at its limit."""
    payloads = _at_limits()
    fp.operator.ensure_user("owner", display_name=_text(80, FOX), roles=[Role.PUBLISHER])
    fp.operator.ensure_user("buyer", display_name=FRAKTUR_U)
    owner, buyer = Call.as_user("owner", "req-1"), Call.as_user("buyer", "req-2")
    results: list[object] = []

    def step(action: Callable[[], object]) -> Any:
        results.append(_outcome(action))
        return results[-1]

    view = step(
        lambda: fp.publishing.create_listing(owner, payloads["listing"], idempotency_key="k1")
    )
    listing_id = view.listing.listing_id
    release = step(
        lambda: fp.publishing.publish_release(
            owner, listing_id, payloads["release"], idempotency_key="k2"
        )
    )
    step(lambda: fp.profiles.put(owner, payloads["profile"], idempotency_key="k3"))
    step(
        lambda: fp.publishing.change_status(
            owner, listing_id, {"status": "published"}, idempotency_key="k4"
        )
    )
    step(lambda: fp.publishing.get_listing(owner, listing_id))
    step(lambda: fp.catalog.listing(listing_id))
    step(lambda: fp.catalog.search({"q": FRAKTUR_U + FOX}))
    step(lambda: fp.catalog.search({"tags": payloads["listing"]["tags"][7:9]}))
    step(
        lambda: fp.catalog.search({"categories": payloads["listing"]["categories"][9:], "limit": 1})
    )
    intent = step(
        lambda: fp.installs.create_intent(
            buyer,
            {"listingId": listing_id, "targetSystem": "whs", "targetContext": payloads["context"]},
            idempotency_key="k5",
        )
    )
    step(lambda: fp.installs.get_intent(buyer, intent.install_intent_id))
    step(lambda: fp.profiles.get(owner))
    step(
        lambda: fp.publishing.revoke_release(
            owner, release.release_id, payloads["reason"], idempotency_key="k6"
        )
    )
    step(lambda: fp.catalog.releases(listing_id, {"includeRevoked": "true"}))
    step(lambda: fp.publishing.list_releases(owner, listing_id))
    step(lambda: fp.publishing.list_listings(owner))
    return results


def test_text_at_the_contract_limits_round_trips_identically(twins: tuple[Twin, Twin]) -> None:
    """Every text at its exact limit, outside the BMP, gives the same views on memory and
    SQL, read back from storage (detail, search, lists) and stored unchanged."""
    memory, sql_twin = twins

    expected = _round_trip(memory.fp)
    got = _round_trip(sql_twin.fp)

    # The script really stored limit-length, non-BMP texts (and nothing failed on memory).
    assert not any(isinstance(result, tuple) for result in expected), expected
    stored = expected[4].listing  # the publisher's view, read back from storage
    payload = _at_limits()["listing"]
    assert (stored.name, stored.summary) == (payload["name"], payload["summary"])
    assert len(stored.name) == limits.NAME_MAX
    assert max(map(ord, stored.name)) > 0xFFFF
    assert len(stored.tags) == limits.TAGS_MAX
    assert {len(tag) for tag in stored.tags} == {limits.LABEL_MAX}
    assert stored.description.markdown == payload["description"]["markdown"]
    # The non-BMP search term, tags and category all find the listing.
    assert [len(expected[i].items) for i in (6, 7, 8)] == [1, 1, 1]
    assert got == expected


Rejection = tuple[tuple[str, ...], Callable[[FleetPrompt, Call, str], object]]


def _rejections() -> dict[str, Rejection]:
    """Calls with one bad text each (past a limit, NUL, lone surrogate) and the field named."""
    over = _at_limits(extra=1)

    def listing(**fields: Any) -> Callable[[FleetPrompt, Call, str], object]:
        return lambda fp, owner, _: fp.publishing.create_listing(
            owner, listing_payload(**fields), idempotency_key=new_key()
        )

    def release(**fields: Any) -> Callable[[FleetPrompt, Call, str], object]:
        return lambda fp, owner, listing_id: fp.publishing.publish_release(
            owner, listing_id, release_payload(**fields), idempotency_key=new_key()
        )

    nul = "a\x00b"
    return {
        "name/over": (("name",), listing(name=over["listing"]["name"])),
        "summary/over": (("summary",), listing(summary=over["listing"]["summary"])),
        "description/over": (
            ("description.markdown",),
            listing(description=over["listing"]["description"]),
        ),
        "tags/too-many": (("tags",), listing(tags=[*over["listing"]["tags"], "x"])),
        "tag/over": (("tags[0]",), listing(tags=over["listing"]["tags"][:1])),
        "alt/over": (("images[0].alt",), listing(images=over["listing"]["images"][:1])),
        "docs/over": (
            ("links.docsUrl",),
            listing(links={"docsUrl": over["listing"]["links"]["docsUrl"]}),
        ),
        "name/nul": (("name",), listing(name=nul)),
        "summary/nul": (("summary",), listing(summary=nul)),
        "description/nul": (("description.markdown",), listing(description={"markdown": nul})),
        "tag/nul": (("tags[1]",), listing(tags=["ok", nul])),
        "category/nul": (("categories[0]",), listing(categories=[nul])),
        "alt/nul": (
            ("images[0].alt",),
            listing(images=[{"url": f"https://{IMAGE_HOST}/a.png", "alt": nul}]),
        ),
        "docs/nul": (
            ("links.docsUrl",),
            listing(links={"docsUrl": "https://docs.example.com/a\x00"}),
        ),
        "name/surrogate": (("name",), listing(name="a\ud800b")),
        "version/over": (("version",), release(version=over["release"]["version"])),
        "version/nul": (("version",), release(version="1.0\x00")),
        "ref/nul": (("refs.whsAgentId",), release(refs={"whsAgentId": nul})),
        "ref/over": (
            ("refs.whsAgentId",),
            release(refs={"whsAgentId": over["release"]["refs"]["whsAgentId"]}),
        ),
        "compat/nul": (("compat.minWHSVersion",), release(compat={"minWHSVersion": nul})),
        "notes/nul": (("notes.markdown",), release(notes={"markdown": nul})),
        "notes/over": (("notes.markdown",), release(notes=over["release"]["notes"])),
        "hint/nul": (
            ("artifacts[0].download.hint",),
            release(
                artifacts=[
                    {
                        "kind": "manifest",
                        "sha256": "a" * 64,
                        "sizeBytes": 1,
                        "download": {"mode": "none", "hint": nul},
                    }
                ]
            ),
        ),
        "context/nul": (
            ("targetContext.roomId",),
            lambda fp, owner, listing_id: fp.installs.create_intent(
                owner,
                {"listingId": listing_id, "targetSystem": "whs", "targetContext": {"roomId": nul}},
                idempotency_key=new_key(),
            ),
        ),
        "context/over": (
            ("targetContext.telespaceId",),
            lambda fp, owner, listing_id: fp.installs.create_intent(
                owner,
                {"listingId": listing_id, "targetSystem": "whs", "targetContext": over["context"]},
                idempotency_key=new_key(),
            ),
        ),
        "profile/nul": (
            ("bioMarkdown",),
            lambda fp, owner, _: fp.profiles.put(owner, {"displayName": "P", "bioMarkdown": nul}),
        ),
        "profile/over": (
            ("displayName", "bioMarkdown"),
            lambda fp, owner, _: fp.profiles.put(owner, over["profile"]),
        ),
        "reason/nul": (
            ("reason",),
            lambda fp, owner, listing_id: fp.admin.suspend_listing(
                Call.as_user("admin"), listing_id, {"reason": nul}, idempotency_key=new_key()
            ),
        ),
        "search/nul": (("q",), lambda fp, owner, _: fp.catalog.search({"q": nul})),
        "key/nul": (
            ("Idempotency-Key",),
            lambda fp, owner, _: fp.publishing.create_listing(
                owner, listing_payload(), idempotency_key="k\x00"
            ),
        ),
    }


REJECTIONS = _rejections()


@pytest.mark.parametrize("case", REJECTIONS.values(), ids=list(REJECTIONS))
def test_bad_text_is_rejected_identically_and_stores_nothing(
    twins: tuple[Twin, Twin], case: Rejection
) -> None:
    """A text past its limit, with NUL or with a lone surrogate is VALIDATION_FAILED naming the
    field, the same on memory and SQL, and changes nothing on either."""
    fields, call = case
    outcomes = []
    for twin in twins:
        owner = sql_apps.publisher(twin.fp, "owner")
        twin.fp.operator.ensure_user("admin", display_name="Admin", roles=[Role.ADMIN])
        listing_id, _ = sql_apps.published(twin.fp, owner)
        before = twin.state()
        outcome = _outcome(lambda fp=twin.fp, o=owner, i=listing_id: call(fp, o, i))
        assert twin.state() == before, twin.name
        outcomes.append(outcome)
    memory, sql_outcome = outcomes
    assert isinstance(memory, tuple), memory
    assert memory[1] == "VALIDATION_FAILED"
    assert tuple(error.field_name for error in memory[4]) == fields
    assert sql_outcome == memory


def _nul_ids() -> dict[str, Callable[[FleetPrompt, Call, Call, str], object]]:
    """Use cases taking an id from the path, called with an id holding NUL."""
    return {
        "catalog.listing": lambda fp, owner, admin, bad: fp.catalog.listing(bad),
        "catalog.releases": lambda fp, owner, admin, bad: fp.catalog.releases(bad),
        "publishing.get_listing": lambda fp, owner, admin, bad: fp.publishing.get_listing(
            owner, bad
        ),
        "publishing.update_listing": lambda fp, owner, admin, bad: fp.publishing.update_listing(
            owner, bad, {"summary": "s"}, idempotency_key=new_key()
        ),
        "publishing.publish_release": lambda fp, owner, admin, bad: fp.publishing.publish_release(
            owner, bad, release_payload(), idempotency_key=new_key()
        ),
        "publishing.revoke_release": lambda fp, owner, admin, bad: fp.publishing.revoke_release(
            owner, bad, None, idempotency_key=new_key()
        ),
        "installs.get_intent": lambda fp, owner, admin, bad: fp.installs.get_intent(owner, bad),
        "installs.issue_token": lambda fp, owner, admin, bad: fp.installs.issue_token(
            owner, bad, None, idempotency_key=new_key()
        ),
        "admin.suspend_listing": lambda fp, owner, admin, bad: fp.admin.suspend_listing(
            admin, bad, {"reason": "r"}, idempotency_key=new_key()
        ),
        "admin.set_verification": lambda fp, owner, admin, bad: fp.admin.set_verification(
            admin, bad, {"status": "verified"}, idempotency_key=new_key()
        ),
    }


NUL_IDS = _nul_ids()


@pytest.mark.parametrize(
    "database",
    [
        "sqlite",
        "postgres",
    ],
    indirect=True,
)
def test_ids_holding_nul_are_not_found_like_on_memory(twins: tuple[Twin, Twin]) -> None:
    """An id holding a NUL byte is NOT_FOUND, as on memory, for every use case that takes an
    id from the path, and changes nothing."""
    outcomes: dict[str, list[Any]] = {}
    for twin in twins:
        owner = sql_apps.publisher(twin.fp, "owner")
        admin = Call.as_user("admin")
        twin.fp.operator.ensure_user("admin", display_name="Admin", roles=[Role.ADMIN])
        listing_id, _ = sql_apps.published(twin.fp, owner)
        bad = listing_id + "\x00"
        before = twin.state()
        outcomes[twin.name] = [
            _outcome(lambda c=call, fp=twin.fp, o=owner, a=admin, b=bad: c(fp, o, a, b))
            for call in NUL_IDS.values()
        ]
        assert twin.state() == before, twin.name
    memory, sql_outcomes = outcomes.values()
    assert [outcome[1] for outcome in memory] == ["NOT_FOUND"] * len(NUL_IDS)
    assert dict(zip(NUL_IDS, sql_outcomes, strict=True)) == dict(zip(NUL_IDS, memory, strict=True))
