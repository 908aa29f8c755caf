"""Bearer authentication over HTTP (§8): API tokens and OIDC JWTs behind one header.

The identity resolvers have their own suites (``test_port_api_tokens``,
``test_api_tokens``, ``test_oidc_resolver``); these tests prove the server
wires them: who a bearer credential proves, that a user is created on first
sight without roles, and that revoked, expired and forged credentials are one
``401 UNAUTHENTICATED`` on every surface.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from contract.http_checks import assert_error
from contract.http_harness import Api
from fleetprompt_adapters.memory import ManualClock
from fleetprompt_core import Role
from fleetprompt_core.policies.tokens import API_TOKEN_PREFIX, generate_token
from fleetprompt_http.settings import OidcSettings

ISSUER = "https://id.example.test/"
AUDIENCE = "fleetprompt"
INTENTS = "/v1/install/intents"

ApiFactory = Callable[..., AbstractContextManager[Api]]


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, object]:
    public: dict[str, object] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": "k1", "alg": "RS256", "use": "sig"}


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "oidc|ada", "iat": now, "exp": now + 600}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def oidc_api(api_factory: ApiFactory, signing_key: rsa.RSAPrivateKey) -> Iterator[Api]:
    oidc = OidcSettings(issuer=ISSUER, audience=AUDIENCE, keys=(_jwk(signing_key),))
    with api_factory("sqlite", oidc=oidc) as opened:
        yield opened


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_s_sec_01_an_oidc_jwt_signs_in_a_user_created_on_first_sight(
    oidc_api: Api, signing_key: rsa.RSAPrivateKey
) -> None:
    """A valid JWT is the user ``sub`` names: created once, with no roles, named by the claim."""
    token = _jwt(signing_key, name="Ada Lovelace")
    first = oidc_api.get(INTENTS, headers=_bearer(token))
    assert first.status_code == 200, first.text
    assert first.json() == {"items": [], "nextCursor": None}
    assert oidc_api.get(INTENTS, headers=_bearer(token)).status_code == 200
    with oidc_api.fp.runtime.reader() as uow:
        user = uow.users.get_by_external_id("oidc|ada")
    assert user is not None
    assert user.display_name == "Ada Lovelace"
    assert user.roles == frozenset()
    # Roles never come from the identity provider: publisher endpoints stay closed.
    assert_error(
        oidc_api.get("/v1/publisher/listings", headers=_bearer(token)), 403, "UNAUTHORIZED"
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example.test/"},
        {"aud": "another-api"},
        {"exp": 1_000_000},
        {"sub": ""},
    ],
    ids=["issuer", "audience", "expired", "empty-sub"],
)
def test_s_sec_01_a_jwt_that_proves_nothing_is_unauthenticated_everywhere(
    oidc_api: Api, signing_key: rsa.RSAPrivateKey, claims: dict[str, object]
) -> None:
    """Wrong issuer, audience, expiry or subject: 401 on private and public endpoints alike."""
    token = _jwt(signing_key, **claims)
    for path in (INTENTS, "/v1/public/listings/search"):
        assert_error(oidc_api.get(path, headers=_bearer(token)), 401, "UNAUTHENTICATED")


def test_s_sec_01_a_jwt_signed_by_another_key_is_unauthenticated(oidc_api: Api) -> None:
    """A JWT signed with a key the provider never published is refused."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_error(oidc_api.get(INTENTS, headers=_bearer(_jwt(stranger))), 401, "UNAUTHENTICATED")


def test_s_sec_01_without_oidc_configured_a_jwt_is_unauthenticated(
    api: Api, signing_key: rsa.RSAPrivateKey
) -> None:
    """A server with no OIDC settings accepts only its own API tokens."""
    assert_error(api.get(INTENTS, headers=_bearer(_jwt(signing_key))), 401, "UNAUTHENTICATED")


def test_s_sec_01_a_revoked_api_token_stops_working_at_once(api: Api) -> None:
    """Revoking a token (the CLI's tokens revoke) makes its next request 401."""
    buyer = api.buyer()
    assert api.get(INTENTS, buyer).status_code == 200
    with api.fp.runtime.reader() as uow:
        user = uow.users.get_by_external_id(buyer.external_id)
        assert user is not None
        (token,) = uow.api_tokens.list_for_user(user.user_id, None, 10)
    api.fp.credentials.revoke_api_token(token.token_id)
    assert_error(api.get(INTENTS, buyer), 401, "UNAUTHENTICATED")


def test_s_sec_01_an_api_token_expires_on_its_day(api: Api) -> None:
    """A token made with an expiry works until then and is 401 from that instant."""
    buyer = api.buyer()
    expiring = api.fp.credentials.issue_api_token(buyer.external_id, expires_in_days=1)
    headers = _bearer(expiring.api_token)
    assert api.get(INTENTS, headers=headers).status_code == 200
    clock: ManualClock = api.clock
    assert expiring.expires_at_ms is not None
    clock.advance(expiring.expires_at_ms - clock.now_ms() - 1)
    assert api.get(INTENTS, headers=headers).status_code == 200
    clock.advance(1)
    assert_error(api.get(INTENTS, headers=headers), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + generate_token(API_TOKEN_PREFIX),  # well-formed, never issued
        "Bearer fpat_not-a-token",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a b c",
        "Token abc",
    ],
    ids=["unknown", "bad-checksum", "empty", "basic", "spaces", "scheme"],
)
def test_s_sec_01_malformed_or_unknown_credentials_are_one_401(
    api: Api, authorization: str
) -> None:
    """Every credential that proves nothing gets the same 401 body (apart from the request id)."""
    response = api.get(INTENTS, headers={"Authorization": authorization})
    error = assert_error(response, 401, "UNAUTHENTICATED")
    assert error["message"] == "The credentials are missing, invalid or expired."
    assert "fpat_" not in response.text
    assert "dXNlcjpwYXNz" not in response.text


# --------------------------------------------------------------------------- GET /v1/me


def test_me_answers_who_the_credentials_sign_in_as(api: Api) -> None:
    """``GET /v1/me`` names the caller's user and roles; anonymous and revoked are 401."""
    ada = api.user(Role.PUBLISHER, Role.ADMIN, display_name="Ada")
    answer = api.get("/v1/me", ada)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "user": {
            "userId": ada.user_id,
            "externalId": ada.external_id,
            "displayName": "Ada",
            "roles": ["admin", "publisher"],
            "createdAtMs": answer.json()["user"]["createdAtMs"],
            "updatedAtMs": answer.json()["user"]["updatedAtMs"],
        }
    }
    assert api.get("/v1/me", api.buyer()).json()["user"]["roles"] == []
    assert_error(api.get("/v1/me"), 401, "UNAUTHENTICATED")
    token_id = api.fp.credentials.list_api_tokens(ada.external_id)[0].token_id
    api.fp.credentials.revoke_api_token(token_id)
    assert_error(api.get("/v1/me", ada), 401, "UNAUTHENTICATED")


def test_me_with_a_first_seen_oidc_subject_creates_a_user_without_roles(
    oidc_api: Api, signing_key: rsa.RSAPrivateKey
) -> None:
    answer = oidc_api.client.get("/v1/me", headers=_bearer(_jwt(signing_key, sub="oidc|new")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["externalId"] == "oidc|new"
    assert answer.json()["user"]["roles"] == []
