"""Bearer JWTs from an OIDC provider (spec §8): the ``IdentityResolver`` port over PyJWT.

A token proves a :class:`~fleetprompt_core.ports.Principal` when all of these hold:

* it is a compact JWS whose header ``alg`` is one of the accepted *asymmetric*
  algorithms (``none`` and the HMAC family are refused outright, so a public
  key can never be used as an HMAC secret);
* its ``kid`` names a known key (static, or from the JWKS URL), or it has no
  ``kid`` and exactly one key is known; the key's own algorithm (its JWK
  ``alg``, else the one its type implies) equals the header's ``alg``;
* the signature verifies, ``iss`` equals the issuer, ``aud`` is or contains
  the audience, ``exp`` is present and not past, and ``nbf``/``iat`` (when
  present) are not in the future, all with ``leeway_s`` of clock skew;
* ``sub`` is a non-empty string of at most 255 characters without control
  characters (the very rule the core applies to an external id).

Anything else, including a JWKS endpoint that is down, answers ``None``: a
credential is untrusted input and never makes :meth:`resolve` raise. The
token never appears in a log record or an exception.

Requires the ``server`` extra (PyJWT with cryptography).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Self

import jwt
from jwt.types import Options

from fleetprompt_core.base import limits
from fleetprompt_core.policies.validation import Problems, check_text
from fleetprompt_core.ports import Principal

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "MAX_TOKEN_CHARS",
    "OidcIdentityResolver",
]

_log = logging.getLogger(__name__)

#: Every algorithm a resolver may be configured with: asymmetric signatures only.
ACCEPTED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS: Final = ("RS256", "ES256", "PS256", "EdDSA")

#: Longer credentials are refused unread (real ID and access tokens are a few KiB).
MAX_TOKEN_CHARS: Final = 16_384

#: Bound on one JWKS request (connect and each read).
JWKS_FETCH_TIMEOUT_S: Final = 5.0
#: An unknown ``kid`` refetches the JWKS at most this often (a rotation that
#: surprised the cache), so a stream of made-up ``kid``s cannot hammer the provider.
JWKS_REFRESH_COOLDOWN_S: Final = 30.0
#: After a failed fetch, requests fail fast for this long instead of each
#: waiting for the provider's timeout.
JWKS_FAILURE_BACKOFF_S: Final = 5.0

#: JWK members that only a private key has (``k``: a symmetric secret).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_DECODE_OPTIONS: Final[Options] = {
    "verify_signature": True,
    "require": ["exp", "iss", "aud", "sub"],
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_iss": True,
    "verify_aud": True,
    "verify_sub": True,
    "strict_aud": False,
    # Refuse, rather than warn about, RSA keys under 2048 bits and the like.
    "enforce_minimum_key_length": True,
}


def _static_key(index: int, data: Mapping[str, object], algorithms: frozenset[str]) -> jwt.PyJWK:
    """One configured verification key, checked strictly: a bad one is a configuration error."""
    where = f"OIDC key #{index}"
    if data.get("kty") == "oct":
        raise ValueError(f"{where}: symmetric keys (kty 'oct') are never accepted")
    if _PRIVATE_MEMBERS & data.keys():
        raise ValueError(f"{where}: holds private key material; configure the public key only")
    if data.get("use", "sig") != "sig":
        raise ValueError(f"{where}: is not a signature key (use {data.get('use')!r})")
    kid = data.get("kid")
    if kid is not None and not (isinstance(kid, str) and kid):
        raise ValueError(f"{where}: 'kid' must be a non-empty string")
    try:
        key = jwt.PyJWK(dict(data))
    except jwt.PyJWTError as error:
        raise ValueError(f"{where}: not a usable JWK ({type(error).__name__})") from None
    if key.algorithm_name not in algorithms:
        raise ValueError(
            f"{where}: its algorithm {key.algorithm_name!r} is not among {sorted(algorithms)}"
        )
    return key


def _static_keys(
    keys: Iterable[Mapping[str, object]], algorithms: frozenset[str]
) -> dict[str | None, jwt.PyJWK]:
    loaded: dict[str | None, jwt.PyJWK] = {}
    for index, data in enumerate(keys):
        if not isinstance(data, Mapping):
            raise ValueError(f"OIDC key #{index}: must be a JWK object")
        key = _static_key(index, data, algorithms)
        if key.key_id in loaded:
            raise ValueError(f"OIDC key #{index}: kid {key.key_id!r} is given twice")
        loaded[key.key_id] = key
    if None in loaded and len(loaded) > 1:
        raise ValueError("several OIDC keys are configured: each needs a 'kid'")
    return loaded


class _RemoteKeys:
    """The keys of a JWKS URL, fetched on first need and cached for ``cache_s``.

    ``jwt.PyJWKClient`` fetches and parses (no redirects followed, bounded by a
    timeout); this class decides when, under one lock, so concurrent requests
    share one fetch. Keys are kept for ``cache_s`` after a successful fetch and
    never served beyond it: a provider that is down means no valid OIDC token
    (fail closed) once the cache is stale.
    """

    def __init__(self, url: str, *, cache_s: float, algorithms: frozenset[str]) -> None:
        self._client = jwt.PyJWKClient(
            url,
            cache_jwk_set=False,  # the caching is done here
            timeout=JWKS_FETCH_TIMEOUT_S,
            headers={"User-Agent": "fleetprompt-oidc"},  # some fronts refuse urllib's default
        )
        self._cache_s = cache_s
        self._cooldown_s = min(JWKS_REFRESH_COOLDOWN_S, cache_s)
        self._backoff_s = min(JWKS_FAILURE_BACKOFF_S, cache_s)
        self._algorithms = algorithms
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # last successful fetch
        self._attempted_at = -math.inf  # last fetch, successful or not
        self._failed = False

    def find(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named ``kid`` (or the only key, for ``None``), fetching when due."""
        with self._lock:
            now = time.monotonic()
            if now - self._fetched_at >= self._cache_s:
                self._keys = {}  # stale: never used again, even if the refresh fails
                if not (self._failed and now - self._attempted_at < self._backoff_s):
                    self._refresh(now)
            key = self._match(kid)
            if key is None and kid is not None and now - self._attempted_at >= self._cooldown_s:
                self._refresh(now)  # perhaps a rotation the cache has not seen yet
                key = self._match(kid)
            return key

    def _match(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            jwk_set = self._client.get_jwk_set(refresh=True)
        except Exception as error:  # network, HTTP, JSON, JWK: all mean "no keys"
            self._failed = True
            _log.warning("OIDC JWKS fetch failed (%s)", type(error).__name__)
            return
        keys: dict[str | None, jwt.PyJWK] = {}
        for key in jwk_set.keys:
            usable = key.public_key_use in ("sig", None) and key.algorithm_name in self._algorithms
            kid = key.key_id
            if usable and (kid is None or isinstance(kid, str)):
                keys.setdefault(kid, key)  # the first of a duplicated kid wins
        self._keys = keys
        self._fetched_at = now
        self._failed = False


def _optional_text(value: object, max_len: int, *, cut: bool) -> str | None:
    """A profile claim kept when it is clean text: trimmed, and cut to ``max_len`` if ``cut``."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if cut:
        value = value[:max_len].rstrip()
    return check_text(value, "claim", Problems(), max_len=max_len, trim=True) or None


def _principal(claims: Mapping[str, Any]) -> Principal | None:
    problems = Problems()
    subject = check_text(
        claims.get("sub"),
        "sub",
        problems,
        max_len=limits.EXTERNAL_ID_MAX,
        min_len=1,
        required=True,
        nullable=False,
    )
    if problems or subject is None:
        return None
    return Principal(
        external_id=subject,
        # A long name is shortened; a long e-mail address is dropped (a cut one is wrong).
        display_name=_optional_text(claims.get("name"), limits.DISPLAY_NAME_MAX, cut=True),
        email=_optional_text(claims.get("email"), limits.EMAIL_MAX, cut=False),
    )


class OidcIdentityResolver:
    """Resolve OIDC bearer JWTs to principals (``sub`` is the external id).

    Verification keys come from ``keys`` (JWK objects as in a JWKS document's
    ``keys``; public keys only) and/or ``jwks_url``, fetched on first need,
    cached for ``jwks_cache_s`` seconds and refetched early (at most every
    30 s) when a token names an unknown ``kid``. Static keys are consulted
    first. Construction checks the configuration (``ValueError``) and makes no
    network request. Thread-safe.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        keys: Sequence[Mapping[str, object]] = (),
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway_s: int = 30,
        jwks_cache_s: float = 300,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience must be a non-empty string")
        accepted = frozenset(algorithms)
        if not accepted:
            raise ValueError("at least one algorithm is needed")
        refused = accepted - ACCEPTED_ALGORITHMS
        if refused:
            raise ValueError(
                f"algorithms {sorted(refused)} are not accepted: only asymmetric signatures "
                f"({', '.join(sorted(ACCEPTED_ALGORITHMS))})"
            )
        if leeway_s < 0:
            raise ValueError("leeway_s must not be negative")
        if not jwks_cache_s > 0:
            raise ValueError("jwks_cache_s must be positive")
        self._issuer = issuer
        self._audience = audience
        self._algorithms = accepted
        self._leeway_s = leeway_s
        self._keys = _static_keys(keys, accepted)
        self._remote: _RemoteKeys | None = None
        if jwks_url is not None:
            if not jwks_url.lower().startswith(("https://", "http://")):
                raise ValueError("jwks_url must be an http:// or https:// URL")
            self._remote = _RemoteKeys(jwks_url, cache_s=jwks_cache_s, algorithms=accepted)
        if not self._keys and self._remote is None:
            raise ValueError("OIDC needs verification keys: keys, jwks_url or both")
        self._jwt = jwt.PyJWT(_DECODE_OPTIONS)

    @classmethod
    def from_jwks_file(
        cls,
        path: str | os.PathLike[str],
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway_s: int = 30,
    ) -> Self:
        """A resolver whose keys are the ``keys`` of the JWKS document at ``path``."""
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read a JWKS document from {path} ({error})") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ValueError(f'{path} is not a JWKS document: {{"keys": [...]}}')
        return cls(
            issuer=issuer, audience=audience, keys=keys, algorithms=algorithms, leeway_s=leeway_s
        )

    def resolve(self, credential: str) -> Principal | None:
        """The principal a valid token proves, else ``None`` (never raises for a credential)."""
        if (
            not isinstance(credential, str)
            or not 0 < len(credential) <= MAX_TOKEN_CHARS
            or credential.count(".") != 2
        ):
            return None
        try:
            return self._verify(credential)
        except Exception as error:  # untrusted input: any failure is a refusal
            # The class name only: messages may quote header or claim values.
            _log.debug("OIDC token refused (%s)", type(error).__name__)
            return None

    def _verify(self, token: str) -> Principal | None:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            return None  # also ``none`` and HS*: refused before any key is looked at
        if kid is not None and not isinstance(kid, str):
            return None
        key = self._key(kid)
        if key is None or key.algorithm_name != alg:
            return None  # the key decides the algorithm, never the token
        claims = self._jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway_s,
        )
        return _principal(claims) if isinstance(claims, dict) else None

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None and kid in self._keys:
            return self._keys[kid]
        if kid is None and self._keys:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._remote.find(kid) if self._remote is not None else None
