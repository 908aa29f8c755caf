"""The ``fleetprompt`` command: serve, migrate, manage users and API tokens, demo data.

Every command reads the same ``FLEETPROMPT_*`` variables as the server, finds
the database the same way (:func:`fleetprompt_http.storage.open_storage`) and
says on standard error which database it uses. Output meant for scripts goes
to standard output (``tokens create`` prints the token and nothing else);
messages and errors go to standard error, and any failure exits non-zero: 2
for invalid configuration or usage, 1 for everything else.

Start-up is part of the interface: ``fleetprompt --help`` and ``--version``
import nothing but click, and each command imports what it needs inside its
body (the server stack only for ``serve``). Adding a command: decorate a
function with ``@main.command()`` (or a group's ``.command()``), import the
heavy modules inside it, and open the database with ``with _storage() as app``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from fleetprompt_core import FleetPrompt
    from fleetprompt_http.settings import Settings
    from fleetprompt_http.storage import Storage

__all__ = ["main"]

_ROLES = ("admin", "publisher")
_CREATE = "`fleetprompt db upgrade`"


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"fleetprompt: error: {message}", err=True)
    sys.exit(code)


def _note(message: str) -> None:
    click.echo(f"fleetprompt: {message}", err=True)


def _settings() -> Settings:
    from fleetprompt_http.settings import ConfigError, Settings  # noqa: PLC0415

    try:
        return Settings.from_env(os.environ)
    except ConfigError as error:
        _fail(f"invalid configuration: {error}", 2)


@contextmanager
def _failures() -> Iterator[None]:
    """Turn the errors a command can meet into one clear line and an exit code."""
    from fleetprompt_adapters import MissingExtra  # noqa: PLC0415
    from fleetprompt_core import DomainError  # noqa: PLC0415

    try:
        import sqlalchemy as sa  # noqa: PLC0415
    except ModuleNotFoundError:
        _fail(str(MissingExtra("the fleetprompt command", "server", "sqlalchemy")), 2)
    from fleetprompt_http.storage import SchemaNotCurrent  # noqa: PLC0415

    try:
        yield
    except DomainError as error:
        details = "; ".join(f"{f.field_name}: {f.message}" for f in error.fields)
        _fail(f"{error.code.value}: {error.message}" + (f" ({details})" if details else ""))
    except (SchemaNotCurrent, MissingExtra) as error:
        _fail(str(error))
    except sa.exc.SQLAlchemyError as error:
        # The driver's text may hold a password or SQL: name the kind of failure only.
        _fail(f"database error ({type(error).__name__}); check FLEETPROMPT_DATABASE_URL")


def _open(settings: Settings, *, create: bool) -> Storage:
    """The configured store, after saying which one it is.

    A missing SQLite file is created only by the commands that migrate
    (``create``); the others refuse it rather than leave an empty file behind.
    """
    from fleetprompt_http.storage import describe_database, open_storage, sqlite_path  # noqa: PLC0415

    described = describe_database(settings)
    path = sqlite_path(settings)
    if path is not None and not create and not path.exists():
        if os.environ.get("FLEETPROMPT_DATABASE_URL", "").strip():
            _fail(f"no database at {path} (FLEETPROMPT_DATABASE_URL); create it: {_CREATE}")
        _fail(
            f"no database at {path}: FLEETPROMPT_DATABASE_URL is unset, and the default "
            "sqlite:///./fleetprompt.db is relative to the current directory; run this "
            f"where the database is, set FLEETPROMPT_DATABASE_URL, or create one here: {_CREATE}"
        )
    _note(f"database: {described}")
    return open_storage(settings)


@contextmanager
def _storage(*, migrate: bool = False) -> Iterator[FleetPrompt]:
    """The use cases over the configured database, which must be at the latest schema
    (``migrate`` brings it there first)."""
    settings = _settings()
    with _failures():
        storage = _open(settings, create=migrate)
        try:
            if migrate:
                _upgrade(storage)
            storage.check_schema()
            yield storage.app
        finally:
            storage.close()


def _upgrade(storage: Storage) -> list[str]:
    """Apply pending migrations; the revisions applied, oldest first."""
    if storage.engine is None:
        return []
    from fleetprompt_adapters import sql  # noqa: PLC0415

    return sql.upgrade(storage.engine)


def _date(ms: int | None) -> str:
    import datetime  # noqa: PLC0415

    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fleetprompt")
def main() -> None:
    """FleetPrompt: the marketplace and distribution server for agent products.

    Configuration comes from FLEETPROMPT_* environment variables (see
    docs/configuration.md); by default the data lives in ./fleetprompt.db,
    relative to the current directory. Every command says which database it
    uses.
    """


# --------------------------------------------------------------------------- serve

#: Hosts whose plain-http pages may use a non-Secure session cookie.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
@click.option(
    "--server",
    "server_name",
    default="granian",
    show_default=True,
    type=click.Choice(["granian", "uvicorn"]),
    help="HTTP server (granian bounds request heads and slow clients; ADR 0029).",
)
def serve(host: str, port: int, workers: int, server_name: str) -> None:
    """Serve the HTTP API (applies pending migrations on SQLite first)."""
    import secrets  # noqa: PLC0415

    settings = _settings()
    if settings.uses_memory and workers > 1:
        _fail("memory:// keeps data inside one process; use --workers 1 or a database", 2)
    with _failures():
        storage = _open(settings, create=settings.uses_sqlite)
        try:
            if settings.uses_sqlite:
                _upgrade(storage)
            storage.check_schema()
        finally:
            storage.close()
    try:
        __import__(server_name)
        from fleetprompt_http import server  # noqa: PLC0415
    except ModuleNotFoundError as missing:
        from fleetprompt_adapters import MissingExtra  # noqa: PLC0415

        _fail(str(MissingExtra("fleetprompt serve", "server", missing.name)), 2)
    if settings.cursor_key is None:
        # Every worker must sign cursors with the same key; this one lasts until restart.
        os.environ["FLEETPROMPT_CURSOR_KEY"] = secrets.token_hex(32)
    if host in _LOOPBACK and not os.environ.get("FLEETPROMPT_COOKIE_SECURE", "").strip():
        # Plain http on this machine only: a Secure cookie would never come back over
        # http, so the web pages could not sign anyone in (ADR 0019).
        os.environ["FLEETPROMPT_COOKIE_SECURE"] = "off"
        _note("web sessions use a non-Secure cookie: plain http on a loopback address")
    _note(f"serving on http://{host}:{port} ({workers} worker(s), {server_name})")
    server.run(server_name, host, port, workers, head_timeout_ms=settings.head_timeout_ms)


@main.command("mcp")
def mcp_stdio() -> None:
    """Serve the MCP server over stdio for a local assistant (see docs/mcp.md).

    Signs in with FLEETPROMPT_MCP_TOKEN (a personal API token) when set; logs go
    to standard error, standard output carries the protocol only. Applies pending
    migrations on SQLite first, like serve.
    """
    settings = _settings()
    from fleetprompt_http.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level)
    with _failures():
        storage = _open(settings, create=settings.uses_sqlite)
        try:
            if settings.uses_sqlite:
                _upgrade(storage)
            storage.check_schema()
        finally:
            storage.close()
        # The server stack and the MCP SDK are imported by this command only.
        from fleetprompt_http.app import open_services  # noqa: PLC0415
        from fleetprompt_http.mcp.stdio import serve_stdio  # noqa: PLC0415

        storage, services = open_services(settings)
        try:
            serve_stdio(services, token=settings.mcp_token)
        finally:
            storage.close()


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """The database schema (Alembic migrations shipped with the package)."""


def _schema_settings() -> Settings:
    settings = _settings()
    if settings.uses_memory:
        _fail("memory:// has no schema to migrate", 2)
    return settings


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to FLEETPROMPT_DATABASE_URL; says which ones it applied."""
    from fleetprompt_adapters import sql  # noqa: PLC0415

    settings = _schema_settings()
    with _failures():
        storage = _open(settings, create=True)
        try:
            assert storage.engine is not None
            applied = _upgrade(storage)
            storage.check_schema()
            head = sql.head_revision()
        finally:
            storage.close()
    if applied:
        _note(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        _note("nothing to apply")
    _note(f"the database is at the latest schema revision, {head}")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision ("none" when empty); says whether it is the latest."""
    from fleetprompt_adapters import sql  # noqa: PLC0415

    settings = _schema_settings()
    with _failures():
        storage = _open(settings, create=False)
        try:
            assert storage.engine is not None
            current, head = sql.current_revision(storage.engine), sql.head_revision()
        finally:
            storage.close()
    click.echo(current or "none")
    if current == head:
        _note("this is the latest schema revision")
    else:
        _note(f"the latest schema revision is {head}: run `fleetprompt db upgrade`")


# --------------------------------------------------------------------------- search


@main.group()
def search() -> None:
    """The search engine's index (FLEETPROMPT_SEARCH_INDEX; ADR 0027, 0034)."""


@search.command("reindex")
@click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="The index directory (default: FLEETPROMPT_SEARCH_INDEX).",
)
def search_reindex(index_dir: str | None) -> None:
    """Rebuild the search index from the database, with a progress bar.

    Rebuilds every slot under the directory that no running process holds
    (running servers keep their own slot up to date from the change log).
    """
    from pathlib import Path  # noqa: PLC0415

    settings = _schema_settings()
    root = index_dir or settings.search_index
    if root is None or root == "memory":
        _fail(
            "no index directory: pass --index-dir or set FLEETPROMPT_SEARCH_INDEX to a "
            "directory (an in-memory index is built by each process as it starts)",
            2,
        )
    with _failures():
        import attrs  # noqa: PLC0415

        from fleetprompt_adapters import sql  # noqa: PLC0415
        from fleetprompt_adapters.search.follower import (  # noqa: PLC0415
            SearchFollower,
            count_published,
            free_slots,
        )

        # This command's own store ranks nothing: it must not take a slot itself (its
        # engine, in RAM, is never built).
        storage = _open(attrs.evolve(settings, search_index=None), create=False)
        try:
            storage.check_schema()
            assert storage.engine is not None
            with (
                free_slots(Path(root).expanduser().absolute()) as slots,
                sql.reading(storage.engine) as conn,
            ):
                if not slots:
                    _note(f"every slot under {root} is held by a running process; nothing to do")
                total = count_published(conn)
                for slot in slots:
                    follower = SearchFollower(slot)
                    try:
                        with click.progressbar(
                            length=total, label=f"indexing {slot}", file=sys.stderr
                        ) as bar:
                            count = follower.rebuild(conn, bar.update)
                    finally:
                        follower.close()
                    _note(f"rebuilt {slot}: {count:,} published listings")
        finally:
            storage.close()


@search.command("prune")
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Keep the change log's entries of the last DAYS days.",
)
def search_prune(keep_days: float) -> None:
    """Delete the search change log's entries older than the retention horizon.

    Run it from cron (daily, say). An index that had not applied the deleted
    entries (a slot left offline longer than the horizon) is rebuilt from the
    database at its next search instead of following the log.
    """
    import time  # noqa: PLC0415

    settings = _schema_settings()
    with _failures():
        import attrs  # noqa: PLC0415

        from fleetprompt_adapters.sql import search_log  # noqa: PLC0415

        storage = _open(attrs.evolve(settings, search_index=None), create=False)
        try:
            storage.check_schema()
            assert storage.engine is not None
            before_ms = int((time.time() - keep_days * 86_400) * 1000)
            with storage.engine.begin() as conn:
                deleted, pruned = search_log.prune(conn, before_ms=before_ms)
        finally:
            storage.close()
    click.echo(f"{deleted}")
    _note(f"deleted {deleted:,} change log rows; indexes behind seq {pruned} rebuild")


# --------------------------------------------------------------------------- users


@main.group()
def users() -> None:
    """Users and their roles (roles come only from an admin or this command)."""


def _read_password(from_stdin: bool) -> str:
    """One line of standard input (its line ending removed), or a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (never an argument).",
)


@users.command("create")
@click.argument("external_id")
@click.option("--display-name", default=None, help="Shown as the publisher's default name.")
@click.option("--publisher", is_flag=True, help="Grant the publisher role.")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@_PASSWORD_STDIN
@click.option("--email", default=None, help="With --password-stdin: an e-mail to sign in with.")
def users_create(
    external_id: str,
    display_name: str | None,
    publisher: bool,
    admin: bool,
    password_stdin: bool,
    email: str | None,
) -> None:
    """Create a user (or give an existing one the roles asked for); prints the user id.

    With --password-stdin the user also gets a built-in account for the web
    pages: its username is EXTERNAL_ID.
    """
    from fleetprompt_core import Role  # noqa: PLC0415

    roles = [role for flag, role in ((publisher, Role.PUBLISHER), (admin, Role.ADMIN)) if flag]
    password = _read_password(True) if password_stdin else None
    with _storage() as app:
        if password is not None and app.accounts.account_of(external_id) is None:
            app.accounts.check_new_account(external_id, password, email)  # before any write
        user = app.operator.ensure_user(external_id, display_name=display_name, roles=roles)
        if password is not None:
            app.accounts.set_password(external_id, password, email=email)
    click.echo(user.user_id)


@users.command("set-password")
@click.argument("external_id")
@_PASSWORD_STDIN
def users_set_password(external_id: str, password_stdin: bool) -> None:
    """Set the web sign-in password of an existing user (creating its account if needed);
    every session of the user ends."""
    password = _read_password(password_stdin)
    with _storage() as app:
        app.accounts.set_password(external_id, password)
    click.echo(f"password set for {external_id}; its sessions have ended", err=True)


@users.command("list")
@click.option("--role", type=click.Choice(_ROLES), default=None, help="Only users with this role.")
def users_list(role: str | None) -> None:
    """List users, oldest first: user id, external id, roles, display name."""
    with _storage() as app:
        listed = app.operator.list_users()
    shown = [user for user in listed if role is None or role in {r.value for r in user.roles}]
    for user in shown:
        roles = ",".join(sorted(r.value for r in user.roles)) or "-"
        click.echo("\t".join((user.user_id, user.external_id, roles, user.display_name or "")))
    _note(f"{len(shown)} user(s)" + (f" with the {role} role" if role else ""))


def _role_change(verb: str) -> Callable[[str, str], None]:
    def change(external_id: str, role: str) -> None:
        from fleetprompt_core import Role  # noqa: PLC0415

        changes = {verb: [Role(role)]}
        with _storage() as app:
            user = app.operator.set_roles(external_id, **changes)
        click.echo(" ".join(sorted(r.value for r in user.roles)) or "(no roles)")

    return change


_ROLE_OPTION = click.option("--role", required=True, type=click.Choice(_ROLES), help="The role.")
users.command("grant", help="Grant a role; prints the user's roles.")(
    click.argument("external_id")(_ROLE_OPTION(_role_change("grant")))
)
users.command("revoke", help="Revoke a role; prints the user's roles.")(
    click.argument("external_id")(_ROLE_OPTION(_role_change("revoke")))
)


# --------------------------------------------------------------------------- tokens


@main.group()
def tokens() -> None:
    """Personal API tokens (bearer credentials; only their hashes are stored)."""


@tokens.command("create")
@click.argument("external_id")
@click.option("--name", default=None, help="A label for the token (1..80 characters).")
@click.option(
    "--expires-in-days", default=None, type=int, help="Expiry, 1..3650 days (default: none)."
)
def tokens_create(external_id: str, name: str | None, expires_in_days: int | None) -> None:
    """Create an API token for an existing user; prints the token and nothing else."""
    with _storage() as app:
        issued = app.credentials.issue_api_token(
            external_id, name=name, expires_in_days=expires_in_days
        )
    click.echo(issued.api_token)
    _note(f"token id: {issued.token_id} (keep the token secret; it is shown once)")


@tokens.command("list")
@click.argument("external_id")
def tokens_list(external_id: str) -> None:
    """List a user's API tokens, newest first: id, state, created, expires, name.

    The tokens themselves are never stored, so they cannot be shown again.
    """
    import time  # noqa: PLC0415

    with _storage() as app:
        listed = app.credentials.list_api_tokens(external_id)
    now_ms = time.time_ns() // 1_000_000
    for token in listed:
        state = (
            "revoked"
            if token.revoked_at_ms is not None
            else ("active" if token.is_usable(now_ms) else "expired")
        )
        click.echo(
            "\t".join(
                (
                    token.token_id,
                    state,
                    _date(token.created_at_ms),
                    _date(token.expires_at_ms),
                    token.name,
                )
            )
        )
    _note(f"{len(listed)} token(s) of {external_id}")


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke an API token by its id (pat_…)."""
    with _storage() as app:
        app.credentials.revoke_api_token(token_id)
    _note(f"revoked {token_id}")


# --------------------------------------------------------------------------- purge, demo


@main.command()
def purge() -> None:
    """Run the retention job: expire old intents and tokens, drop old idempotency records
    and ended web sessions."""
    with _storage() as app:
        report = app.retention.run()
        sessions = 0
        while dropped := app.accounts.purge_sessions():
            sessions += dropped
    click.echo(
        f"intents expired: {report.intents_expired}, tokens expired: {report.tokens_expired}, "
        f"idempotency records dropped: {report.idempotency_records_dropped}, "
        f"web sessions dropped: {sessions}"
    )


@main.command()
def demo() -> None:
    """Fill the configured database with a small marketplace and print tokens to try it.

    Safe to run twice: the demo users and listings are made once, and each run
    prints fresh API tokens for them. Refuses memory://, whose data would end
    with this command.
    """
    settings = _settings()
    if settings.uses_memory:
        _fail("memory:// keeps nothing after this command ends; demo needs a database", 2)
    from fleetprompt_http.demo import fill_demo  # noqa: PLC0415

    with _storage(migrate=True) as app:
        lines = fill_demo(app)
    for line in lines:
        click.echo(line)
