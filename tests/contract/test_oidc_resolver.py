"""OidcIdentityResolver: OIDC bearer JWTs to principals, and nothing else (spec §8).

Keys are generated here with ``cryptography`` and tokens signed with PyJWT.
A JWKS endpoint is a small ``http.server`` on 127.0.0.1 (an ephemeral port),
which is why this suite lives with the contract tests rather than the unit
tests of the core. Every refusal is ``None``: a credential never makes the
resolver raise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from contract.harness import run_threads
from fleetprompt_adapters import oidc
from fleetprompt_adapters.oidc import MAX_TOKEN_CHARS, OidcIdentityResolver
from fleetprompt_core.ports import Principal

ISSUER = "https://id.example.test/"
AUDIENCE = "fleetprompt-api"
MISSING = object()

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# --------------------------------------------------------------------------- keys and tokens


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    """One private key per kind, generated once for the module."""
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "pss": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


def public_jwk(key: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of ``key`` as a JWKS document lists it."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk["use"] = "sig"
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def claims(**changes: object) -> dict[str, object]:
    """Valid claims for ISSUER/AUDIENCE, with ``changes`` applied (MISSING removes one)."""
    now = int(time.time())
    body: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
        "name": "Ada Lovelace",
        "email": "ada@example.test",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not MISSING}


def sign(
    key: PrivateKey,
    body: Mapping[str, object] | None = None,
    *,
    alg: str = "RS256",
    kid: str | None = "k1",
    headers: Mapping[str, object] | None = None,
) -> str:
    """A token over ``body`` (valid claims by default) signed with ``key``.

    Signed at the JWS level, so that claims PyJWT would refuse to encode (a
    non-string ``iss``, …) can still be put to the resolver.
    """
    extra: dict[str, object] = {} if kid is None else {"kid": kid}
    extra.update(headers or {})
    payload = json.dumps(dict(claims() if body is None else body)).encode()
    return jwt.api_jws.encode(payload, key, algorithm=alg, headers=extra)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: Mapping[str, object], body: Mapping[str, object], signature: bytes) -> str:
    """A compact JWS assembled by hand (for what PyJWT refuses to produce)."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(body).encode()), b64(signature)]
    )


def hs256_token(secret: bytes, header: Mapping[str, object], body: Mapping[str, object]) -> str:
    """An HS256 token made by hand with any bytes as the HMAC secret."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    mac = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return head + "." + b64(mac)


def resolver(*jwks: Mapping[str, object], **options: Any) -> OidcIdentityResolver:
    """A resolver for ISSUER/AUDIENCE over static keys ``jwks``."""
    return OidcIdentityResolver(issuer=ISSUER, audience=AUDIENCE, keys=list(jwks), **options)


@pytest.fixture(scope="module")
def rsa_resolver(keys: dict[str, PrivateKey]) -> OidcIdentityResolver:
    """Static keys: k1 (RSA, RS256), ec1 (P-256), pss1 (RSA, PS256), ed1 (Ed25519)."""
    return resolver(
        public_jwk(keys["rsa"], "k1"),
        public_jwk(keys["ec"], "ec1"),
        public_jwk(keys["pss"], "pss1", alg="PS256"),
        public_jwk(keys["ed"], "ed1"),
    )


ADA = Principal("user-1", "Ada Lovelace", "ada@example.test")


# --------------------------------------------------------------------------- valid tokens


@pytest.mark.parametrize(
    ("key_name", "kid", "alg"),
    [
        ("rsa", "k1", "RS256"),
        ("ec", "ec1", "ES256"),
        ("pss", "pss1", "PS256"),
        ("ed", "ed1", "EdDSA"),
    ],
)
def test_oidc_accepts_a_valid_token_of_each_default_algorithm(
    rsa_resolver: OidcIdentityResolver,
    keys: dict[str, PrivateKey],
    key_name: str,
    kid: str,
    alg: str,
) -> None:
    """RS256, ES256, PS256 and EdDSA tokens resolve to sub, name and email."""
    assert rsa_resolver.resolve(sign(keys[key_name], kid=kid, alg=alg)) == ADA


def test_oidc_principal_has_only_sub_when_profile_claims_are_absent(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """Without name and email the principal carries the external id alone."""
    token = sign(keys["rsa"], claims(name=MISSING, email=MISSING, iat=MISSING))
    assert rsa_resolver.resolve(token) == Principal("user-1")


def test_oidc_accepts_an_audience_list_that_contains_the_audience(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """aud may be a list; it must contain the configured audience."""
    assert rsa_resolver.resolve(sign(keys["rsa"], claims(aud=["other", AUDIENCE]))) == ADA
    assert rsa_resolver.resolve(sign(keys["rsa"], claims(aud=["other", "more"]))) is None


def test_oidc_uses_the_only_key_for_a_token_without_kid(keys: dict[str, PrivateKey]) -> None:
    """With one static key a token without kid is checked against it; with two it is refused."""
    single = resolver(public_jwk(keys["rsa"], "k1"))
    assert single.resolve(sign(keys["rsa"], kid=None)) == ADA
    assert single.resolve(sign(keys["rsa2"], kid=None)) is None
    kidless = resolver(public_jwk(keys["rsa"], None))
    assert kidless.resolve(sign(keys["rsa"], kid=None)) == ADA
    assert kidless.resolve(sign(keys["rsa"], kid="k1")) is None  # a kid must name a key
    double = resolver(public_jwk(keys["rsa"], "k1"), public_jwk(keys["rsa2"], "k2"))
    assert double.resolve(sign(keys["rsa"], kid=None)) is None
    assert double.resolve(sign(keys["rsa2"], kid="k2")) == ADA


def test_oidc_leeway_absorbs_small_clock_skew(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """exp 10 s past, nbf and iat 10 s ahead pass with the default 30 s leeway."""
    now = int(time.time())
    token = sign(keys["rsa"], claims(exp=now - 10, nbf=now + 10, iat=now + 10))
    assert rsa_resolver.resolve(token) == ADA
    strict = resolver(public_jwk(keys["rsa"], "k1"), leeway_s=0)
    assert strict.resolve(token) is None


# --------------------------------------------------------------------------- refused claims


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("wrong issuer", {"iss": "https://evil.example.test/"}),
        ("issuer without trailing slash", {"iss": ISSUER.rstrip("/")}),
        ("issuer not a string", {"iss": ["https://id.example.test/"]}),
        ("missing issuer", {"iss": MISSING}),
        ("wrong audience", {"aud": "another-api"}),
        ("missing audience", {"aud": MISSING}),
        ("empty audience", {"aud": []}),
        ("audience not a string", {"aud": 7}),
        ("expired", {"exp": int(time.time()) - 3_600}),
        ("missing exp", {"exp": MISSING}),
        ("exp not a number", {"exp": "tomorrow"}),
        ("nbf in the future", {"nbf": int(time.time()) + 3_600}),
        ("nbf not a number", {"nbf": "soon"}),
        ("iat in the future", {"iat": int(time.time()) + 3_600}),
        ("iat not a number", {"iat": "now"}),
        ("missing sub", {"sub": MISSING}),
        ("empty sub", {"sub": ""}),
        ("sub not a string", {"sub": 12345}),
        ("sub null", {"sub": None}),
        ("sub too long", {"sub": "u" * 256}),
        ("sub with a control character", {"sub": "user\x07one"}),
        ("sub with a newline", {"sub": "user\none"}),
        ("sub with NUL", {"sub": "user\x00"}),
        ("sub with a lone surrogate", {"sub": "user\ud800"}),
    ],
)
def test_oidc_refuses_invalid_claims(
    rsa_resolver: OidcIdentityResolver,
    keys: dict[str, PrivateKey],
    case: str,
    changes: dict[str, object],
) -> None:
    """A correctly signed token with a wrong, missing or malformed claim proves nothing."""
    assert rsa_resolver.resolve(sign(keys["rsa"], claims(**changes))) is None, case


def test_oidc_sub_limits_are_those_of_the_core(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """255 characters and any printable unicode are accepted as the external id, exactly."""
    for sub in ["u" * 255, "auth0|5f0c", "ключ-🔑", " padded "]:
        principal = rsa_resolver.resolve(sign(keys["rsa"], claims(sub=sub)))
        assert principal is not None
        assert principal.external_id == sub


def test_oidc_profile_claims_are_trimmed_or_dropped(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """Names are stripped and cut to 80 chars; bad or oversize values become None, never errors."""

    def profile(**changes: object) -> tuple[str | None, str | None]:
        principal = rsa_resolver.resolve(sign(keys["rsa"], claims(**changes)))
        assert principal is not None
        return principal.display_name, principal.email

    assert profile(name="  Ada  ", email=" ada@example.test ") == ("Ada", "ada@example.test")
    assert profile(name="n" * 200)[0] == "n" * 80
    assert profile(name="x" * 79 + " tail")[0] == "x" * 79
    assert profile(name=42, email=["a@b"]) == (None, None)
    assert profile(name="   ", email="") == (None, None)
    assert profile(name="bell\x07", email="a\x00@b.test") == (None, None)
    long_email = "a" * 250 + "@b.test"
    assert profile(email=long_email)[1] is None  # a cut address would be a wrong one
    assert profile(email="e" * 247 + "@b.test")[1] == "e" * 247 + "@b.test"  # 254 chars


# --------------------------------------------------------------------------- refused signatures


def test_oidc_refuses_a_token_signed_by_another_key(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """The right kid with the wrong key's signature is refused."""
    assert rsa_resolver.resolve(sign(keys["rsa2"], kid="k1")) is None


def test_oidc_refuses_a_tampered_payload(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """Changing the payload after signing (sub → admin) breaks the signature."""
    header, _, signature = sign(keys["rsa"]).split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    assert rsa_resolver.resolve(f"{header}.{forged}.{signature}") is None


def test_oidc_refuses_an_unknown_kid(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """A kid no static key has (and no JWKS URL) is refused."""
    assert rsa_resolver.resolve(sign(keys["rsa"], kid="k9")) is None


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_oidc_refuses_unsigned_tokens(rsa_resolver: OidcIdentityResolver, alg: str) -> None:
    """alg none (any spelling), with or without kid or signature, is refused."""
    for header in ({"alg": alg, "typ": "JWT"}, {"alg": alg, "kid": "k1"}):
        assert rsa_resolver.resolve(raw_token(header, claims(), b"")) is None
        assert rsa_resolver.resolve(raw_token(header, claims(), b"sig")) is None
    assert rsa_resolver.resolve(raw_token({"typ": "JWT"}, claims(), b"")) is None  # no alg


def test_oidc_refuses_hmac_tokens_keyed_with_the_public_key(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """Key confusion: HS256/384/512 over the RSA public key (PEM, DER, JWK n) never verifies."""
    public = keys["rsa"].public_key()
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        json.dumps(public_jwk(keys["rsa"], "k1")).encode(),
        public_jwk(keys["rsa"], "k1")["n"].encode(),
    ]
    for secret in secrets:
        for kid in ("k1", None):
            header = {"alg": "HS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
            assert rsa_resolver.resolve(hs256_token(secret, header, claims())) is None


def test_oidc_refuses_a_token_whose_alg_differs_from_its_key(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """The key decides the algorithm: RS256 on a PS256 key, ES256 naming an RSA kid, … refused."""
    assert rsa_resolver.resolve(sign(keys["pss"], kid="pss1", alg="RS256")) is None
    assert rsa_resolver.resolve(sign(keys["rsa"], kid="k1", alg="PS256")) is None
    assert rsa_resolver.resolve(sign(keys["ec"], kid="k1", alg="ES256")) is None
    assert rsa_resolver.resolve(sign(keys["rsa"], kid="ec1", alg="RS256")) is None
    assert rsa_resolver.resolve(sign(keys["rsa"], kid="k1", alg="RS512")) is None  # not accepted


def test_oidc_refuses_keys_shorter_than_2048_bits(keys: dict[str, PrivateKey]) -> None:
    """A 1024-bit RSA key is refused at verification, not merely warned about."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a warning must not be what refuses the token
        token = sign(weak, kid="weak")
        caught.clear()
        assert resolver(public_jwk(weak, "weak")).resolve(token) is None
    assert not [w for w in caught if issubclass(w.category, jwt.InsecureKeyLengthWarning)]


def test_oidc_refuses_unknown_critical_header_extensions(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """A header marking an extension critical that is not understood is refused (RFC 7515)."""
    token = sign(keys["rsa"], headers={"crit": ["exp-policy"], "exp-policy": 1})
    assert rsa_resolver.resolve(token) is None


# --------------------------------------------------------------------------- malformed input


def _deeply_nested() -> str:
    head = b64(b'{"alg":"RS256","x":' + b"[" * 5_000 + b"]" * 5_000 + b"}")
    return f"{head}.{b64(b'{}')}.{b64(b'sig')}"


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "...",
        "a.b.c.d.e",  # JWE compact form: never accepted
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "!!!.@@@.###",
        b64(b"not json") + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b'"a string"') + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b'{"alg":"RS256","kid":7}') + "." + b64(b"{}") + "." + b64(b"sig"),
        b64(b'{"alg":"RS256","kid":"k1"}') + "." + b64(b"[1,2]") + "." + b64(b"sig"),
        b64(b'{"alg":"RS256","kid":"k1"}') + "." + b64(b"not json") + "." + b64(b"sig"),
        "x" * (MAX_TOKEN_CHARS + 1),
        "é.é.é",
    ],
)
def test_oidc_refuses_malformed_tokens(rsa_resolver: OidcIdentityResolver, credential: str) -> None:
    """Anything that is not a well-formed compact JWS is None, not an exception."""
    assert rsa_resolver.resolve(credential) is None


def test_oidc_refuses_deeply_nested_json_and_non_strings(
    rsa_resolver: OidcIdentityResolver,
) -> None:
    """Pathological JSON (recursion) and values that are not strings are refused quietly."""
    assert rsa_resolver.resolve(_deeply_nested()) is None
    for value in (None, b"a.b.c", 42, ["a", "b", "c"]):
        assert rsa_resolver.resolve(value) is None  # type: ignore[arg-type]


def test_oidc_refuses_a_token_longer_than_the_limit_even_if_valid(
    rsa_resolver: OidcIdentityResolver, keys: dict[str, PrivateKey]
) -> None:
    """A correctly signed token over MAX_TOKEN_CHARS is refused unread."""
    token = sign(keys["rsa"], claims(padding="p" * MAX_TOKEN_CHARS))
    assert len(token) > MAX_TOKEN_CHARS
    assert rsa_resolver.resolve(token) is None


@settings(max_examples=300, deadline=None)
@given(
    credential=st.one_of(
        st.text(max_size=300),
        st.lists(
            st.text(
                alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                max_size=120,
            ),
            min_size=3,
            max_size=3,
        ).map(".".join),
        st.tuples(
            st.dictionaries(
                st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku"]),
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.integers(),
                    st.text(max_size=8),
                    st.lists(st.text(max_size=4), max_size=2),
                ),
            ),
            st.dictionaries(
                st.text(max_size=5),
                st.one_of(st.none(), st.integers(), st.text(max_size=8)),
                max_size=5,
            ),
            st.binary(max_size=64),
        ).map(lambda parts: raw_token(*parts)),
    )
)
def test_oidc_never_raises_for_arbitrary_credentials(
    rsa_resolver: OidcIdentityResolver, credential: str
) -> None:
    """Random text, random base64 triples and random headers/claims: always None, never raises."""
    assert rsa_resolver.resolve(credential) is None


def test_oidc_never_logs_or_echoes_the_token(
    rsa_resolver: OidcIdentityResolver,
    keys: dict[str, PrivateKey],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refusals log at most an exception class name: no token, no part of one, no claim value."""
    caplog.set_level(logging.DEBUG, logger="fleetprompt_adapters")
    secret_sub = "sub-that-must-not-leak"
    tokens = [
        sign(keys["rsa2"], claims(sub=secret_sub)),  # bad signature
        sign(keys["rsa"], claims(sub=secret_sub, exp=1)),  # expired
        sign(keys["rsa"], claims(sub=secret_sub, iss="https://leak.example.test/")),
        sign(keys["rsa"], claims(sub=secret_sub), kid="kid-that-must-not-leak"),
        _deeply_nested(),
        sign(keys["rsa"], claims(sub=secret_sub)),  # valid
    ]
    for token in tokens:
        rsa_resolver.resolve(token)
    logged = caplog.text
    for token in tokens:
        for part in token.split("."):
            assert part not in logged
    for word in (secret_sub, "kid-that-must-not-leak", "leak.example"):
        assert word not in logged


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "algorithms",
    [["HS256"], ["RS256", "HS512"], ["none"], ["RS256", "none"], [], ["RS255"]],
)
def test_oidc_refuses_symmetric_unsigned_or_unknown_algorithms_in_configuration(
    keys: dict[str, PrivateKey], algorithms: list[str]
) -> None:
    """Only asymmetric algorithms may be configured: HS*, none and unknown names are ValueError."""
    with pytest.raises(ValueError, match="algorithm"):
        resolver(public_jwk(keys["rsa"], "k1"), algorithms=algorithms)


def test_oidc_refuses_unusable_static_keys(keys: dict[str, PrivateKey]) -> None:
    """Symmetric, private, encryption, duplicate, kid-less-among-many, odd keys: ValueError."""
    rsa_jwk = public_jwk(keys["rsa"], "k1")
    private = json.loads(RSAAlgorithm.to_jwk(keys["rsa"])) | {"kid": "p"}
    cases: list[list[dict[str, Any]]] = [
        [{"kty": "oct", "k": b64(b"0" * 32), "kid": "sym"}],
        [private],
        [rsa_jwk | {"use": "enc"}],
        [rsa_jwk, public_jwk(keys["rsa2"], "k1")],
        [rsa_jwk, public_jwk(keys["rsa2"], None)],
        [rsa_jwk | {"alg": "RS384"}],  # not among the configured algorithms
        [rsa_jwk | {"alg": "HS256"}],
        [{"kty": "RSA", "kid": "broken", "n": "AQAB"}],
        [{"kty": "XYZ", "kid": "k"}],
        [rsa_jwk | {"kid": 7}],
        [rsa_jwk | {"kid": ""}],
    ]
    for case in cases:
        with pytest.raises(ValueError, match="OIDC key"):
            resolver(*case)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"issuer": ""}, "issuer"),
        ({"audience": ""}, "audience"),
        ({"keys": []}, "keys"),
        ({"jwks_url": "file:///etc/passwd", "keys": []}, "jwks_url"),
        ({"jwks_url": "ftp://id.example.test/jwks", "keys": []}, "jwks_url"),
        ({"leeway_s": -1}, "leeway"),
        ({"jwks_cache_s": 0}, "jwks_cache_s"),
    ],
)
def test_oidc_refuses_incomplete_configuration(
    keys: dict[str, PrivateKey], options: dict[str, Any], match: str
) -> None:
    """No issuer, audience or keys, a non-HTTP JWKS URL or odd durations are ValueError."""
    arguments: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "keys": [public_jwk(keys["rsa"], "k1")],
    } | options
    with pytest.raises(ValueError, match=match):
        OidcIdentityResolver(**arguments)


def test_oidc_reads_keys_from_a_jwks_file(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    """from_jwks_file loads a JWKS document; an unreadable or odd file is ValueError."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(keys["rsa"], "k1")]}), encoding="utf-8")
    loaded = OidcIdentityResolver.from_jwks_file(path, issuer=ISSUER, audience=AUDIENCE)
    assert loaded.resolve(sign(keys["rsa"])) == ADA
    assert loaded.resolve(sign(keys["rsa2"])) is None
    for content in ("not json", "[]", '{"keys": []}', '{"keys": 5}'):
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match="JWKS"):
            OidcIdentityResolver.from_jwks_file(path, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="JWKS"):
        OidcIdentityResolver.from_jwks_file(
            tmp_path / "absent.json", issuer=ISSUER, audience=AUDIENCE
        )


# --------------------------------------------------------------------------- JWKS over HTTP


class JwksEndpoint:
    """A JWKS endpoint on 127.0.0.1 whose answer the test changes at will."""

    def __init__(self) -> None:
        self.document: object = {"keys": []}
        self.status = 200
        self.raw: bytes | None = None  # served instead of the document when set
        self.requests = 0
        self.delay_s = 0.0  # a slow provider
        self._lock = threading.Lock()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with endpoint._lock:
                    endpoint.requests += 1
                    body = endpoint.raw
                    if body is None:
                        body = json.dumps(endpoint.document).encode()
                    status = endpoint.status
                    delay = endpoint.delay_s
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def publish(self, *jwks: Mapping[str, object]) -> None:
        with self._lock:
            self.document = {"keys": list(jwks)}
            self.status = 200
            self.raw = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def endpoint() -> Iterator[JwksEndpoint]:
    """A running JWKS endpoint, stopped after the test."""
    served = JwksEndpoint()
    try:
        yield served
    finally:
        served.close()


def remote(url: str, **options: Any) -> OidcIdentityResolver:
    return OidcIdentityResolver(issuer=ISSUER, audience=AUDIENCE, jwks_url=url, **options)


def test_oidc_jwks_is_fetched_lazily_and_cached(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """No request at construction; the first token fetches the JWKS; later ones use the cache."""
    endpoint.publish(public_jwk(keys["rsa"], "k1"), public_jwk(keys["ec"], "ec1"))
    resolver_ = remote(endpoint.url)
    assert endpoint.requests == 0
    assert resolver_.resolve(sign(keys["rsa"])) == ADA
    assert endpoint.requests == 1
    for _ in range(5):
        assert resolver_.resolve(sign(keys["ec"], kid="ec1", alg="ES256")) == ADA
        assert resolver_.resolve(sign(keys["rsa2"])) is None
    assert endpoint.requests == 1


def test_oidc_jwks_key_rotation_is_picked_up_after_the_cache_refreshes(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """A new kid is unknown until the cache refreshes, then accepted; the retired kid is refused."""
    endpoint.publish(public_jwk(keys["rsa"], "k1"))
    resolver_ = remote(endpoint.url, jwks_cache_s=1.0)
    assert resolver_.resolve(sign(keys["rsa"], kid="k1")) == ADA
    endpoint.publish(public_jwk(keys["rsa2"], "k2"))  # the provider rotates
    new_token = sign(keys["rsa2"], kid="k2")
    assert resolver_.resolve(new_token) is None  # just fetched: no refetch yet
    assert endpoint.requests == 1
    time.sleep(1.05)
    assert resolver_.resolve(new_token) == ADA
    assert endpoint.requests == 2
    assert resolver_.resolve(sign(keys["rsa"], kid="k1")) is None  # retired
    assert endpoint.requests == 2


def test_oidc_unknown_kid_refetches_early_but_at_most_once_per_cooldown(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown kid refetches before the cache expires, throttled: made-up kids cost nothing."""
    # Long enough that 25 refused tokens fit inside it on a loaded machine.
    monkeypatch.setattr(oidc, "JWKS_REFRESH_COOLDOWN_S", 1.0)
    endpoint.publish(public_jwk(keys["rsa"], "k1"))
    resolver_ = remote(endpoint.url, jwks_cache_s=300)
    assert resolver_.resolve(sign(keys["rsa"])) == ADA
    for i in range(25):
        assert resolver_.resolve(sign(keys["rsa"], kid=f"made-up-{i}")) is None
    assert endpoint.requests == 1
    endpoint.publish(public_jwk(keys["rsa"], "k1"), public_jwk(keys["rsa2"], "k2"))
    time.sleep(1.05)
    assert resolver_.resolve(sign(keys["rsa2"], kid="k2")) == ADA  # early refetch
    assert endpoint.requests == 2
    assert resolver_.resolve(sign(keys["rsa"], kid="k1")) == ADA  # still cached
    assert endpoint.requests == 2


def test_oidc_jwks_down_means_none_not_an_exception(keys: dict[str, PrivateKey]) -> None:
    """A JWKS URL nobody listens on: every token is None and the resolver does not raise."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resolver_ = remote(f"http://127.0.0.1:{port}/jwks.json")
    started = time.monotonic()
    assert resolver_.resolve(sign(keys["rsa"])) is None
    assert resolver_.resolve(sign(keys["rsa"], kid=None)) is None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "raw", "document"),
    [
        (500, None, {"keys": []}),
        (404, b"not found", None),
        (200, b"<html>not json</html>", None),
        (200, b"\xff\xfe", None),
        (200, None, ["a", "list"]),
        (200, None, {"keys": []}),
        (200, None, {"keys": "none"}),
        (200, None, {"keys": [1, "two", None]}),
        (200, None, {"no": "keys"}),
    ],
)
def test_oidc_broken_jwks_answers_mean_none(
    endpoint: JwksEndpoint,
    keys: dict[str, PrivateKey],
    status: int,
    raw: bytes | None,
    document: object,
) -> None:
    """Errors, non-JSON, non-objects and key-less sets from the endpoint refuse every token."""
    endpoint.status, endpoint.raw, endpoint.document = status, raw, document
    assert remote(endpoint.url).resolve(sign(keys["rsa"])) is None
    assert endpoint.requests == 1


def test_oidc_jwks_symmetric_keys_are_ignored(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """An oct key in the JWKS never verifies anything, even an HS256 token made with it."""
    secret = b"s" * 32
    endpoint.publish({"kty": "oct", "k": b64(secret), "kid": "sym", "alg": "HS256"})
    token = hs256_token(secret, {"alg": "HS256", "kid": "sym"}, claims())
    assert remote(endpoint.url).resolve(token) is None


def test_oidc_jwks_serves_its_cache_through_an_outage_then_fails_closed(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """Cached keys outlive a provider outage until the cache expires; then None; then recovery."""
    endpoint.publish(public_jwk(keys["rsa"], "k1"))
    resolver_ = remote(endpoint.url, jwks_cache_s=1.0)
    assert resolver_.resolve(sign(keys["rsa"])) == ADA
    endpoint.status = 503
    assert resolver_.resolve(sign(keys["rsa"])) == ADA  # cached
    time.sleep(1.05)
    assert resolver_.resolve(sign(keys["rsa"])) is None  # stale keys are not used
    assert endpoint.requests == 2
    assert resolver_.resolve(sign(keys["rsa"])) is None  # backing off: no new request
    assert endpoint.requests == 2
    endpoint.status = 200
    time.sleep(1.05)
    assert resolver_.resolve(sign(keys["rsa"])) == ADA
    assert endpoint.requests == 3


def test_oidc_jwks_single_kidless_key_serves_tokens_without_kid(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """A JWKS with one key and no kid verifies tokens without kid; with two keys it refuses."""
    endpoint.publish(public_jwk(keys["ec"], None))
    assert remote(endpoint.url).resolve(sign(keys["ec"], kid=None, alg="ES256")) == ADA
    endpoint.publish(public_jwk(keys["ec"], "a"), public_jwk(keys["rsa"], "b"))
    assert remote(endpoint.url).resolve(sign(keys["ec"], kid=None, alg="ES256")) is None


def test_oidc_static_keys_are_used_before_the_jwks(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """A kid among the static keys needs no request; other kids go to the JWKS URL."""
    endpoint.publish(public_jwk(keys["rsa2"], "k2"))
    both = OidcIdentityResolver(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=endpoint.url,
        keys=[public_jwk(keys["rsa"], "k1")],
    )
    assert both.resolve(sign(keys["rsa"], kid="k1")) == ADA
    assert endpoint.requests == 0
    assert both.resolve(sign(keys["rsa2"], kid="k2")) == ADA
    assert endpoint.requests == 1


def test_oidc_concurrent_first_requests_share_one_fetch(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey]
) -> None:
    """Threads resolving at once on a cold cache (slow provider) cause exactly one JWKS request."""
    endpoint.publish(public_jwk(keys["rsa"], "k1"))
    endpoint.delay_s = 0.2
    resolver_ = remote(endpoint.url)
    token = sign(keys["rsa"])
    start = threading.Barrier(8)

    def worker(_: int) -> list[Principal | None]:
        start.wait()
        return [resolver_.resolve(token) for _ in range(5)]

    results = run_threads(8, worker)
    assert all(principal == ADA for batch in results for principal in batch)
    assert endpoint.requests == 1


def test_oidc_jwks_failures_are_logged_without_the_token(
    endpoint: JwksEndpoint, keys: dict[str, PrivateKey], caplog: pytest.LogCaptureFixture
) -> None:
    """A failed fetch logs one warning naming the failure's class; the token is not in it."""
    caplog.set_level(logging.DEBUG, logger="fleetprompt_adapters")
    endpoint.status = 500
    token = sign(keys["rsa"])
    assert remote(endpoint.url).resolve(token) is None
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 1
    assert "JWKS fetch failed" in warnings_[0].getMessage()
    assert all(part not in caplog.text for part in token.split("."))


def test_oidc_construction_makes_no_request(endpoint: JwksEndpoint) -> None:
    """Building a resolver over a JWKS URL (even a dead one) touches no network."""
    remote(endpoint.url)
    remote("http://127.0.0.1:1/jwks.json")
    assert endpoint.requests == 0
