"""The ``fleetprompt`` command line, against real SQLite databases.

Most commands run in-process through click's ``CliRunner``; a few run as the
installed console script in a subprocess, and ``fleetprompt serve`` is started
for real on a free port. Every failure must be one clear line on stderr
(naming the variable when configuration is wrong, never a secret), a
non-zero exit status and no traceback.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.schema import alembic_config
from fleetprompt_http.app import create_app
from fleetprompt_http.cli import main
from fleetprompt_http.settings import Settings
from fleetprompt_http.storage import describe_database

TOKEN = re.compile(r"^fpat_[A-Za-z0-9]+$")
USER_ID = re.compile(r"^[A-Za-z0-9_-]+$")
SERVE_TIMEOUT_S = 30.0


def _clean_environment(**variables: str) -> dict[str, str]:
    """The process environment without any ``FLEETPROMPT_*`` setting, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update({f"FLEETPROMPT_{name}": value for name, value in variables.items()})
    return env


class Cli:
    """``fleetprompt`` in-process, with one database and otherwise default settings."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.runner = CliRunner()

    def __call__(self, *args: str, **variables: str) -> Result:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FLEETPROMPT_")}
        env.update({"FLEETPROMPT_DATABASE_URL": self.database_url})
        env.update({f"FLEETPROMPT_{name}": value for name, value in variables.items()})
        return self.runner.invoke(main, list(args), env=env, catch_exceptions=True)

    def ok(self, *args: str, **variables: str) -> Result:
        result = self(*args, **variables)
        assert result.exit_code == 0, (args, result.exit_code, result.stderr, result.exception)
        return result

    def app(self) -> TestClient[Any]:
        return TestClient(create_app(Settings(database_url=self.database_url)))


def _assert_failed(result: Result, *, code: int | None = None, names: str | None = None) -> str:
    """A clean failure: non-zero, one ``fleetprompt: error:`` message (or click's usage
    error), no traceback. Returns stderr without the line naming the database."""
    assert result.exit_code != 0, (result.exit_code, result.stdout, result.stderr)
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout
    assert result.stderr.strip(), "no message"
    if names is not None:
        assert names in result.stderr, result.stderr
    lines = result.stderr.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("fleetprompt: database: "))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'fp.db'}")


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    cli.ok("db", "upgrade")
    return cli


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- db


def test_db_upgrade_migrates_to_the_head_says_what_it_applied_and_is_repeatable(
    cli: Cli,
) -> None:
    result = cli.ok("db", "upgrade")
    assert result.stdout == ""
    revisions = _revisions()
    assert f"applied {len(revisions)} migration(s): {', '.join(revisions)}" in result.stderr
    assert f"latest schema revision, {sql.head_revision()}" in result.stderr
    engine = sa.create_engine(cli.database_url)
    try:
        assert sql.current_revision(engine) == sql.head_revision()
    finally:
        engine.dispose()
    again = cli.ok("db", "upgrade")
    assert "nothing to apply" in again.stderr
    assert "applied" not in again.stderr


def _revisions() -> list[str]:
    """Every shipped revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [step.revision for step in reversed(list(script.walk_revisions()))]


def test_db_upgrade_from_an_older_revision_applies_only_the_rest(cli: Cli) -> None:
    revisions = _revisions()
    if len(revisions) < 2:  # pragma: no cover - one migration only
        pytest.skip("needs two migrations")
    engine = sql.create_engine(cli.database_url)
    try:
        sql.upgrade(engine, revisions[0])
    finally:
        engine.dispose()
    assert cli.ok("db", "current").stdout == f"{revisions[0]}\n"
    result = cli.ok("db", "upgrade")
    assert f"applied {len(revisions) - 1} migration(s): {', '.join(revisions[1:])}" in (
        result.stderr
    )


def test_db_current_prints_the_revision_and_says_whether_it_is_the_latest(cli: Cli) -> None:
    head = sql.head_revision()
    _assert_failed(cli("db", "current"), code=1, names="no database at")  # nothing created
    assert not Path(cli.database_url.removeprefix("sqlite:///")).exists()
    cli.ok("db", "upgrade")
    result = cli.ok("db", "current")
    assert result.stdout == f"{head}\n"
    assert "this is the latest schema revision" in result.stderr


def test_commands_refuse_a_database_that_is_not_migrated(cli: Cli) -> None:
    path = Path(cli.database_url.removeprefix("sqlite:///"))
    sa.create_engine(cli.database_url).connect().close()  # an empty SQLite file
    assert path.exists()
    stderr = _assert_failed(cli("users", "create", "ext-1"), code=1)
    assert "fleetprompt db upgrade" in stderr
    assert str(path) in stderr  # which database it means
    current = cli.ok("db", "current")
    assert current.stdout == "none\n"
    assert "fleetprompt db upgrade" in current.stderr


def test_commands_refuse_a_missing_sqlite_file_instead_of_creating_one(cli: Cli) -> None:
    path = Path(cli.database_url.removeprefix("sqlite:///"))
    stderr = _assert_failed(cli("users", "create", "ext-1"), code=1)
    assert f"no database at {path}" in stderr
    assert "fleetprompt db upgrade" in stderr
    assert not path.exists()


def test_the_default_database_is_relative_to_the_current_directory_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FLEETPROMPT_")}
    missing = runner.invoke(main, ["tokens", "list", "ext-1"], env=env)
    stderr = _assert_failed(missing, code=1)
    assert f"no database at {tmp_path / 'fleetprompt.db'}" in stderr
    assert "FLEETPROMPT_DATABASE_URL is unset" in stderr
    upgraded = runner.invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"database: SQLite file {tmp_path / 'fleetprompt.db'}" in upgraded.stderr
    assert (tmp_path / "fleetprompt.db").exists()


def test_every_database_command_says_which_database_it_uses(migrated: Cli) -> None:
    path = migrated.database_url.removeprefix("sqlite:///")
    for args in (("users", "create", "ext-1"), ("tokens", "list", "ext-1"), ("purge",)):
        assert f"fleetprompt: database: SQLite file {path}\n" in migrated.ok(*args).stderr


def test_a_postgresql_database_is_named_without_its_password() -> None:
    described = describe_database(
        Settings(database_url="postgresql://fp:hunter2-pg@db.internal:5432/fleet")
    )
    assert described == "PostgreSQL postgresql://fp:***@db.internal:5432/fleet"
    assert "hunter2" not in described


def test_db_upgrade_refuses_memory(cli: Cli) -> None:
    _assert_failed(cli("db", "upgrade", DATABASE_URL="memory://"), code=2, names="memory://")


# --------------------------------------------------------------------------- users


def test_users_create_prints_the_user_id_and_grants_roles(migrated: Cli) -> None:
    result = migrated.ok(
        "users", "create", "ext-ada", "--display-name", "Ada", "--publisher", "--admin"
    )
    user_id = result.stdout.strip()
    assert result.stdout == user_id + "\n"
    assert USER_ID.match(user_id), user_id
    again = migrated.ok("users", "create", "ext-ada")
    assert again.stdout.strip() == user_id  # idempotent: the same user
    revoked = migrated.ok("users", "revoke", "ext-ada", "--role", "admin")
    assert revoked.stdout == "publisher\n"
    granted = migrated.ok("users", "grant", "ext-ada", "--role", "admin")
    assert granted.stdout == "admin publisher\n"
    assert migrated.ok("users", "revoke", "ext-ada", "--role", "publisher").stdout == "admin\n"
    assert migrated.ok("users", "revoke", "ext-ada", "--role", "admin").stdout == "(no roles)\n"


def test_roles_granted_by_the_cli_are_the_ones_the_api_sees(migrated: Cli) -> None:
    migrated.ok("users", "create", "ext-pub")
    token = migrated.ok("tokens", "create", "ext-pub").stdout.strip()
    with migrated.app() as client:
        assert client.get("/v1/publisher/profile", headers=_bearer(token)).status_code == 403
        migrated.ok("users", "grant", "ext-pub", "--role", "publisher")
        assert client.get("/v1/publisher/profile", headers=_bearer(token)).status_code == 200
        assert client.get("/v1/admin/audit", headers=_bearer(token)).status_code == 403


def test_users_list_shows_every_user_oldest_first_and_filters_by_role(migrated: Cli) -> None:
    ada = migrated.ok("users", "create", "ext-ada", "--display-name", "Ada", "--admin").stdout
    bob = migrated.ok("users", "create", "ext-bob").stdout
    cy = migrated.ok("users", "create", "ext-cy", "--publisher", "--admin").stdout
    listed = migrated.ok("users", "list")
    assert listed.stdout.splitlines() == [
        f"{ada.strip()}\text-ada\tadmin\tAda",
        f"{bob.strip()}\text-bob\t-\t",
        f"{cy.strip()}\text-cy\tadmin,publisher\t",
    ]
    assert "3 user(s)" in listed.stderr
    admins = migrated.ok("users", "list", "--role", "publisher")
    assert [line.split("\t")[1] for line in admins.stdout.splitlines()] == ["ext-cy"]
    assert "1 user(s) with the publisher role" in admins.stderr


@pytest.mark.parametrize("verb", ["grant", "revoke"])
def test_users_grant_and_revoke_fail_for_an_unknown_user(migrated: Cli, verb: str) -> None:
    stderr = _assert_failed(migrated("users", verb, "nobody", "--role", "admin"), code=1)
    assert stderr.startswith("fleetprompt: error: NOT_FOUND"), stderr


@pytest.mark.parametrize("role", ["superuser", "user", ""])
def test_users_grant_refuses_a_bad_role(migrated: Cli, role: str) -> None:
    migrated.ok("users", "create", "ext-1")
    stderr = _assert_failed(migrated("users", "grant", "ext-1", "--role", role), code=2)
    assert "--role" in stderr


@pytest.mark.parametrize("external_id", ["", "x" * 256, "bad\x00id"])
def test_users_create_refuses_an_unusable_external_id(migrated: Cli, external_id: str) -> None:
    stderr = _assert_failed(migrated("users", "create", external_id), code=1)
    assert "VALIDATION_FAILED" in stderr
    assert "externalId" in stderr


def test_users_create_refuses_a_display_name_over_80_characters(migrated: Cli) -> None:
    """An operator's display name is checked, not silently dropped."""
    result = migrated("users", "create", "ext-long", "--display-name", "n" * 81)
    stderr = _assert_failed(result, code=1)
    assert "displayName" in stderr
    migrated.ok("users", "create", "ext-long", "--display-name", "n" * 80)


# --------------------------------------------------------------------------- tokens


def test_tokens_create_prints_only_the_token_and_it_authenticates(migrated: Cli) -> None:
    migrated.ok("users", "create", "ext-pub", "--publisher")
    result = migrated.ok("tokens", "create", "ext-pub", "--name", "laptop")
    assert result.stdout.count("\n") == 1
    token = result.stdout.strip()
    assert TOKEN.match(token), result.stdout
    assert token not in result.stderr
    match = re.search(r"token id: (pat_[A-Za-z0-9]+)", result.stderr)
    assert match, result.stderr
    token_id = match.group(1)
    with migrated.app() as client:
        profile = client.get("/v1/publisher/profile", headers=_bearer(token))
        assert profile.status_code == 200, profile.text
        revoked = migrated.ok("tokens", "revoke", token_id)
        assert revoked.stdout == ""
        assert token_id in revoked.stderr
        after = client.get("/v1/publisher/profile", headers=_bearer(token))
        assert after.status_code == 401, after.text


def test_tokens_create_with_an_expiry(migrated: Cli) -> None:
    migrated.ok("users", "create", "ext-1")
    token = migrated.ok("tokens", "create", "ext-1", "--expires-in-days", "1").stdout.strip()
    assert TOKEN.match(token)


def test_tokens_list_shows_ids_states_and_names_never_a_token(migrated: Cli) -> None:
    migrated.ok("users", "create", "ext-1")
    first = migrated.ok("tokens", "create", "ext-1", "--name", "laptop")
    second = migrated.ok("tokens", "create", "ext-1", "--name", "ci", "--expires-in-days", "5")
    first_id = re.search(r"token id: (pat_\w+)", first.stderr)
    assert first_id
    migrated.ok("tokens", "revoke", first_id.group(1))
    listed = migrated.ok("tokens", "list", "ext-1")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(row[1], row[4]) for row in rows] == [("active", "ci"), ("revoked", "laptop")]
    assert rows[1][0] == first_id.group(1)
    assert rows[0][3] != "-"  # the expiry
    assert rows[1][3] == "-"
    for raw in (first.stdout.strip(), second.stdout.strip()):
        assert raw not in listed.stdout
    assert "2 token(s) of ext-1" in listed.stderr
    _assert_failed(migrated("tokens", "list", "nobody"), code=1, names="NOT_FOUND")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("tokens", "create", "nobody"), 1),
        (("tokens", "create", "ext-1", "--expires-in-days", "0"), 1),
        (("tokens", "create", "ext-1", "--expires-in-days", "many"), 2),
        (("tokens", "create", "ext-1", "--name", "   "), 1),
        (("tokens", "revoke", "pat_doesnotexist"), 1),
    ],
)
def test_token_commands_fail_cleanly(migrated: Cli, args: tuple[str, ...], code: int) -> None:
    migrated.ok("users", "create", "ext-1")
    _assert_failed(migrated(*args), code=code)


# --------------------------------------------------------------------------- demo, purge


def _exports(stdout: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"export (FP_[A-Z_]+)=(\S+)", line)
        assert match, line
        exports[match.group(1)] = match.group(2)
    return exports


def test_demo_fills_a_working_marketplace(cli: Cli) -> None:
    result = cli.ok("demo")  # migrates a fresh database itself
    exports = _exports(result.stdout)
    assert set(exports) == {
        "FP_PUBLISHER_TOKEN",
        "FP_BUYER_TOKEN",
        "FP_ADMIN_TOKEN",
        "FP_LISTING_ID",
        "FP_RELEASE_ID",
    }
    for name in ("FP_PUBLISHER_TOKEN", "FP_BUYER_TOKEN", "FP_ADMIN_TOKEN"):
        assert TOKEN.match(exports[name]), name
    with cli.app() as client:
        publisher = _bearer(exports["FP_PUBLISHER_TOKEN"])
        assert client.get("/v1/publisher/profile", headers=publisher).status_code == 200
        buyer = _bearer(exports["FP_BUYER_TOKEN"])
        assert client.get("/v1/install/intents", headers=buyer).status_code == 200
        assert client.get("/v1/publisher/profile", headers=buyer).status_code == 403
        admin = _bearer(exports["FP_ADMIN_TOKEN"])
        assert client.get("/v1/admin/audit", headers=admin).status_code == 200

        catalogue = client.get("/v1/public/listings/search").json()
        assert len(catalogue["items"]) == 4
        assert {item["status"] for item in catalogue["items"]} == {"published"}
        assert {item["assetKind"] for item in catalogue["items"]} == {
            "whs_agent",
            "agentromatic_workflow",
            "spec_asset",
        }

        listing_id = exports["FP_LISTING_ID"]
        every = client.get(
            f"/v1/public/listings/{listing_id}/releases", params={"includeRevoked": "true"}
        ).json()["items"]
        assert sorted(r["status"] for r in every) == ["published", "revoked"]
        visible = client.get(f"/v1/public/listings/{listing_id}/releases").json()["items"]
        assert [r["releaseId"] for r in visible] == [exports["FP_RELEASE_ID"]]
        revoked = [
            r
            for item in catalogue["items"]
            for r in client.get(
                f"/v1/public/listings/{item['listingId']}/releases",
                params={"includeRevoked": "true"},
            ).json()["items"]
            if r["status"] == "revoked"
        ]
        assert len(revoked) == 1

        intent = client.post(
            "/v1/install/intents",
            json={
                "listingId": listing_id,
                "releaseId": exports["FP_RELEASE_ID"],
                "targetSystem": "whs",
            },
            headers={**buyer, "Idempotency-Key": "demo-1"},
        )
        assert intent.status_code == 201, intent.text


def test_demo_twice_changes_nothing_but_prints_fresh_tokens(cli: Cli) -> None:
    first = _exports(cli.ok("demo").stdout)
    second = _exports(cli.ok("demo").stdout)
    assert first["FP_PUBLISHER_TOKEN"] != second["FP_PUBLISHER_TOKEN"]
    assert (first["FP_LISTING_ID"], first["FP_RELEASE_ID"]) == (
        second["FP_LISTING_ID"],
        second["FP_RELEASE_ID"],
    )
    with cli.app() as client:
        items = client.get("/v1/public/listings/search").json()["items"]
        assert len(items) == 4
        every = client.get(
            f"/v1/public/listings/{first['FP_LISTING_ID']}/releases",
            params={"includeRevoked": "true"},
        ).json()["items"]
        assert sorted(r["status"] for r in every) == ["published", "revoked"]
        for name in ("FP_PUBLISHER_TOKEN", "FP_BUYER_TOKEN", "FP_ADMIN_TOKEN"):
            me = client.get("/v1/install/intents", headers=_bearer(first[name]))
            assert me.status_code == 200, name  # the first run's tokens still work


def test_demo_labels_what_it_prints(cli: Cli) -> None:
    comments = [line for line in cli.ok("demo").stdout.splitlines() if line.startswith("#")]
    assert comments == [
        "# demo marketplace: 4 published listings by demo-acme and demo-flows",
        "# fresh API tokens of demo-acme (publisher), demo-buyer and demo-admin (admin):",
        "# the Support Triage Agent listing and its release 1.0.0 (its 1.0.1 is revoked):",
    ]


def test_demo_refuses_memory(cli: Cli) -> None:
    _assert_failed(cli("demo", DATABASE_URL="memory://"), code=2, names="memory://")


def test_purge_runs_and_reports(migrated: Cli) -> None:
    migrated.ok("demo")
    result = migrated.ok("purge")
    assert re.fullmatch(
        r"intents expired: \d+, tokens expired: \d+, idempotency records dropped: \d+, "
        r"web sessions dropped: \d+\n",
        result.stdout,
    ), result.stdout


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("args", "variables", "variable", "secret"),
    [
        (
            ("serve",),
            {"INTERNAL_REDEEM_SECRET": "tiny-redeem-secret"},
            "FLEETPROMPT_INTERNAL_REDEEM_SECRET",
            "tiny-redeem-secret",
        ),
        (
            ("serve",),
            {"DATABASE_URL": "mysql://fp:hunter2-db-pass@db/fp"},
            "FLEETPROMPT_DATABASE_URL",
            "hunter2-db-pass",
        ),
        (
            ("users", "create", "ext-1"),
            {"DATABASE_URL": "mongodb://fp:hunter2-db-pass@db/fp"},
            "FLEETPROMPT_DATABASE_URL",
            "hunter2-db-pass",
        ),
        (
            ("db", "upgrade"),
            {"CURSOR_KEY": "short-cursor-key"},
            "FLEETPROMPT_CURSOR_KEY",
            "short-cursor-key",
        ),
        (
            ("tokens", "create", "ext-1"),
            {"REDIS_URL": "http://:hunter2-redis@cache"},
            "FLEETPROMPT_REDIS_URL",
            "hunter2-redis",
        ),
        (("purge",), {"LOG_LEVEL": "chatty"}, "FLEETPROMPT_LOG_LEVEL", None),
        (("demo",), {"RATE_LIMITS": "search=lots"}, "FLEETPROMPT_RATE_LIMITS", None),
        (("serve",), {"THREADS": "0"}, "FLEETPROMPT_THREADS", None),
        # str.isdigit() is true for "²", which int() refuses:
        (("serve",), {"THREADS": "²"}, "FLEETPROMPT_THREADS", None),
    ],
    ids=[
        "serve-short-redeem-secret",
        "serve-mysql-url",
        "users-mongodb-url",
        "db-short-cursor-key",
        "tokens-http-redis-url",
        "purge-log-level",
        "demo-rate-limits",
        "serve-pool-size-0",
        "serve-pool-size-superscript",
    ],
)
def test_invalid_configuration_names_the_variable(
    cli: Cli,
    args: tuple[str, ...],
    variables: dict[str, str],
    variable: str,
    secret: str | None,
) -> None:
    stderr = _assert_failed(cli(*args, **variables), code=2, names=variable)
    assert stderr.startswith("fleetprompt: error: invalid configuration: "), stderr
    if secret is not None:
        assert secret not in stderr


def test_an_unreachable_database_is_one_line_without_the_password(cli: Cli) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://fp:hunter2-pg-pass@127.0.0.1:{port}/fp?connect_timeout=2"
    stderr = _assert_failed(cli("users", "create", "ext-1", DATABASE_URL=url), code=1)
    assert "FLEETPROMPT_DATABASE_URL" in stderr
    assert "hunter2-pg-pass" not in stderr


def test_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "users", "tokens", "demo", "purge"):
        assert command in result.stdout
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0
    assert "version" in version.stdout


# --------------------------------------------------------------------------- start-up, extras

#: Modules that only the commands needing them may import (the server stack, the
#: database layer, the core): ``--help`` and ``--version`` must not pay for them.
_HEAVY = ("litestar", "uvicorn", "sqlalchemy", "alembic", "redis", "fleetprompt_core")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["db", "--help"], ["users", "-h"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    """Start-up speed is measured in bench/cli_bench.py; this pins its cause."""
    probe = _python(
        "import sys\n"
        "from fleetprompt_http.console import main\n"
        f"sys.argv = ['fleetprompt', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[-1] == "[]", probe.stdout


def test_commands_that_only_read_the_schema_do_not_import_alembic(migrated: Cli) -> None:
    probe = _python(
        "import os, sys\n"
        f"os.environ['FLEETPROMPT_DATABASE_URL'] = {migrated.database_url!r}\n"
        "from fleetprompt_http.console import main\n"
        "sys.argv = ['fleetprompt', 'users', 'list']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "print(sorted(m for m in ('alembic', 'litestar', 'uvicorn') if m in sys.modules))\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[-1] == "[]", probe.stdout


def test_a_core_only_install_says_which_extra_the_command_needs() -> None:
    probe = _python(
        "import sys\nsys.modules['click'] = None\n"
        "sys.argv = ['fleetprompt', '--version']\n"
        "from fleetprompt_http.console import main\nmain()\n"
    )
    assert probe.returncode == 2, probe.stderr
    assert "Traceback" not in probe.stderr
    assert "pip install 'fleetprompt[server]'" in probe.stderr


def test_a_core_only_install_says_which_extra_the_sql_adapter_needs() -> None:
    probe = _python(
        "import sys\nsys.modules['sqlalchemy'] = None\n"
        "from fleetprompt_adapters import MissingExtra\n"
        "try:\n    import fleetprompt_adapters.sql\n"
        "except MissingExtra as missing:\n    print(missing.extra, '|', missing)\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("sql | fleetprompt_adapters.sql needs the 'sql' extra")
    assert "pip install 'fleetprompt[sql]'" in probe.stdout


def test_postgresql_without_psycopg_says_which_extra_to_install(tmp_path: Path) -> None:
    probe = _python(
        "import sys\nsys.modules['psycopg'] = None\n"
        "sys.argv = ['fleetprompt', 'users', 'create', 'ext-1']\n"
        "import os\nos.environ['FLEETPROMPT_DATABASE_URL'] = 'postgresql://fp:pw@127.0.0.1/fp'\n"
        "from fleetprompt_http.console import main\nmain()\n"
    )
    assert probe.returncode == 1, probe.stderr
    assert "Traceback" not in probe.stderr
    assert "PostgreSQL needs the 'postgres' extra" in probe.stderr
    assert "pip install 'fleetprompt[postgres]'" in probe.stderr


# --------------------------------------------------------------------------- the console script


def _script() -> str:
    path = Path(sysconfig.get_path("scripts")) / "fleetprompt"
    if not path.exists():  # pragma: no cover - an environment without the entry point
        pytest.skip("the fleetprompt console script is not installed")
    return str(path)


def _run(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_console_script_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fp.db'}"
    env = _clean_environment(DATABASE_URL=url)
    upgraded = _run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    created = _run(["users", "create", "ext-ops", "--publisher"], env)
    assert created.returncode == 0, created.stderr
    assert USER_ID.match(created.stdout.strip())
    issued = _run(["tokens", "create", "ext-ops"], env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert issued.stdout == token + "\n"
    assert TOKEN.match(token)
    with TestClient(create_app(Settings(database_url=url))) as client:
        assert client.get("/v1/publisher/profile", headers=_bearer(token)).status_code == 200

    failed = _run(["serve"], {**env, "FLEETPROMPT_INTERNAL_REDEEM_SECRET": "tiny-secret-1"})
    assert failed.returncode == 2
    assert "FLEETPROMPT_INTERNAL_REDEEM_SECRET" in failed.stderr
    assert "tiny-secret-1" not in failed.stderr
    assert "Traceback" not in failed.stderr
    assert failed.stdout == ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.frozen
class Served:
    base_url: str
    database: Path
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``fleetprompt serve`` on a free port and a fresh SQLite file; always stopped."""
    database = tmp_path / "serve.db"
    log = tmp_path / "serve.log"
    port = _free_port()
    env = _clean_environment(
        DATABASE_URL=f"sqlite:///{database}",
        INTERNAL_REDEEM_SECRET="k" * 32,
        LOG_LEVEL="WARNING",
    )
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [_script(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield Served(f"http://127.0.0.1:{port}", database, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            process.kill()
            process.wait(timeout=10)


def test_serve_migrates_and_answers(served: Served) -> None:
    base_url, database = served.base_url, served.database
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    response: httpx.Response | None = None
    while time.monotonic() < deadline:
        assert served.process.poll() is None, served.log.read_text(errors="replace")
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    assert response is not None, f"fleetprompt serve did not answer within {SERVE_TIMEOUT_S} s"
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.headers["x-request-id"]
    assert database.exists()
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        assert sql.current_revision(engine) == sql.head_revision()
    finally:
        engine.dispose()
    document = httpx.get(f"{base_url}/schema/openapi.json", timeout=5)
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")
    denied = httpx.get(f"{base_url}/v1/install/intents", timeout=5)
    assert denied.status_code == 401
    assert denied.json()["error"]["requestId"] == denied.headers["x-request-id"]
    served.process.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert served.process.wait(timeout=10) in (0, -signal.SIGTERM)
    assert "Traceback" not in served.log.read_text(errors="replace")
