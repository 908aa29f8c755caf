"""Built-in accounts and browser sessions over the in-memory adapter (§8, §12).

The password rules (SP 800-63B-4), argon2id hashing with rehash on sign-in,
session rotation, idle and absolute expiry, sign-out and password change
ending sessions, the sign-in limit per client and per account, and answers
that do not tell a wrong username from a wrong password.
"""

from __future__ import annotations

import unicodedata
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprompt_adapters.memory import ManualClock, MemoryRateLimiter, MemoryStore, bootstrap
from fleetprompt_adapters.passwords import Argon2PasswordHasher
from fleetprompt_core import CoreSettings, FleetPrompt
from fleetprompt_core.base.enums import Role
from fleetprompt_core.base.errors import (
    NotFound,
    RateLimited,
    Unauthenticated,
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.policies.passwords import PASSWORD_MIN, check_new_password
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.sessions import csrf_token_for, csrf_token_matches
from fleetprompt_core.policies.validation import Problems
from fleetprompt_core.services.runtime import Call

PASSWORD = "correct horse battery staple 42"
OTHER_PASSWORD = "a different, long enough passphrase"
#: Cheap argon2id parameters: the tests exercise the rules, not the hash's cost.
FAST = Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)
IDLE_MS = 60 * 60 * 1000
MAX_MS = 24 * 60 * 60 * 1000


def _app(
    *,
    clock: ManualClock | None = None,
    signup: bool = True,
    login_limit: int = 1000,
    hasher: Argon2PasswordHasher = FAST,
    store: MemoryStore | None = None,
) -> FleetPrompt:
    rules = dict(RateLimits().rules)
    rules[Action.LOGIN] = RateRule(login_limit, 60_000)
    return bootstrap(
        store=store,
        clock=clock or ManualClock(),
        settings=CoreSettings(
            signup_enabled=signup, session_idle_ms=IDLE_MS, session_max_ms=MAX_MS
        ),
        passwords=hasher,
        limiter=MemoryRateLimiter(),
        rate_limits=RateLimits(rules),
    )


def _sign_up(app: FleetPrompt, username: str = "alice", **extra: str) -> object:
    return app.accounts.sign_up(
        Call(client="203.0.113.7"), {"username": username, "password": PASSWORD, **extra}
    )


def _fields(error: ValidationFailed) -> dict[str, str]:
    return {f.field_name: f.message for f in error.fields}


# --------------------------------------------------------------------------- W-ACCT


def test_w_acct_01_sign_up_creates_the_user_the_api_knows_and_a_session() -> None:
    """Sign-up makes a user whose external id is the username, stores only an argon2id
    hash, and signs the new user in."""
    app = _app()
    signed_in = app.accounts.sign_up(
        Call(client="c1"),
        {
            "username": " Alice ",
            "email": "Alice@Example.COM",
            "displayName": "Alice A.",
            "password": PASSWORD,
        },
    )
    assert signed_in.user.external_id == "alice"
    assert signed_in.user.email == "alice@example.com"
    account = app.accounts.account_of("alice")
    assert account is not None
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    me = app.accounts.session(signed_in.session_token)
    assert me is not None
    assert me.user.user_id == signed_in.user.user_id
    assert me.csrf_token == signed_in.csrf_token
    # The same user through the identity every other surface uses.
    assert app.operator.ensure_user("alice").user_id == signed_in.user.user_id


def test_w_acct_01_taken_username_or_email_is_a_field_error_and_creates_nothing() -> None:
    """A taken username (an account's or any user's external id) or e-mail is
    VALIDATION_FAILED on that field; nothing is created."""
    app = _app()
    _sign_up(app, "alice", email="a@example.com")
    app.operator.ensure_user("carol")  # a user without an account (CLI, OIDC)
    for payload, field in (
        ({"username": "ALICE"}, "username"),
        ({"username": "carol"}, "username"),
        ({"username": "alice2", "email": "A@example.com"}, "email"),
    ):
        with pytest.raises(ValidationFailed) as raised:
            app.accounts.sign_up(Call(client="c"), {"password": PASSWORD, **payload})
        assert set(_fields(raised.value)) == {field}
    assert app.accounts.account_of("alice2") is None
    assert app.accounts.account_of("carol") is None


def test_w_acct_01_sign_up_can_be_closed() -> None:
    """With sign-up off, /signup's use case is UNSUPPORTED and creates nothing."""
    app = _app(signup=False)
    with pytest.raises(Unsupported):
        _sign_up(app)
    assert app.accounts.account_of("alice") is None


def test_w_acct_02_sign_in_by_username_or_email() -> None:
    """The username and the e-mail address both sign in, case-insensitively."""
    app = _app()
    _sign_up(app, "alice", email="alice@example.com")
    for identifier in ("alice", " ALICE ", "Alice@Example.com"):
        signed_in = app.accounts.sign_in(Call(client="c"), identifier, PASSWORD)
        assert signed_in.user.external_id == "alice"
        assert app.accounts.session(signed_in.session_token) is not None


@pytest.mark.parametrize(
    ("password", "fields"),
    [
        ("short but fine", {"password"}),  # 14 characters
        ("passwordpassword", {"password"}),  # blocklist
        ("Password Password", {"password"}),  # blocklist, case and spaces ignored
        ("abcabcabcabcabcabc", {"password"}),  # a repeated unit
        ("abcdefghijklmnopq", {"password"}),  # a run of letters
        ("9876543210987654", {"password"}),  # a run of digits, backwards
        ("alicealicealice!!", {"password"}),  # built from the username
        ("fleetprompt rocks", {"password"}),  # built from the site's name and a word
        ("tab\tinside the password", {"password"}),  # control character
    ],
)
def test_w_acct_03_password_rules_refuse_weak_passwords(password: str, fields: set[str]) -> None:
    """Too short, common, repetitive, sequential or context-built passwords are refused
    with a message that does not echo the password."""
    app = _app()
    with pytest.raises(ValidationFailed) as raised:
        app.accounts.sign_up(Call(client="c"), {"username": "alice", "password": password})
    assert set(_fields(raised.value)) == fields
    assert password not in str(_fields(raised.value))
    assert app.accounts.account_of("alice") is None


def test_w_acct_03_no_composition_rules() -> None:
    """Long lower-case passphrases, spaces and non-ASCII text are all accepted (NIST:
    no composition rules); exactly 15 code points is enough."""
    problems = Problems()
    for password in (
        "plain lowercase words only",
        "ñandú über straße",
        "日本語のパスワードはこれで十分です",
        "x" * 7 + "y" * 8 + "z",
        "quiet-morning-7x",
    ):
        assert check_new_password(password, problems) is not None, password
    assert not problems


def test_w_acct_03_every_blocklisted_password_is_refused() -> None:
    """Every entry of the bundled blocklist is refused, whatever its case."""
    text = (
        resources.files("fleetprompt_core.policies")
        .joinpath("common_passwords.txt")
        .read_text("utf-8")
    )
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(entries) >= 100
    for entry in entries:
        assert len(entry) >= PASSWORD_MIN, entry
        for variant in (entry, entry.upper(), " ".join(entry)):
            problems = Problems()
            assert check_new_password(variant, problems) is None, variant


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_w_acct_03_accepted_passwords_are_long_and_printable(raw: str) -> None:
    """Whatever is typed: an accepted password has 15..256 code points after NFKC, no
    control characters, and a refusal never echoes the input."""
    problems = Problems()
    accepted = check_new_password(raw, problems)
    if accepted is None:
        assert problems
        if len(raw) >= 4:
            assert all(raw not in f.message for f in problems.errors)
        return
    assert accepted == unicodedata.normalize("NFKC", raw)
    assert 15 <= len(accepted) <= 256
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in accepted)


@settings(max_examples=25, deadline=None)
@given(
    st.text(
        alphabet=st.characters(codec="utf-8", categories=("Ll", "Lu", "Nd", "Zs", "Po")),
        min_size=15,
        max_size=60,
    ).filter(lambda s: len(set(s.casefold())) >= 8)
)
def test_w_acct_03_varied_long_passwords_are_accepted(raw: str) -> None:
    """Any long enough password of varied printable characters passes (no composition
    rules) unless it is blocklisted or built from a context word (the site's name)."""
    problems = Problems()
    assert check_new_password(raw, problems) is not None or any(
        "common" in f.message or "at least" in f.message or "built from" in f.message
        for f in problems.errors
    )


def test_w_acct_04_sign_in_rehashes_a_hash_with_old_parameters() -> None:
    """A hash made with other argon2id parameters is replaced on the next successful
    sign-in; a failed sign-in leaves it; the password keeps working."""
    store = MemoryStore()
    old = _app(
        store=store, hasher=Argon2PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1)
    )
    _sign_up(old)
    before = old.accounts.account_of("alice")
    assert before is not None
    assert "m=8,t=1" in before.password_hash
    current = _app(store=store, hasher=FAST)
    with pytest.raises(Unauthenticated):
        current.accounts.sign_in(Call(client="c"), "alice", OTHER_PASSWORD)
    assert current.accounts.account_of("alice") == before
    current.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    after = current.accounts.account_of("alice")
    assert after is not None
    assert after.password_hash != before.password_hash
    assert "m=64,t=1" in after.password_hash
    assert after.password_changed_at_ms == before.password_changed_at_ms
    assert not FAST.needs_rehash(after.password_hash)
    current.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    assert current.accounts.account_of("alice") == after


def test_w_acct_04_the_shipped_hasher_uses_rfc_9106_parameters() -> None:
    """The default hasher is argon2id with RFC 9106's low-memory option: m=64 MiB, t=3, p=4."""
    hasher = Argon2PasswordHasher()
    password_hash = hasher.hash(PASSWORD)
    assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hasher.verify(password_hash, PASSWORD)
    assert not hasher.verify(password_hash, OTHER_PASSWORD)
    assert not hasher.verify("not a hash", PASSWORD)
    assert hasher.needs_rehash(FAST.hash(PASSWORD))


def test_w_acct_05_operator_creates_an_account_and_sets_passwords() -> None:
    """An operator gives an existing user (with roles) a password; setting another one
    later ends the user's sessions; rules apply; unknown users are NOT_FOUND."""
    app = _app()
    admin = app.operator.ensure_user("root-admin", roles=[Role.ADMIN])
    account = app.accounts.set_password("root-admin", PASSWORD, email="ops@example.com")
    assert account.user_id == admin.user_id
    signed_in = app.accounts.sign_in(Call(client="c"), "ops@example.com", PASSWORD)
    assert Role.ADMIN in signed_in.user.roles
    app.accounts.set_password("root-admin", OTHER_PASSWORD)
    assert app.accounts.session(signed_in.session_token) is None
    with pytest.raises(Unauthenticated):
        app.accounts.sign_in(Call(client="c"), "root-admin", PASSWORD)
    app.accounts.sign_in(Call(client="c"), "root-admin", OTHER_PASSWORD)
    with pytest.raises(ValidationFailed):
        app.accounts.set_password("root-admin", "passwordpassword")
    with pytest.raises(NotFound):
        app.accounts.set_password("nobody", PASSWORD)
    app.operator.ensure_user("Not A Username")
    with pytest.raises(ValidationFailed) as raised:
        app.accounts.set_password("Not A Username", PASSWORD)
    assert set(_fields(raised.value)) == {"username"}


# --------------------------------------------------------------------------- W-SESS


def test_w_sess_01_sign_in_rotates_the_session_id() -> None:
    """Signing in never keeps the session the browser brought: the old token stops
    working and the new one has another id and CSRF token."""
    app = _app()
    first = _sign_up(app)
    second = app.accounts.sign_in(
        Call(client="c"), "alice", PASSWORD, previous_session=first.session_token
    )
    assert second.session_token != first.session_token
    assert second.csrf_token != first.csrf_token
    assert app.accounts.session(first.session_token) is None
    assert app.accounts.session(second.session_token) is not None


def test_w_sess_03_sign_out_ends_the_session() -> None:
    """After sign-out the token signs nobody in; signing out twice is harmless."""
    app = _app()
    signed_in = _sign_up(app)
    other = app.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    app.accounts.sign_out(signed_in.session_token)
    app.accounts.sign_out(signed_in.session_token)
    assert app.accounts.session(signed_in.session_token) is None
    assert app.accounts.session(other.session_token) is not None  # another browser stays


def test_w_sess_04_password_change_ends_every_session() -> None:
    """Changing the password ends every session of the user and returns a fresh one; the
    current password must be right and the new one must pass the rules."""
    app = _app()
    laptop = _sign_up(app)
    phone = app.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    call = Call.as_user("alice")
    with pytest.raises(ValidationFailed) as raised:
        app.accounts.change_password(call, "wrong current password!!", OTHER_PASSWORD)
    assert set(_fields(raised.value)) == {"currentPassword"}
    with pytest.raises(ValidationFailed) as raised:
        app.accounts.change_password(call, PASSWORD, "too short")
    assert set(_fields(raised.value)) == {"newPassword"}
    assert app.accounts.session(phone.session_token) is not None
    fresh = app.accounts.change_password(call, PASSWORD, OTHER_PASSWORD)
    assert app.accounts.session(laptop.session_token) is None
    assert app.accounts.session(phone.session_token) is None
    assert app.accounts.session(fresh.session_token) is not None
    app.accounts.sign_in(Call(client="c"), "alice", OTHER_PASSWORD)


def test_w_sess_05_idle_and_absolute_expiry() -> None:
    """A session ends after the idle time without activity, and at its absolute end
    even when used all along."""
    clock = ManualClock()
    app = _app(clock=clock)
    idle = _sign_up(app)
    clock.advance(IDLE_MS - 1)
    assert app.accounts.session(idle.session_token) is not None  # activity moves it on
    clock.advance(IDLE_MS - 1)
    assert app.accounts.session(idle.session_token) is not None
    clock.advance(IDLE_MS)
    assert app.accounts.session(idle.session_token) is None
    busy = app.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    for _ in range(MAX_MS // (IDLE_MS // 2)):
        clock.advance(IDLE_MS // 2)
    assert app.accounts.session(busy.session_token) is None


def test_w_sess_05_expired_sessions_are_purged() -> None:
    """The retention sweep drops ended sessions and keeps live ones."""
    clock = ManualClock()
    app = _app(clock=clock)
    old = _sign_up(app)
    clock.advance(IDLE_MS + 1)
    live = app.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    assert app.accounts.purge_sessions() == 1
    assert app.accounts.session(live.session_token) is not None
    assert app.accounts.session(old.session_token) is None


def test_w_sess_malformed_session_tokens_sign_nobody_in() -> None:
    """Garbage, other token kinds and a checksum-valid unknown token are all None."""
    app = _app()
    signed_in = _sign_up(app)
    for token in ("", "x", signed_in.session_token[:-1], "fpat_" + "0" * 49, "\x00"):
        assert app.accounts.session(token) is None


def test_w_csrf_token_is_bound_to_the_session() -> None:
    """The CSRF token of one session does not match another; a missing one never matches."""
    app = _app()
    one = _sign_up(app)
    two = app.accounts.sign_in(Call(client="c"), "alice", PASSWORD)
    assert csrf_token_matches(one.session_token, csrf_token_for(one.session_token))
    assert not csrf_token_matches(one.session_token, two.csrf_token)
    assert not csrf_token_matches(one.session_token, None)
    assert not csrf_token_matches(one.session_token, "")


# --------------------------------------------------------------------------- W-RL


def test_w_rl_01_sign_in_is_limited_per_account_and_per_client() -> None:
    """Past the login limit an account is locked for the window, from any client; a
    client is limited across accounts; the window passing lifts both."""
    clock = ManualClock()
    app = _app(clock=clock, login_limit=3)
    app.operator.ensure_user("alice")
    app.accounts.set_password("alice", PASSWORD)
    for client in ("c1", "c2", "c3"):
        with pytest.raises(Unauthenticated):
            app.accounts.sign_in(Call(client=client), "alice", OTHER_PASSWORD)
    with pytest.raises(RateLimited) as raised:
        app.accounts.sign_in(Call(client="c4"), "alice", PASSWORD)  # right password, locked
    assert raised.value.retry_after_s >= 1
    for name in ("u1", "u2"):
        with pytest.raises(Unauthenticated):
            app.accounts.sign_in(Call(client="c9"), name, PASSWORD)
    with pytest.raises(Unauthenticated):
        app.accounts.sign_in(Call(client="c9"), "u3", PASSWORD)
    with pytest.raises(RateLimited):
        app.accounts.sign_in(Call(client="c9"), "u4", PASSWORD)
    clock.advance(60_001)
    assert app.accounts.sign_in(Call(client="c4"), "alice", PASSWORD).user.external_id == "alice"


def test_w_rl_02_wrong_user_and_wrong_password_answer_alike() -> None:
    """An unknown account and a wrong password are the same UNAUTHENTICATED with the same
    message, and both run a password verification (no shortcut to time)."""
    calls: list[str] = []

    class Counting(Argon2PasswordHasher):
        def verify(self, password_hash: str, password: str) -> bool:
            calls.append(password_hash)
            return super().verify(password_hash, password)

    app = _app(hasher=Counting(time_cost=1, memory_cost_kib=64, parallelism=1))
    _sign_up(app)
    answers = []
    for identifier, password in (("alice", OTHER_PASSWORD), ("nobody", PASSWORD), ("", "")):
        calls.clear()
        with pytest.raises(Unauthenticated) as raised:
            app.accounts.sign_in(Call(client="c"), identifier, password)
        answers.append((raised.value.code, raised.value.message))
        assert len(calls) == 1
        assert calls[0].startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert len(set(answers)) == 1
