"""The redaction step run before anything is logged (§10, U-TOK-02, S-SEC-02)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.policies.redaction import (
    MAX_DEPTH,
    REDACTED,
    SENSITIVE_KEYS,
    is_sensitive_key,
    redact,
    redact_text,
)
from fleetprompt_core.policies.tokens import (
    API_TOKEN_PREFIX,
    INSTALL_TOKEN_PREFIX,
    generate_token,
    looks_like_token,
)

TOKEN = generate_token(INSTALL_TOKEN_PREFIX, bytes(range(32)))
API_TOKEN = generate_token(API_TOKEN_PREFIX, bytes(range(32, 64)))
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJ1c2VyLTEiLCJhdWQiOiJmbGVldHByb21wdCJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmUtX18tLQ"
)


def test_sensitive_key_list_covers_the_contract() -> None:
    """The keys §10 names, and the usual credential headers, are sensitive."""
    for key in (
        "authorization",
        "cookie",
        "set-cookie",
        "token",
        "installtoken",
        "install_token",
        "apikey",
        "api_key",
        "secret",
        "password",
        "signature",
        "x-whs-delegation-signature",
        "proxy-authorization",
        "client_secret",
        "refresh_token",
        "access_token",
        "id_token",
    ):
        assert key in SENSITIVE_KEYS
        assert is_sensitive_key(key)
    assert all(key == key.lower() for key in SENSITIVE_KEYS)


@pytest.mark.parametrize(
    "key",
    [
        "installToken",
        "install_token",
        "Install-Token",
        "INSTALL_TOKEN",
        "install.token",
        "Authorization",
        "AUTHORIZATION",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "apiKey",
        "API-KEY",
        "X-Api-Key",
        "clientSecret",
        "webhook_secret",
        "newPassword",
        "db-password",
        "X-WHS-Delegation-Signature",
        "refreshToken",
        "csrf_token",
        "sessionCookie",
    ],
)
def test_sensitive_keys_match_in_any_case_or_format(key: str) -> None:
    """Key matching ignores case and separators, and catches *token/*secret/*password/*signature."""
    assert is_sensitive_key(key)
    assert redact({key: "hunter2"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    ["tokenHash", "token_id", "tokenStatus", "route", "status", "listingId", "signed", "tokens_ms"],
)
def test_ordinary_keys_are_not_sensitive(key: str) -> None:
    """Keys that merely mention a secret word but do not end with it keep their values."""
    assert not is_sensitive_key(key)
    assert redact({key: "value"}) == {key: "value"}


def test_sensitive_keys_are_redacted_at_every_depth() -> None:
    """A sensitive key is redacted whatever its depth and whatever its value's type."""
    value = {
        "token": "a",
        "level1": {
            "password": 1234,
            "level2": [
                {"Authorization": ["Bearer x", "Bearer y"]},
                ({"cookie": {"session": "abc"}},),
                {"nested": {"deeper": {"apiKey": None, "keep": "me"}}},
            ],
        },
    }
    assert redact(value) == {
        "token": REDACTED,
        "level1": {
            "password": REDACTED,
            "level2": [
                {"Authorization": REDACTED},
                ({"cookie": REDACTED},),
                {"nested": {"deeper": {"apiKey": REDACTED, "keep": "me"}}},
            ],
        },
    }


def test_redact_copies_and_never_mutates_its_input() -> None:
    """The input is left untouched and containers keep their kind."""
    value: dict[str, Any] = {
        "token": "a",
        "items": [TOKEN, ("x", TOKEN)],
        "tags": {"a", TOKEN},
        "frozen": frozenset({"b"}),
    }
    before = copy.deepcopy(value)
    result = redact(value)
    assert value == before
    assert isinstance(result, dict)
    assert result is not value
    assert isinstance(result["items"], list)
    assert isinstance(result["items"][1], tuple)
    assert result["tags"] == {"a", REDACTED}
    assert result["frozen"] == frozenset({"b"})


def test_tokens_inside_strings_are_redacted() -> None:
    """A token anywhere in a string (also glued or URL-encoded) is replaced, the rest kept."""
    assert redact_text(f"token {TOKEN} expired") == f"token {REDACTED} expired"
    assert redact_text(f"{TOKEN}") == REDACTED
    assert redact_text(f"a{TOKEN}b") == f"a{REDACTED}b"
    assert redact_text(f"cb%3Ft%3D{TOKEN}%26x") == f"cb%3Ft%3D{REDACTED}%26x"
    assert redact_text(f"{TOKEN},{API_TOKEN}") == f"{REDACTED},{REDACTED}"
    assert redact({"message": f"issued {API_TOKEN}"}) == {"message": f"issued {REDACTED}"}


def test_token_after_a_near_token_is_still_redacted() -> None:
    """A token-shaped prefix just before a real token cannot swallow the real one's start."""
    decoy = "fpx_" + "A" * 45
    text = decoy + TOKEN
    result = redact_text(text)
    assert TOKEN[5:] not in result
    assert TOKEN[10:40] not in result


def test_tokens_used_as_keys_are_redacted() -> None:
    """A token used as a mapping key does not survive either."""
    assert redact({TOKEN: 1}) == {REDACTED: 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer abc.def-ghi_jkl~mno+pqr/stu==",
            f"Authorization: Bearer {REDACTED}",
        ),
        ("authorization: bearer abc", f"authorization: bearer {REDACTED}"),
        ("BEARER\tabc123", f"BEARER\t{REDACTED}"),
        ("Bearer abc, other=1", f"Bearer {REDACTED}, other=1"),
        ('{"h": "Bearer abc"}', f'{{"h": "Bearer {REDACTED}"}}'),
        ("Bearer Bearer abc", f"Bearer {REDACTED} {REDACTED}"),
        ("\\nBearer abc", f"\\nBearer {REDACTED}"),
        (f"Bearer {API_TOKEN}", f"Bearer {REDACTED}"),
    ],
)
def test_bearer_credentials_are_redacted(text: str, expected: str) -> None:
    """The credential after 'Bearer' is replaced; the scheme word stays for the reader."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{jwt}",
        "id_token {jwt} received",
        "jwt={jwt}&x=1",
        "a%3D{jwt}",
        "\\n{jwt}",
        '{{"jwt": "{jwt}"}}',
        "{jwt}.",
    ],
)
def test_jwts_are_redacted(template: str) -> None:
    """A JWT-shaped string is replaced wherever it appears, even glued to other text."""
    result = redact_text(template.format(jwt=JWT))
    assert REDACTED in result
    for part in JWT.split("."):
        assert part not in result


def test_unsigned_jwt_is_redacted() -> None:
    """A JWT with an empty signature part (alg none) is still redacted."""
    unsigned = JWT.rsplit(".", 1)[0] + "."
    assert redact_text(f"t={unsigned} end") == f"t={REDACTED} end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /cb?access_token=abc123&state=x", f"GET /cb?access_token={REDACTED}&state=x"),
        ("password=hunter2 user=bob", f"password={REDACTED} user=bob"),
        ("next=/cb?token=abc", f"next=/cb?token={REDACTED}"),
        ("X-Api-Key=k1;mode=x", f"X-Api-Key={REDACTED};mode=x"),
        ("token=token=token=x", f"token={REDACTED}"),
        ("token= nothing", "token= nothing"),
    ],
)
def test_sensitive_name_value_pairs_in_text_are_redacted(text: str, expected: str) -> None:
    """In free text, the value of a 'name=value' pair with a sensitive name is replaced."""
    assert redact_text(text) == expected


def test_non_sensitive_data_is_unchanged() -> None:
    """Ordinary data passes through equal, including numbers, booleans, None and bytes."""
    value = {
        "requestId": "req_01HZX",
        "route": "/v1/public/listings/search",
        "status": 200,
        "latencyMs": 12.5,
        "cached": False,
        "cursor": None,
        "tags": ["agents", "bearer-of-news"],
        "hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "email": "someone@example.com",
        "query": "q=token&limit=50",
        "raw": b"bytes pass unchanged",
        7: "int key",
    }
    assert redact(value) == value
    for scalar in (None, True, 0, -1.5, 10**30, b"x", "plain text"):
        assert redact(scalar) == scalar
    assert redact_text("") == ""
    marker = object()
    assert redact(marker) is marker


def test_deep_nesting_is_bounded() -> None:
    """Containers up to MAX_DEPTH levels are copied; the next level down becomes REDACTED."""
    assert MAX_DEPTH == 32

    def nest(levels: int) -> object:
        value: object = "leaf"
        for _ in range(levels):
            value = [value]
        return value

    def depth_of(value: object) -> tuple[int, object]:
        levels = 0
        while isinstance(value, list):
            value, levels = value[0], levels + 1
        return levels, value

    assert depth_of(redact(nest(MAX_DEPTH))) == (MAX_DEPTH, "leaf")
    assert depth_of(redact(nest(MAX_DEPTH + 1))) == (MAX_DEPTH, REDACTED)
    assert depth_of(redact(nest(5000))) == (MAX_DEPTH, REDACTED)


def test_self_referencing_structures_terminate() -> None:
    """A structure that contains itself is cut off at the depth bound, not recursed forever."""
    loop: list[object] = ["x"]
    loop.append(loop)
    mapping: dict[str, object] = {"token": "a"}
    mapping["self"] = mapping
    assert isinstance(redact(loop), list)
    assert isinstance(redact(mapping), dict)


def test_unexpected_errors_fail_closed() -> None:
    """A mapping that blows up while being read yields REDACTED, never an exception or a leak."""

    class Exploding(dict[str, str]):
        def items(self) -> Any:
            raise RuntimeError(TOKEN)

    assert redact({"ok": Exploding(a="b")}) == REDACTED


#: Pathological inputs of about 300 KB: a pattern that backtracks (or rescans from
#: every position) would take minutes on them. How redaction's time grows with
#: their size is measured in ``bench/redaction_bench.py`` (never timed here).
HOSTILE_TEXTS = [
    "eyJ" * 100_000,
    "eyJ" * 100_000 + ".eyJ",
    "eyJa." * 50_000,
    "bearer " * 50_000,
    "bearer" * 50_000 + " x",
    "a=" * 100_000,
    "token=" * 50_000,
    "x" * 300_000 + "=",
    "fpit_" + "a" * 300_000,
    "fpab" * 75_000,
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_redaction_of_hostile_text_completes_and_is_stable(text: str) -> None:
    """Hostile 300 KB inputs are redacted, and redacting the result changes nothing."""
    redacted = redact_text(text)
    assert isinstance(redacted, str)
    assert redact_text(redacted) == redacted


_TOKENS = st.binary(min_size=32, max_size=32).flatmap(
    lambda entropy: st.sampled_from(
        [generate_token(INSTALL_TOKEN_PREFIX, entropy), generate_token(API_TOKEN_PREFIX, entropy)]
    )
)


def _with_tokens(inserted: list[str]) -> st.SearchStrategy[str]:
    """Text that may have a generated token inserted at any position (recorded in *inserted*)."""

    def build(parts: tuple[str, str, str | None]) -> str:
        before, after, token = parts
        if token is None:
            return before + after
        inserted.append(token)
        return before + token + after

    return st.tuples(st.text(max_size=20), st.text(max_size=20), st.none() | _TOKENS).map(build)


def _json_like(text: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(
                st.sampled_from(["token", "Install-Token", "note", "data", "x"]) | text,
                children,
                max_size=4,
            )
        ),
        max_leaves=30,
    )


@given(st.data())
def test_redact_never_raises_and_never_leaks_inserted_tokens(data: st.DataObject) -> None:
    """For recursive JSON-like data with tokens anywhere, redact() returns and no token survives."""
    inserted: list[str] = []
    value = data.draw(_json_like(_with_tokens(inserted)))
    result = redact(value)
    rendered = repr(result)
    for token in inserted:
        assert token not in rendered
        assert token[len(INSTALL_TOKEN_PREFIX) :] not in rendered
    assert not looks_like_token(rendered)


@given(st.text(max_size=60), _TOKENS, st.text(max_size=60))
def test_redact_text_removes_a_token_whatever_surrounds_it(
    before: str, token: str, after: str
) -> None:
    """A token between arbitrary texts never survives, and redaction is idempotent."""
    result = redact_text(before + token + after)
    assert token not in result
    assert REDACTED in result
    assert redact_text(result) == result
