"""Rules of the policy modules that mutation testing found no test stating (docs/testing.md).

Account names and addresses (W-ACCT-01), the CSRF token's derivation (W-CSRF-01),
what redaction removes and what it leaves (S-SEC-02), search matching and order
(I-PUB-05), validation messages and bounds (U-VAL-01) and the ranking of versions
(X-CAT-03): each test pins a behaviour a changed operator, constant or argument
would break without any other test noticing.
"""

from __future__ import annotations

import pytest

from fleetprompt_core.base.enums import AssetKind, ListingStatus
from fleetprompt_core.domain.model import Links, Listing, Moderation
from fleetprompt_core.domain.search import ListingSearch, matches, relevance, search_terms
from fleetprompt_core.domain.states import LISTING_BY_PUBLISHER, IllegalTransition
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.policies.passwords import check_email, check_new_password, check_username
from fleetprompt_core.policies.redaction import MAX_DEPTH, REDACTED, redact, redact_text
from fleetprompt_core.policies.sessions import csrf_token_for, csrf_token_matches
from fleetprompt_core.policies.tokens import generate_token
from fleetprompt_core.policies.validation import MISSING, Problems, Reader


def _errors(problems: Problems) -> list[tuple[str, str]]:
    return [(error.field_name, error.message) for error in problems.errors]


# --------------------------------------------------------------------------- W-ACCT-01

USERNAME_CHARACTERS = (
    "may use only letters a-z, digits, '.', '_' and '-', starting with a letter or digit"
)


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("abc", []),
        ("  Alice.B_c-9  ", []),
        ("a" * 32, []),
        ("ab", [("username", "must be at least 3 characters")]),
        ("a" * 33, [("username", "must be at most 32 characters")]),
        (MISSING, [("username", "is required")]),
        (None, [("username", "is required")]),
        ("", [("username", "must be at least 3 characters")]),
        ("a!b", [("username", USERNAME_CHARACTERS)]),
        ("-ab", [("username", USERNAME_CHARACTERS)]),
        ("ébc", [("username", USERNAME_CHARACTERS)]),
    ],
)
def test_w_acct_01_a_username_is_3_to_32_of_a_z_digits_dot_underscore_hyphen(
    value: object, errors: list[tuple[str, str]]
) -> None:
    problems = Problems()
    checked = check_username(value, problems)
    assert _errors(problems) == errors
    if not errors:
        assert checked == str(value).strip().lower()
    else:
        assert checked is None


def test_w_acct_01_username_and_email_problems_name_the_given_field() -> None:
    problems = Problems()
    assert check_username("x", problems, path="owner.username") is None
    assert check_email("nobody", problems, path="owner.email") is None
    assert [error.field_name for error in problems.errors] == ["owner.username", "owner.email"]


@pytest.mark.parametrize(
    ("value", "expected", "errors"),
    [
        ("  Name@Example.COM ", "name@example.com", []),
        (None, None, []),
        (MISSING, None, []),
        ("", None, []),
        ("   ", None, []),
        ("name@example", None, [("email", "must be an e-mail address such as name@example.com")]),
        (
            "a@b@example.com",
            None,
            [("email", "must be an e-mail address such as name@example.com")],
        ),
        (7, None, [("email", "must be a string")]),
        ("x" * 250 + "@e.co", None, [("email", "must be at most 254 characters")]),
    ],
)
def test_w_acct_01_an_email_is_optional_trimmed_lower_cased_and_one_at_a_dotted_domain(
    value: object, expected: str | None, errors: list[tuple[str, str]]
) -> None:
    problems = Problems()
    assert check_email(value, problems) == expected
    assert _errors(problems) == errors


# --------------------------------------------------------------------------- W-ACCT-03

TOO_EASY = "is too common or too easy to guess; choose another"
FROM_CONTEXT = "must not be built from your username, e-mail address or this site"
SENTENCE = "correct horse battery staple " * 9


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        (MISSING, [("password", "is required")]),
        (None, [("password", "is required")]),
        ("", [("password", "is required")]),
        (123456789012345, [("password", "must be text")]),
        ("correct horse\x00battery", [("password", "must be text")]),
        ("correct horse \ud800 battery", [("password", "must be valid Unicode text")]),
        ("correct horse \x07 battery", [("password", "must not contain control characters")]),
        (
            "correct horse",
            [("password", "must be at least 15 characters (a few words make a good one)")],
        ),
        (SENTENCE[:257], [("password", "must be at most 256 characters")]),
        ("password1234567", [("password", TOO_EASY)]),
    ],
)
def test_w_acct_03_a_refused_password_gets_one_message_on_its_field(
    value: object, errors: list[tuple[str, str]]
) -> None:
    problems = Problems()
    assert check_new_password(value, problems) is None
    assert _errors(problems) == errors


@pytest.mark.parametrize("length", [15, 256])
def test_w_acct_03_passwords_of_15_to_256_characters_are_accepted(length: int) -> None:
    problems = Problems()
    password = SENTENCE[:length]
    assert check_new_password(password, problems, path="new") == password
    assert not problems


@pytest.mark.parametrize(
    ("password", "refused"),
    [
        ("a" * 17, True),  # one character repeated, a length no longer unit divides
        ("xkcd" * 4, True),
        ("xkcdq" * 3, False),  # the rule stops at units of four characters
    ],
)
def test_w_acct_03_a_unit_of_one_to_four_characters_repeated_is_too_easy(
    password: str, refused: bool
) -> None:
    problems = Problems()
    check_new_password(password, problems)
    assert _errors(problems) == ([("password", TOO_EASY)] if refused else [])


def test_w_acct_03_a_password_built_from_a_three_letter_username_is_refused() -> None:
    problems = Problems()
    assert check_new_password("xqz1xqz2xqz3xqz4", problems, username="xqz") is None
    assert _errors(problems) == [("password", FROM_CONTEXT)]
    assert check_new_password("xqz1xqz2xqz3xqz4", Problems(), username="xq") is not None


def test_w_acct_03_what_is_left_without_the_context_words_must_be_7_characters() -> None:
    """Half the minimum length, rounded down, must remain once the username is removed."""
    problems = Problems()
    assert check_new_password("xqzab4d7exqzxqz", problems, username="xqz") is None  # 6 left
    assert _errors(problems) == [("password", FROM_CONTEXT)]
    assert check_new_password("xqzab4d7e1xqzxqz", Problems(), username="xqz")  # 7 left


def test_w_acct_03_a_password_built_from_the_local_part_of_the_email_is_refused() -> None:
    problems = Problems()
    assert check_new_password("carol.x!carol.x?", problems, email="carol.x@example.com") is None
    assert _errors(problems) == [("password", FROM_CONTEXT)]
    assert check_new_password("carol.x!carol.x?", Problems(), email="dave@example.com")


# --------------------------------------------------------------------------- I-PUB-05 search


def test_i_pub_05_a_query_uses_its_first_ten_distinct_terms() -> None:
    query = " ".join(f"t{n}" for n in (1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
    assert search_terms(query) == tuple(f"t{n}" for n in range(1, 11))
    assert search_terms("Alpha alpha BETA") == ("alpha", "beta")
    assert search_terms("") == ()


def _listing(name: str, summary: str = "", tags: tuple[str, ...] = ()) -> Listing:
    return Listing(
        listing_id="lst_1",
        publisher_user_id="usr_1",
        asset_kind=AssetKind.WHS_AGENT,
        status=ListingStatus.PUBLISHED,
        name=name,
        summary=summary,
        description=rendered(""),
        tags=tags,
        categories=(),
        images=(),
        links=Links(),
        moderation=Moderation(),
        created_at_ms=0,
        updated_at_ms=0,
    )


def test_i_pub_05_relevance_sums_the_weights_of_the_fields_each_term_matches() -> None:
    """name 3, tags or categories 2, summary 1, summed over the terms; no terms score 0."""
    listing = _listing("Ticket Triage", summary="Routes tickets to teams.", tags=("support",))
    assert relevance(listing, ()) == 0
    assert relevance(listing, ("ticket",)) == 3 + 1  # the name and "tickets" in the summary
    assert relevance(listing, ("sup",)) == 2
    assert relevance(listing, ("tri", "sup", "team")) == 3 + 2 + 1
    assert relevance(listing, ("tri", "nowhere")) is None


def test_x_cat_01_the_verified_filter_keeps_only_listings_of_verified_publishers() -> None:
    listing = _listing("Ticket Triage")
    verified_only = ListingSearch(verified_only=True)
    assert matches(listing, verified_only) is None  # unknown is not verified
    assert matches(listing, verified_only, publisher_verified=False) is None
    assert matches(listing, verified_only, publisher_verified=True) == 0
    assert matches(listing, ListingSearch(), publisher_verified=False) == 0


# --------------------------------------------------------------------------- U-VAL-01


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"n": 5}, []),
        ({}, [("n", "is required")]),
        ({"n": None}, [("n", "is required")]),
        ({"n": "5"}, [("n", "must be an integer")]),
        ({"n": True}, [("n", "must be an integer")]),
        ({"n": 5.0}, [("n", "must be an integer")]),
        ({"n": 11}, [("n", "must be between 1 and 10")]),
    ],
)
def test_u_val_01_an_integer_field_says_what_is_wrong(
    body: dict[str, object], errors: list[tuple[str, str]]
) -> None:
    problems = Problems()
    value = Reader(body, problems).integer("n", minimum=1, maximum=10, required=True)
    assert _errors(problems) == errors
    assert value == (5 if not errors else None)


# --------------------------------------------------------------------------- I-PUBC


def test_i_pubc_a_forbidden_transition_names_both_states_and_hints_the_current_one() -> None:
    with pytest.raises(IllegalTransition) as caught:
        LISTING_BY_PUBLISHER.require(ListingStatus.DRAFT, ListingStatus.UNLISTED)
    assert caught.value.message == "A listing cannot move from draft to unlisted."
    assert caught.value.hint == "listing is draft"
    LISTING_BY_PUBLISHER.require(ListingStatus.DRAFT, ListingStatus.PUBLISHED)


# --------------------------------------------------------------------------- U-TOK


@pytest.mark.parametrize("prefix", ["fpit", "xpit_", "fp_", "fpabcdefg_", "fpIT_"])
def test_u_tok_01_a_token_prefix_is_fp_and_one_to_six_lower_case_letters(prefix: str) -> None:
    with pytest.raises(
        ValueError, match=r"^token prefix must be 'fp', 1 to 6 lower-case letters and '_'$"
    ):
        generate_token(prefix)


# --------------------------------------------------------------------------- W-CSRF-01

#: The CSRF token of a session is part of every signed-in form in flight: a change
#: of its derivation (label, hash, encoding) would refuse them all.
GOLDEN_SESSION_TOKEN = "fpbs_golden-session-token"
GOLDEN_CSRF_TOKEN = "las4sFdgpWMAhZSKAjE-15VG2rlMiufAojSxEd5lZgk"


def test_w_csrf_01_the_csrf_token_of_a_session_is_its_golden_value() -> None:
    assert csrf_token_for(GOLDEN_SESSION_TOKEN) == GOLDEN_CSRF_TOKEN
    assert len(GOLDEN_CSRF_TOKEN) == 43  # unpadded URL-safe base64 of 32 bytes
    assert csrf_token_matches(GOLDEN_SESSION_TOKEN, GOLDEN_CSRF_TOKEN)
    assert not csrf_token_matches(GOLDEN_SESSION_TOKEN, GOLDEN_CSRF_TOKEN + "=")


def test_w_csrf_01_lone_surrogates_never_make_the_csrf_check_raise() -> None:
    """A cookie or a form field decoded leniently may carry a lone surrogate."""
    odd_session = "fpbs_\ud800"
    token = csrf_token_for(odd_session)
    assert csrf_token_matches(odd_session, token)
    assert not csrf_token_matches(GOLDEN_SESSION_TOKEN, "\udc00" + GOLDEN_CSRF_TOKEN[1:])
    assert not csrf_token_matches(odd_session, "\ud800")


# --------------------------------------------------------------------------- S-SEC-02

JWT_HEADER = "eyJhbGciOiJIUzI1NiJ9"
JWT_PAYLOAD = "eyJzdWIiOiIxIn0"
JWT = f"{JWT_HEADER}.{JWT_PAYLOAD}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (JWT, REDACTED),
        (f"a.{JWT}", f"a.{REDACTED}"),  # the JWT is the second segment of a dotted run
        (f"pre.{JWT}.tail rest", f"pre.{REDACTED}.tail rest"),  # and not the last
        (f"x=%3D{JWT}", f"x=%3D{REDACTED}"),  # glued after an escape
        (f"eyJaeyJb.{JWT_PAYLOAD}.sig", REDACTED),  # from the first eyJ of the header
        ("version.eyJunk.tar", "version.eyJunk.tar"),  # no JWS header before it
        ("eyJa.b.c", "eyJa.b.c"),  # no JWS payload after it
    ],
)
def test_s_sec_02_a_jwt_is_redacted_from_its_header_to_its_signature_and_no_further(
    text: str, redacted: str
) -> None:
    assert redact_text(text) == redacted


def _nested(depth: int, innermost: object) -> object:
    """``innermost`` as the value of ``depth`` nested one-key mappings."""
    value = innermost
    for _ in range(depth):
        value = {"k": value}
    return value


def test_s_sec_02_a_container_key_is_one_level_below_its_mapping() -> None:
    """A tuple key is kept (its strings redacted) until it would sit at :data:`MAX_DEPTH`."""
    key = ("note", "Bearer abc.def")
    assert redact({key: 1}) == {("note", f"Bearer {REDACTED}"): 1}
    kept = _nested(MAX_DEPTH - 2, {key: 1})
    cut = _nested(MAX_DEPTH - 1, {key: 1})
    assert redact(kept) == _nested(MAX_DEPTH - 2, {("note", f"Bearer {REDACTED}"): 1})
    assert redact(cut) == _nested(MAX_DEPTH - 1, {REDACTED: 1})
