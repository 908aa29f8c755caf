"""W-ACCT-05 from the command line: operators create accounts and set passwords."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetprompt_adapters import sql
from fleetprompt_core.base.enums import Role
from fleetprompt_core.base.errors import Unauthenticated
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.cli import main
from fleetprompt_http.settings import Settings
from fleetprompt_http.storage import open_storage

PASSWORD = "operator chosen passphrase 1"


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fp.db'}"
    engine = sql.create_engine(url)
    sql.upgrade(engine)
    engine.dispose()
    return url


def _run(database: str, *args: str, stdin: str | None = None) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FLEETPROMPT_")}
    env["FLEETPROMPT_DATABASE_URL"] = database
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=True)


def test_w_acct_05_operator_created_account_signs_in_with_its_roles(database: str) -> None:
    """`users create NAME --admin --password-stdin` makes an admin who can sign in on the
    web with that password (by username or e-mail); the password is never printed."""
    result = _run(
        database,
        "users",
        "create",
        "root",
        "--admin",
        "--email",
        "Root@Example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    storage = open_storage(Settings(database_url=database))
    try:
        accounts = storage.app.accounts
        signed_in = accounts.sign_in(Call(client="cli-test"), "root@example.com", PASSWORD)
        assert Role.ADMIN in signed_in.user.roles
        assert signed_in.user.user_id == result.stdout.strip()
        changed = _run(
            database,
            "users",
            "set-password",
            "root",
            "--password-stdin",
            stdin="the replacement passphrase\r\n",
        )
        assert changed.exit_code == 0, changed.stderr
        assert accounts.session(signed_in.session_token) is None
        with pytest.raises(Unauthenticated):
            accounts.sign_in(Call(client="cli-test"), "root", PASSWORD)
        accounts.sign_in(Call(client="cli-test"), "root", "the replacement passphrase")
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("args", "stdin", "names"),
    [
        (("users", "set-password", "nobody", "--password-stdin"), PASSWORD, "NOT_FOUND"),
        (("users", "create", "weak", "--password-stdin"), "passwordpassword", "password"),
        (("users", "create", "Bad Name", "--password-stdin"), PASSWORD, "username"),
    ],
)
def test_w_acct_05_operator_password_errors_are_clean(
    database: str, args: tuple[str, ...], stdin: str, names: str
) -> None:
    """Unknown users, weak passwords and unusable usernames fail with one line, exit 1,
    and never echo the password."""
    result = _run(database, *args, stdin=stdin + "\n")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert names in result.stderr
    assert stdin not in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was created: the user named in a failed `users create` does not exist.
    assert "NOT_FOUND" in _run(database, "users", "grant", args[2], "--role", "admin").stderr
