"""``Settings.from_env``: every ``FLEETPROMPT_*`` variable, its default, and its errors.

An invalid value must stop the server with a :class:`ConfigError` that names the
variable (``.variable`` and the message) and never repeats a secret: keys,
passwords inside URLs, inline JWKS documents.
"""

from __future__ import annotations

import json

import pytest

from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_http.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDEEM_SOURCES,
    ConfigError,
    Settings,
)

KEY_A = "a" * 32
KEY_B = "b" * 40
JWKS = {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNpZ25pbmcta2V5LXZhbHVl", "kid": "k1"}]}


def _settings(**variables: str) -> Settings:
    return Settings.from_env({f"FLEETPROMPT_{name}": value for name, value in variables.items()})


# --------------------------------------------------------------------------- defaults


def test_defaults_with_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./fleetprompt.db"
    assert settings.uses_sqlite
    assert not settings.uses_memory
    assert settings.redeem_secrets == ()
    assert settings.redeem_sources == frozenset(DEFAULT_REDEEM_SOURCES)
    assert DEFAULT_REDEEM_SOURCES == ("whs", "agentromatic", "agentelic", "specprompt")
    assert settings.cursor_key is None
    assert settings.redis_url is None
    assert settings.redis_prefix == "fleetprompt:rl:"
    assert settings.image_hosts == frozenset()
    assert settings.rate_limits == RateLimits()
    assert settings.oidc is None
    assert settings.log_level == "INFO"
    assert settings.threads is None
    assert settings.trusted_proxies == ()  # X-Forwarded-For is believed from nobody
    assert Settings() == settings


def test_the_default_rate_limits() -> None:
    limits = Settings.from_env({}).rate_limits
    assert limits is not None
    assert {action: limits.rule(action) for action in Action} == {
        Action.SEARCH: RateRule(120, 60_000),
        Action.DETAIL: RateRule(240, 60_000),
        Action.PUBLISHER_WRITE: RateRule(60, 60_000),
        Action.INTENT_CREATE: RateRule(30, 60_000),
        Action.TOKEN_ISSUE: RateRule(30, 60_000),
        Action.REDEEM: RateRule(300, 60_000),
        Action.LOGIN: RateRule(10, 60_000),
        Action.AUTH_FAILURE: RateRule(60, 60_000),
    }


def test_other_variables_are_ignored_and_blank_means_default() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "mysql://elsewhere",
            "FLEETPROMPT_DATABASE_URL": "  ",
            "FLEETPROMPT_REDIS_URL": "",
            "FLEETPROMPT_LOG_LEVEL": " ",
            "FLEETPROMPT_THREADS": "",
            "FLEETPROMPT_RATE_LIMITS": "",
            "FLEETPROMPT_REDEEM_SOURCES": " , ",
        }
    )
    assert settings == Settings()


# --------------------------------------------------------------------------- every variable


@pytest.mark.parametrize(
    ("url", "memory", "sqlite"),
    [
        ("memory://", True, False),
        ("sqlite:////var/lib/fleetprompt/fp.db", False, True),
        ("sqlite:///./other.db", False, True),
        ("postgresql://fp@db:5432/fp", False, False),
        ("postgres://fp@db/fp", False, False),
        ("postgresql+psycopg://fp:pw@db/fp", False, False),
    ],
)
def test_database_url(url: str, memory: bool, sqlite: bool) -> None:
    settings = _settings(DATABASE_URL=f" {url} ")
    assert settings.database_url == url
    assert settings.uses_memory is memory
    assert settings.uses_sqlite is sqlite


def test_redeem_secrets_several_for_rotation() -> None:
    settings = _settings(INTERNAL_REDEEM_SECRET=f"{KEY_A}, {KEY_B}")
    assert settings.redeem_secrets == (KEY_A.encode(), KEY_B.encode())
    assert KEY_A not in repr(settings)


def test_a_secret_of_32_multibyte_characters_counts_bytes() -> None:
    assert _settings(INTERNAL_REDEEM_SECRET="é" * 16).redeem_secrets == (("é" * 16).encode(),)


def test_redeem_sources() -> None:
    settings = _settings(REDEEM_SOURCES="whs, my-system,other_one")
    assert settings.redeem_sources == frozenset({"whs", "my-system", "other_one"})


def test_cursor_key() -> None:
    settings = _settings(CURSOR_KEY=KEY_B)
    assert settings.cursor_key == KEY_B.encode()
    assert KEY_B not in repr(settings)


@pytest.mark.parametrize(
    "url", ["redis://cache:6379/0", "rediss://:pw@cache:6380/1", "unix:///run/redis.sock"]
)
def test_redis_url_and_prefix(url: str) -> None:
    settings = _settings(REDIS_URL=url, REDIS_PREFIX="shop-a:")
    assert settings.redis_url == url
    assert settings.redis_prefix == "shop-a:"
    assert "pw" not in repr(settings)


def test_image_hosts_are_normalized() -> None:
    settings = _settings(IMAGE_HOSTS=" Images.Example.com ,*.cdn.example.net,,")
    assert settings.image_hosts == frozenset({"images.example.com", "*.cdn.example.net"})


def test_rate_limit_overrides_keep_the_other_defaults() -> None:
    settings = _settings(RATE_LIMITS="search=300/30, redeem=1000")
    assert settings.rate_limits is not None
    assert settings.rate_limits.rule(Action.SEARCH) == RateRule(300, 30_000)
    assert settings.rate_limits.rule(Action.REDEEM) == RateRule(1000, 60_000)
    assert settings.rate_limits.rule(Action.DETAIL) == RateLimits().rule(Action.DETAIL)


@pytest.mark.parametrize("value", ["off", "OFF", " Off "])
def test_rate_limits_off(value: str) -> None:
    assert _settings(RATE_LIMITS=value).rate_limits is None


@pytest.mark.parametrize(
    ("value", "level"), [("debug", "DEBUG"), ("INFO", "INFO"), (" warning ", "WARNING")]
)
def test_log_level(value: str, level: str) -> None:
    settings = _settings(LOG_LEVEL=value)
    assert settings.log_level == level
    assert settings.logging_level == getattr(__import__("logging"), level)


@pytest.mark.parametrize(("value", "size"), [("1", 1), (" 25 ", 25), ("64", 64)])
def test_threads(value: str, size: int) -> None:
    """FLEETPROMPT_THREADS sets the worker threads of a process."""
    assert _settings(THREADS=value).worker_threads == size


@pytest.mark.parametrize(
    ("value", "size"), [("", 32), ("0", 0), (" 0 ", 0), ("1", 1), ("512", 512)]
)
def test_cache_mb(value: str, size: int) -> None:
    """FLEETPROMPT_CACHE_MB sizes the public response cache of a process; 0 turns it off."""
    assert _settings(CACHE_MB=value).cache_mb == size


@pytest.mark.parametrize(("value", "size"), [("", None), ("1", 1), (" 16 ", 16)])
def test_sqlite_cache_mb(value: str, size: int | None) -> None:
    """FLEETPROMPT_SQLITE_CACHE_MB bounds each SQLite connection's page cache; unset, the
    SQL adapter's default (``sql.SQLITE_CACHE_MIB``) applies."""
    assert _settings(SQLITE_CACHE_MB=value).sqlite_cache_mb == size


def test_threads_default_to_one_on_sqlite_and_four_otherwise() -> None:
    """SQLite has one writer: more threads only contend; PostgreSQL overlaps round trips."""
    assert Settings().worker_threads == 1
    assert _settings(DATABASE_URL="postgresql://db/fp").worker_threads == 4


def test_inline_use_cases_default_to_in_process_databases() -> None:
    """ADR 0036: inline use cases run on the event loop on SQLite and in memory, never
    by default on PostgreSQL (each statement a round trip the loop would wait out)."""
    assert Settings().runs_inline
    assert _settings(DATABASE_URL="memory://").runs_inline
    assert not _settings(DATABASE_URL="postgresql://db/fp").runs_inline


@pytest.mark.parametrize(
    ("value", "url", "inline"),
    [
        ("off", "sqlite:///fp.db", False),
        (" No ", "sqlite:///fp.db", False),
        ("on", "postgresql://db/fp", True),
        ("auto", "postgresql://db/fp", False),
        (" ", "sqlite:///fp.db", True),
    ],
)
def test_inline_use_cases_switch(value: str, url: str, inline: bool) -> None:
    """FLEETPROMPT_INLINE_USE_CASES: on, off, or auto (blank) for the database's default."""
    assert _settings(INLINE_USE_CASES=value, DATABASE_URL=url).runs_inline is inline


def test_inline_use_cases_refuses_other_values() -> None:
    with pytest.raises(ConfigError, match="FLEETPROMPT_INLINE_USE_CASES"):
        _settings(INLINE_USE_CASES="sometimes")


def test_oidc_with_a_jwks_url() -> None:
    oidc = _settings(
        OIDC_ISSUER="https://id.example.com/",
        OIDC_AUDIENCE="fleetprompt",
        OIDC_JWKS_URL="https://id.example.com/jwks.json",
    ).oidc
    assert oidc is not None
    assert (oidc.issuer, oidc.audience) == ("https://id.example.com/", "fleetprompt")
    assert oidc.jwks_url == "https://id.example.com/jwks.json"
    assert oidc.keys == ()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/jwks", "http://localhost/jwks"])
def test_oidc_plain_http_only_on_loopback(url: str) -> None:
    oidc = _settings(OIDC_ISSUER="i", OIDC_AUDIENCE="a", OIDC_JWKS_URL=url).oidc
    assert oidc is not None
    assert oidc.jwks_url == url


def test_oidc_with_inline_keys() -> None:
    oidc = _settings(OIDC_ISSUER="i", OIDC_AUDIENCE="a", OIDC_JWKS=json.dumps(JWKS)).oidc
    assert oidc is not None
    assert oidc.jwks_url is None
    assert oidc.keys == tuple(JWKS["keys"])


# --------------------------------------------------------------------------- invalid values


def _config_error(**variables: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        _settings(**variables)
    error = raised.value
    assert str(error).startswith(f"{error.variable}: "), str(error)
    return error


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("DATABASE_URL", "mysql://fp:hunter2-db-password@db/fp", "hunter2-db-password"),
        ("DATABASE_URL", "https://fp:hunter2-db-password@db/fp", "hunter2-db-password"),
        ("DATABASE_URL", "fleetprompt.db", "fleetprompt.db"),
        ("INTERNAL_REDEEM_SECRET", "short-secret-value", "short-secret-value"),
        ("INTERNAL_REDEEM_SECRET", f"{KEY_A},tiny-secret", "tiny-secret"),
        ("INTERNAL_REDEEM_SECRET", "x" * 31, "x" * 31),
        ("CURSOR_KEY", "short-cursor-key", "short-cursor-key"),
        ("REDIS_URL", "http://:hunter2-redis@cache:6379", "hunter2-redis"),
        ("REDIS_URL", "cache:6379", "cache:6379"),
        ("OIDC_JWKS_URL", "http://id.example.com/jwks?token=jwks-secret", "jwks-secret"),
        ("OIDC_JWKS", '{"keys": "inline-jwks-secret"}', "inline-jwks-secret"),
        ("OIDC_JWKS", "not json inline-jwks-secret", "inline-jwks-secret"),
        ("OIDC_JWKS", '[{"k": "inline-jwks-secret"}]', "inline-jwks-secret"),
    ],
)
def test_invalid_secret_bearing_values_name_the_variable_never_the_value(
    variable: str, value: str, secret: str
) -> None:
    variables = {variable: value}
    if variable.startswith("OIDC_JWKS"):
        variables |= {"OIDC_ISSUER": "https://id.example.com/", "OIDC_AUDIENCE": "fp"}
    error = _config_error(**variables)
    assert error.variable == f"FLEETPROMPT_{variable}"
    assert secret not in str(error)
    assert secret not in repr(error)
    assert all(secret not in str(arg) for arg in error.args)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDEEM_SOURCES", "whs,bad source"),
        ("REDEEM_SOURCES", "whs;rm"),
        ("REDEEM_SOURCES", "wħs"),
        ("IMAGE_HOSTS", "https://images.example.com/"),
        ("IMAGE_HOSTS", "*"),
        ("IMAGE_HOSTS", "images.example.com/path"),
        ("RATE_LIMITS", "search"),
        ("RATE_LIMITS", "searches=10/60"),
        ("RATE_LIMITS", "search=0/60"),
        ("RATE_LIMITS", "search=10/0"),
        ("RATE_LIMITS", "search=-1/60"),
        ("RATE_LIMITS", "search=ten/60"),
        ("RATE_LIMITS", "search=10/60/1"),
        ("RATE_LIMITS", "=10/60"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "CRITICAL"),
        ("THREADS", "0"),
        ("THREADS", "65"),
        ("THREADS", "-3"),
        ("THREADS", "ten"),
        ("THREADS", "2.5"),
        # str.isdigit() accepts superscripts, which int() refuses:
        ("THREADS", "²"),
        ("THREADS", "1²"),
        ("CACHE_MB", "-1"),
        ("CACHE_MB", "lots"),
        ("CACHE_MB", "65537"),
        ("SQLITE_CACHE_MB", "0"),
        ("SQLITE_CACHE_MB", "8MB"),
        ("SQLITE_CACHE_MB", "65537"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_variable(variable: str, value: str) -> None:
    error = _config_error(**{variable: value})
    assert error.variable == f"FLEETPROMPT_{variable}"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OIDC_ISSUER": "https://id.example.com/"}, "FLEETPROMPT_OIDC_AUDIENCE"),
        ({"OIDC_AUDIENCE": "fp"}, "FLEETPROMPT_OIDC_ISSUER"),
        ({"OIDC_JWKS_URL": "https://id.example.com/jwks"}, "FLEETPROMPT_OIDC_ISSUER"),
        ({"OIDC_ISSUER": "i", "OIDC_AUDIENCE": "a"}, "FLEETPROMPT_OIDC_JWKS_URL"),
        (
            {"OIDC_ISSUER": "i", "OIDC_AUDIENCE": "a", "OIDC_JWKS_URL": "ftp://id/jwks"},
            "FLEETPROMPT_OIDC_JWKS_URL",
        ),
    ],
)
def test_incomplete_oidc_configuration(variables: dict[str, str], named: str) -> None:
    assert _config_error(**variables).variable == named


def test_config_error_is_a_value_error_with_the_variable() -> None:
    error = ConfigError("FLEETPROMPT_X", "is wrong")
    assert isinstance(error, ValueError)
    assert error.variable == "FLEETPROMPT_X"
    assert str(error) == "FLEETPROMPT_X: is wrong"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    """``FLEETPROMPT_TRUSTED_PROXIES``: comma-separated addresses and networks; a bad entry
    stops the server naming the variable."""
    settings = _settings(TRUSTED_PROXIES="10.0.0.5, 192.168.0.0/16,::1")
    assert settings.trusted_proxies == ("10.0.0.5", "192.168.0.0/16", "::1")
    error = _config_error(TRUSTED_PROXIES="10.0.0.5,proxy.internal")
    assert error.variable == "FLEETPROMPT_TRUSTED_PROXIES"
    assert "proxy.internal" in str(error)
