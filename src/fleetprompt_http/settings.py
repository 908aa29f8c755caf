"""Server configuration, read from ``FLEETPROMPT_*`` environment variables.

Every variable has a documented default (``docs/configuration.md``); an invalid
value stops the server at start with a :class:`ConfigError` that names the
variable and never echoes a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import attrs

from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.signing import MIN_SECRET_BYTES
from fleetprompt_core.policies.urls import normalize_host_allowlist
from fleetprompt_http.clients import parse_networks

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDEEM_SOURCES",
    "ConfigError",
    "Settings",
    "WebSettings",
]

DEFAULT_DATABASE_URL: Final = "sqlite:///./fleetprompt.db"
DEFAULT_REDEEM_SOURCES: Final = ("whs", "agentromatic", "agentelic", "specprompt")
_MEMORY_URL: Final = "memory://"
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_TWO_YEARS_S: Final = 2 * 365 * 24 * 3600


class ConfigError(ValueError):
    """An invalid setting; the message names the variable (never its secret value)."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


def _secret(raw: str, variable: str) -> bytes:
    key = raw.encode("utf-8")
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            variable, f"each key must be at least {MIN_SECRET_BYTES} bytes (got {len(key)})"
        )
    return key


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _rate_limits(raw: str | None, variable: str) -> RateLimits | None:
    """``search=120/60,redeem=300/60`` (requests / window in seconds); ``off`` disables."""
    if raw is None or not raw.strip():
        return RateLimits()
    if raw.strip().lower() == "off":
        return None
    rules = dict(RateLimits().rules)
    for entry in _list(raw):
        name, _, rule = entry.partition("=")
        count, _, window = rule.partition("/")
        try:
            action = Action(name.strip())
            rules[action] = RateRule(int(count), int(window or "60") * 1000)
        except ValueError:
            raise ConfigError(
                variable,
                f"{entry!r} is not ACTION=COUNT/SECONDS with ACTION one of "
                + ", ".join(a.value for a in Action)
                + " and positive integers",
            ) from None
    return RateLimits(rules)


def _positive_int(raw: str | None, variable: str, *, maximum: int) -> int | None:
    if raw is None or not raw.strip():
        return None
    if not (raw.strip().isascii() and raw.strip().isdigit()) or not 1 <= int(raw) <= maximum:
        raise ConfigError(variable, f"must be an integer between 1 and {maximum}")
    return int(raw)


def _hsts(raw: str | None) -> int:
    """Seconds of ``Strict-Transport-Security``; unset or empty: none sent."""
    variable = "FLEETPROMPT_HSTS_MAX_AGE"
    return _positive_int(raw, variable, maximum=_TWO_YEARS_S) or 0


#: Setting → variable of the timeouts (milliseconds, 1 ms .. 10 min).
_TIMEOUT_VARIABLES: Final = {
    "db_connect_timeout_ms": "FLEETPROMPT_DB_CONNECT_TIMEOUT_MS",
    "db_pool_timeout_ms": "FLEETPROMPT_DB_POOL_TIMEOUT_MS",
    "db_statement_timeout_ms": "FLEETPROMPT_DB_STATEMENT_TIMEOUT_MS",
    "request_timeout_ms": "FLEETPROMPT_REQUEST_TIMEOUT_MS",
    "idempotency_lease_ms": "FLEETPROMPT_IDEMPOTENCY_LEASE_MS",
}


def _timeouts(env: Mapping[str, str]) -> dict[str, int]:
    values = {
        name: _positive_int(env.get(variable), variable, maximum=600_000)
        for name, variable in _TIMEOUT_VARIABLES.items()
    }
    return {name: value for name, value in values.items() if value is not None}


def _switch(raw: str | None, variable: str, *, default: bool) -> bool:
    value = (raw or "").strip().lower()
    if not value:
        return default
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ConfigError(variable, "must be on or off")


def _auto_switch(raw: str | None, variable: str) -> bool | None:
    """``on``/``off`` like :func:`_switch`; empty or ``auto``: ``None`` (the default decides)."""
    value = (raw or "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ConfigError(variable, "must be on, off or auto")


@attrs.frozen
class WebSettings:
    """Accounts, sessions and cookies of the bundled web pages."""

    signup: bool = True
    session_idle_minutes: int = 12 * 60
    session_max_hours: int = 7 * 24
    #: ``Secure`` cookies (the ``__Host-`` name); ``False`` only for plain-http loopback.
    cookie_secure: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        return cls(
            signup=_switch(env.get("FLEETPROMPT_SIGNUP"), "FLEETPROMPT_SIGNUP", default=True),
            session_idle_minutes=_positive_int(
                env.get("FLEETPROMPT_SESSION_IDLE_MINUTES"),
                "FLEETPROMPT_SESSION_IDLE_MINUTES",
                maximum=30 * 24 * 60,
            )
            or 12 * 60,
            session_max_hours=_positive_int(
                env.get("FLEETPROMPT_SESSION_MAX_HOURS"),
                "FLEETPROMPT_SESSION_MAX_HOURS",
                maximum=30 * 24,
            )
            or 7 * 24,
            cookie_secure=_switch(
                env.get("FLEETPROMPT_COOKIE_SECURE"), "FLEETPROMPT_COOKIE_SECURE", default=True
            ),
        )


@attrs.frozen
class OidcSettings:
    """Bearer JWTs from an OIDC provider (§8): ``sub`` becomes the external id."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    #: Signing keys given inline (a JWKS document's ``keys``).
    keys: tuple[Mapping[str, object], ...] = ()


@attrs.frozen
class Settings:
    """Everything the server needs; build one with :meth:`from_env` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    #: HMAC keys accepted on ``/v1/internal/install/redeem``; several for rotation,
    #: none ⇒ internal redemption answers ``UNSUPPORTED`` (501).
    redeem_secrets: tuple[bytes, ...] = attrs.field(default=(), repr=False)
    redeem_sources: frozenset[str] = frozenset(DEFAULT_REDEEM_SOURCES)
    #: Key that signs pagination cursors; processes serving one database must share it.
    #: ``None`` ⇒ a random key per process (cursors do not survive a restart).
    cursor_key: bytes | None = attrs.field(default=None, repr=False)
    redis_url: str | None = attrs.field(default=None, repr=False)
    redis_prefix: str = "fleetprompt:rl:"
    image_hosts: frozenset[str] = frozenset()
    #: ``None`` disables rate limiting.
    rate_limits: RateLimits | None = attrs.field(factory=RateLimits)
    oidc: OidcSettings | None = None
    log_level: str = "INFO"
    #: Proxies (addresses or networks) whose ``X-Forwarded-For`` names the client;
    #: empty ⇒ the peer address is the client, whatever the header says.
    trusted_proxies: tuple[str, ...] = ()
    #: A redemption that cannot commit within this many milliseconds of its arrival
    #: rolls back and answers ``UNAVAILABLE`` (keep it below the target systems'
    #: client timeout: then a request they gave up on never commits).
    redeem_deadline_ms: int = 5_000
    #: Use cases that run at once in one process (worker threads); ``None``: 1 on
    #: SQLite (one writer at a time; more threads only contend for the GIL), 4
    #: otherwise (they overlap database round trips). Each holds one pooled
    #: connection. Scale CPU with ``--workers``.
    threads: int | None = None
    #: Whether short use cases a route marks ``inline`` (a redemption) run on the event
    #: loop instead of a worker thread (ADR 0036); ``None``: on for SQLite and the memory
    #: adapter (answered in-process), off for PostgreSQL (each statement a round trip).
    inline_use_cases: bool | None = None
    #: ``Strict-Transport-Security: max-age=N`` on every response; 0 (the default)
    #: sends none. Set it only when every client reaches the server over HTTPS.
    hsts_max_age_s: int = 0
    #: The server's public origin (``https://host[:port]``), for ``/mcp``: the ``Host`` and
    #: ``Origin`` it answers besides loopback, and its RFC 9728 resource URL.
    public_url: str | None = None
    #: The credential ``fleetprompt mcp`` (stdio) calls with; ``None``: public tools only.
    mcp_token: str | None = attrs.field(default=None, repr=False)
    #: Bounds in milliseconds (ADR 0026): opening a database connection, waiting
    #: for a pooled one, one statement; and one request's use case, waiting for a
    #: worker thread included. Past any of them the answer is ``503 UNAVAILABLE``.
    db_connect_timeout_ms: int = 5_000
    db_pool_timeout_ms: int = 5_000
    db_statement_timeout_ms: int = 10_000
    request_timeout_ms: int = 15_000
    #: Memory for the public response cache of each process (ADR 0028); 0 turns it off.
    cache_mb: int = 32
    #: Each SQLite connection's page cache (MiB); ``None``: the SQL adapter's default.
    sqlite_cache_mb: int | None = None
    #: How long the key of a request whose process died stays "in progress".
    idempotency_lease_ms: int = 120_000
    #: The web pages (ADR 0018, 0019): self sign-up, session lifetimes, the cookie's
    #: ``Secure`` flag (off only for plain-http loopback; ``fleetprompt serve`` decides).
    web: WebSettings = WebSettings()
    #: How long a client may take to send a request head before the server closes
    #: the connection (``fleetprompt serve`` on granian, ADR 0029).
    head_timeout_ms: int = 10_000
    #: Where the search engine of relevance searches with words keeps its index (ADR
    #: 0027, 0034): ``None`` or ``"memory"`` a tantivy index in each process's RAM,
    #: built from the database at start-up; a directory keeps one index per
    #: process in ``slot-N`` below it across restarts (``fleetprompt search reindex``
    #: rebuilds them).
    search_index: str | None = None

    @property
    def worker_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return 1 if self.uses_sqlite else 4

    @property
    def runs_inline(self) -> bool:
        if self.inline_use_cases is not None:
            return self.inline_use_cases
        return self.uses_sqlite or self.uses_memory

    @property
    def uses_memory(self) -> bool:
        """``memory://``: the in-process adapter (one process, nothing kept; for trials)."""
        return self.database_url == _MEMORY_URL

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read and check every ``FLEETPROMPT_*`` variable; raise :class:`ConfigError`."""
        env = {name: value for name, value in environ.items() if name.startswith("FLEETPROMPT_")}
        database_url = env.get("FLEETPROMPT_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        if database_url != _MEMORY_URL and not database_url.startswith(
            ("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")
        ):
            raise ConfigError(
                "FLEETPROMPT_DATABASE_URL",
                "must be a sqlite:///PATH or postgresql://... URL (or memory:// for trials)",
            )
        secrets = tuple(
            _secret(part, "FLEETPROMPT_INTERNAL_REDEEM_SECRET")
            for part in _list(env.get("FLEETPROMPT_INTERNAL_REDEEM_SECRET"))
        )
        sources = _list(env.get("FLEETPROMPT_REDEEM_SOURCES")) or DEFAULT_REDEEM_SOURCES
        for source in sources:
            if not source.isascii() or not source.replace("-", "").replace("_", "").isalnum():
                raise ConfigError(
                    "FLEETPROMPT_REDEEM_SOURCES",
                    "sources are comma-separated names of letters, digits, '-' and '_'",
                )
        cursor_raw = env.get("FLEETPROMPT_CURSOR_KEY", "").strip()
        cursor_key = _secret(cursor_raw, "FLEETPROMPT_CURSOR_KEY") if cursor_raw else None
        redis_url = env.get("FLEETPROMPT_REDIS_URL", "").strip() or None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix:")):
            raise ConfigError("FLEETPROMPT_REDIS_URL", "must be a redis:// or rediss:// URL")
        try:
            image_hosts = normalize_host_allowlist(_list(env.get("FLEETPROMPT_IMAGE_HOSTS")))
        except ValueError as exc:
            raise ConfigError("FLEETPROMPT_IMAGE_HOSTS", str(exc)) from None
        trusted_proxies = _list(env.get("FLEETPROMPT_TRUSTED_PROXIES"))
        try:
            parse_networks(trusted_proxies)
        except ValueError as exc:
            raise ConfigError("FLEETPROMPT_TRUSTED_PROXIES", str(exc)) from None
        log_level = (env.get("FLEETPROMPT_LOG_LEVEL", "").strip() or "INFO").upper()
        if log_level not in _LOG_LEVELS:
            raise ConfigError("FLEETPROMPT_LOG_LEVEL", "must be one of " + ", ".join(_LOG_LEVELS))
        return cls(
            database_url=database_url,
            redeem_secrets=secrets,
            redeem_sources=frozenset(sources),
            cursor_key=cursor_key,
            redis_url=redis_url,
            redis_prefix=env.get("FLEETPROMPT_REDIS_PREFIX", "").strip() or "fleetprompt:rl:",
            image_hosts=image_hosts,
            rate_limits=_rate_limits(env.get("FLEETPROMPT_RATE_LIMITS"), "FLEETPROMPT_RATE_LIMITS"),
            oidc=_oidc(env),
            log_level=log_level,
            trusted_proxies=trusted_proxies,
            redeem_deadline_ms=_positive_int(
                env.get("FLEETPROMPT_REDEEM_DEADLINE_MS"),
                "FLEETPROMPT_REDEEM_DEADLINE_MS",
                maximum=600_000,
            )
            or 5_000,
            threads=_positive_int(
                env.get("FLEETPROMPT_THREADS"), "FLEETPROMPT_THREADS", maximum=64
            ),
            inline_use_cases=_auto_switch(
                env.get("FLEETPROMPT_INLINE_USE_CASES"), "FLEETPROMPT_INLINE_USE_CASES"
            ),
            hsts_max_age_s=_hsts(env.get("FLEETPROMPT_HSTS_MAX_AGE")),
            public_url=_public_url(env.get("FLEETPROMPT_PUBLIC_URL")),
            mcp_token=env.get("FLEETPROMPT_MCP_TOKEN", "").strip() or None,
            **_timeouts(env),
            cache_mb=_cache_mb(env.get("FLEETPROMPT_CACHE_MB")),
            sqlite_cache_mb=_positive_int(
                env.get("FLEETPROMPT_SQLITE_CACHE_MB"),
                "FLEETPROMPT_SQLITE_CACHE_MB",
                maximum=65_536,
            ),
            web=WebSettings.from_env(env),
            head_timeout_ms=_positive_int(
                env.get("FLEETPROMPT_HEAD_TIMEOUT_MS"),
                "FLEETPROMPT_HEAD_TIMEOUT_MS",
                maximum=60_000,
            )
            or 10_000,
            search_index=env.get("FLEETPROMPT_SEARCH_INDEX", "").strip() or None,
        )

    @property
    def logging_level(self) -> int:
        return logging.getLevelName(self.log_level)  # type: ignore[no-any-return]


def _public_url(raw: str | None) -> str | None:
    """``https://host[:port]`` (plain http only on loopback), no path, query or credentials."""
    value = (raw or "").strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if (
        parts.scheme not in ("https", "http")
        or (parts.scheme == "http" and not loopback)
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ConfigError(
            "FLEETPROMPT_PUBLIC_URL",
            "must be https://HOST[:PORT] (http:// only on loopback), without a path",
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _cache_mb(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 32
    if raw.strip() == "0":
        return 0
    return _positive_int(raw, "FLEETPROMPT_CACHE_MB", maximum=65_536) or 32


def _oidc(env: Mapping[str, str]) -> OidcSettings | None:
    issuer = env.get("FLEETPROMPT_OIDC_ISSUER", "").strip()
    audience = env.get("FLEETPROMPT_OIDC_AUDIENCE", "").strip()
    jwks_url = env.get("FLEETPROMPT_OIDC_JWKS_URL", "").strip() or None
    jwks_raw = env.get("FLEETPROMPT_OIDC_JWKS", "").strip()
    if not (issuer or audience or jwks_url or jwks_raw):
        return None
    if not issuer or not audience:
        raise ConfigError(
            "FLEETPROMPT_OIDC_ISSUER" if not issuer else "FLEETPROMPT_OIDC_AUDIENCE",
            "OIDC needs both FLEETPROMPT_OIDC_ISSUER and FLEETPROMPT_OIDC_AUDIENCE",
        )
    # Plain http only on loopback (a local identity provider, tests).
    if jwks_url is not None and not jwks_url.startswith(
        ("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")
    ):
        raise ConfigError("FLEETPROMPT_OIDC_JWKS_URL", "must be an https:// URL")
    keys: tuple[Mapping[str, object], ...] = ()
    if jwks_raw:
        try:
            document = json.loads(jwks_raw)
            keys = tuple(document["keys"])
            if not all(isinstance(key, dict) for key in keys):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                "FLEETPROMPT_OIDC_JWKS", 'must be a JWKS document: {"keys": [...]}'
            ) from None
    if jwks_url is None and not keys:
        raise ConfigError(
            "FLEETPROMPT_OIDC_JWKS_URL", "OIDC needs FLEETPROMPT_OIDC_JWKS_URL or _JWKS"
        )
    return OidcSettings(issuer=issuer, audience=audience, jwks_url=jwks_url, keys=keys)
