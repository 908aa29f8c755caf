"""The configured store: which database ``FLEETPROMPT_DATABASE_URL`` names, opened.

The server and every ``fleetprompt`` command find the database the same way:
:func:`open_storage` over :class:`~fleetprompt_http.settings.Settings`. This
module imports no web framework, so the command line can use it without
paying for the server's start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from fleetprompt_http.settings import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from fleetprompt_adapters.search.follower import SearchFollower
    from fleetprompt_adapters.system import Wiring
    from fleetprompt_core import FleetPrompt
    from fleetprompt_core.ports import Clock, RateLimiter

__all__ = ["SchemaNotCurrent", "Storage", "describe_database", "open_storage", "sqlite_path"]


class SchemaNotCurrent(RuntimeError):
    """The database is not at the migration head; ``fleetprompt db upgrade`` fixes it."""


@attrs.frozen
class Storage:
    """The use cases over the configured store, with its start-up check and shutdown."""

    app: FleetPrompt
    #: Raises :class:`SchemaNotCurrent` unless the database is at the migration head.
    check_schema: Callable[[], None]
    close: Callable[[], None]
    engine: sa.Engine | None = None
    #: One round trip to the database (readiness); raises when it does not answer.
    ping: Callable[[], None] | None = None
    #: Brings the search index up to the database before the first request (start-up):
    #: built from the database when it is in RAM or missing, caught up from the change
    #: log otherwise. Returns how many listings it indexed or re-applied.
    warm: Callable[[], int] | None = None


def sqlite_path(settings: Settings) -> Path | None:
    """The absolute path of the SQLite file the settings name (``None`` for other stores).

    A relative path (the default ``sqlite:///./fleetprompt.db``) is relative to
    the current directory, for the server and the command line alike.
    """
    if not settings.uses_sqlite:
        return None
    # sqlite:///relative/path and sqlite:////absolute/path; query options after '?'.
    _, _, rest = settings.database_url.partition(":///")
    return Path(rest.partition("?")[0]).expanduser().absolute()


def describe_database(settings: Settings) -> str:
    """Which database the settings name, for an operator's eyes (never its password)."""
    if settings.uses_memory:
        return "memory:// (inside this process only; nothing is kept)"
    path = sqlite_path(settings)
    if path is not None:
        return f"SQLite file {path}"
    from fleetprompt_adapters import sql  # noqa: PLC0415 - only for a database URL

    url = sql.normalize_url(settings.database_url)
    return f"PostgreSQL {url.set(drivername='postgresql').render_as_string(hide_password=True)}"


def open_storage(
    settings: Settings, *, clock: Clock | None = None, limiter: RateLimiter | None = None
) -> Storage:
    """The configured store (no connection is opened until first use)."""
    from fleetprompt_core import CoreSettings  # noqa: PLC0415 - keep this module light

    core_settings = CoreSettings(
        image_hosts=settings.image_hosts,
        idempotency_lease_ms=settings.idempotency_lease_ms,
        signup_enabled=settings.web.signup,
        session_idle_ms=settings.web.session_idle_minutes * 60_000,
        session_max_ms=settings.web.session_max_hours * 3_600_000,
    )
    wiring: Wiring = {
        "clock": clock,
        "settings": core_settings,
        "cursor_key": settings.cursor_key,
        "limiter": limiter,
        "rate_limits": settings.rate_limits,
    }
    if settings.uses_memory:
        from fleetprompt_adapters import memory  # noqa: PLC0415

        return Storage(memory.bootstrap(**wiring), lambda: None, lambda: None)

    from fleetprompt_adapters import sql  # noqa: PLC0415

    engine = sql.create_engine(
        settings.database_url,
        # One connection per worker thread, a little overflow for the CLI's own use.
        pool_size=settings.worker_threads,
        max_overflow=2,
        timeouts=sql.Timeouts(
            connect_ms=settings.db_connect_timeout_ms,
            pool_ms=settings.db_pool_timeout_ms,
            statement_ms=settings.db_statement_timeout_ms,
        ),
        sqlite_cache_mib=settings.sqlite_cache_mb or sql.SQLITE_CACHE_MIB,
    )
    follower = _search_follower(settings)
    app = sql.bootstrap(engine, search_engine=follower, **wiring)

    def check_schema() -> None:
        current, head = sql.current_revision(engine), sql.head_revision()
        if current != head:
            raise SchemaNotCurrent(
                f"the database ({describe_database(settings)}) is at schema revision "
                f"{current or 'none'}, this server needs {head}: run `fleetprompt db upgrade` "
                "(it uses FLEETPROMPT_DATABASE_URL)"
            )

    def close() -> None:
        try:
            follower.close()
        finally:
            engine.dispose()

    def warm() -> int:
        with sql.reading(engine) as conn:
            return follower.catch_up(conn)

    return Storage(app, check_schema, close, engine, lambda: sql.ping(engine), warm)


def _search_follower(settings: Settings) -> SearchFollower:
    """The search engine of relevance searches with words (ADR 0034): its index in this
    process's RAM unless ``FLEETPROMPT_SEARCH_INDEX`` names a directory."""
    from fleetprompt_adapters.search.follower import SearchFollower  # noqa: PLC0415

    if settings.search_index in {None, "memory"}:
        return SearchFollower()
    return SearchFollower.in_slot(Path(settings.search_index).expanduser().absolute())
