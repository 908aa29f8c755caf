"""Shared hypothesis strategies: the one place where test data for FleetPrompt is described.

Every strategy returns JSON-like payloads in wire form (camelCase keys, enum
values as strings), exactly what a client would send to a use case. The
"valid" strategies stay inside every bound and rule of the contract (§3, §4,
§6), so a use case must accept what they produce; :func:`arbitrary_payloads`
and the ``invalid_*`` strategies are for the error paths. Bounds are written
here from the contract, not imported from the code under test, so that a wrong
constant in ``src/`` cannot make its own tests agree with it.

Text strategies include non-ASCII, combining, zero-width, right-to-left and
astral (non-BMP) characters: lengths in the contract are counted in code
points, so a rule that counted UTF-16 units or bytes would refuse some of them.
"""

from __future__ import annotations

import string
import unicodedata
from typing import Any, Final

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from fleetprompt_core import ArtifactKind, AssetKind, InstallTargetSystem
from fleetprompt_core.policies.validation import has_reordering
from support import IMAGE_HOST

__all__ = [
    "KNOWN_PAYLOAD_KEYS",
    "api_token_expiry_days",
    "api_token_names",
    "arbitrary_payloads",
    "artifacts",
    "asset_kinds",
    "bounded_text",
    "compats",
    "descriptions",
    "https_urls",
    "idempotency_keys",
    "image_urls",
    "images",
    "intent_payloads",
    "invalid_api_token_expiry_days",
    "invalid_idempotency_keys",
    "invalid_token_ttls",
    "json_texts",
    "json_values",
    "labels",
    "links",
    "listing_names",
    "listing_patches",
    "listing_payloads",
    "markdown_texts",
    "reasons",
    "release_payloads",
    "release_refs",
    "release_versions",
    "summaries",
    "target_contexts",
    "target_systems",
    "text_characters",
    "token_requests",
    "token_ttls",
]

# Bounds of the contract (§3, §4, §6), restated on purpose (see the module docstring).
NAME_MAX: Final = 80
SUMMARY_MAX: Final = 240
DESCRIPTION_MAX: Final = 20_000
TAGS_MAX: Final = 20
CATEGORIES_MAX: Final = 10
LABEL_MAX: Final = 32
IMAGES_MAX: Final = 10
IMAGE_ALT_MAX: Final = 200
REASON_MAX: Final = 1_000
VERSION_MAX: Final = 64
REF_MAX: Final = 200
COMPAT_MAX: Final = 64
ARTIFACTS_MAX: Final = 20
ARTIFACT_HINT_MAX: Final = 1_000
NOTES_MAX: Final = 10_000
TARGET_CONTEXT_MAX: Final = 200
TOKEN_TTL_MIN_MS: Final = 60_000
TOKEN_TTL_MAX_MS: Final = 3_600_000
IDEMPOTENCY_KEY_MAX: Final = 255
API_TOKEN_NAME_MAX: Final = 80
API_TOKEN_EXPIRY_DAYS_MIN: Final = 1
API_TOKEN_EXPIRY_DAYS_MAX: Final = 3_650
URL_MAX: Final = 2_048
JSON_SAFE_INT_MAX: Final = 2**53 - 1

#: Every top-level key some FleetPrompt request body knows; arbitrary payloads use them
#: often so that they reach past "unknown field" into the per-field checks.
KNOWN_PAYLOAD_KEYS: Final = (
    "assetKind",
    "name",
    "summary",
    "description",
    "tags",
    "categories",
    "images",
    "links",
    "status",
    "version",
    "refs",
    "compat",
    "artifacts",
    "notes",
    "reason",
    "listingId",
    "releaseId",
    "targetSystem",
    "targetContext",
    "ttlMs",
    "installToken",
)

# Characters worth meeting more often than uniform sampling would: accents, a
# character whose lower case is longer (İ), ligatures, final sigma, CJK, Hangul,
# a combining accent, zero-width (non-)joiners, a right-to-left override, a
# no-break space, and astral letters and emoji (one code point, two UTF-16 units).
_SPICY: Final = (
    "é",
    "ß",
    "İ",
    "ı",
    "ﬁ",
    "ς",
    "Ж",
    "中",
    "한",
    "\u0301",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u00a0",
    "😀",
    "👩",
    "𝔘",
    "𐍈",
    "🜁",
)
_MARKDOWN_SNIPPETS: Final = (
    "# Heading\n",
    "**bold** ",
    "_em_ ",
    "`code` ",
    "\n\n",
    "- item\n",
    "1. first\n",
    "> quote\n",
    "[docs](https://docs.example.com/a) ",
    "[bad](javascript:alert(1)) ",
    "![shot](https://images.example.com/a.png) ",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "```\nfenced\n```\n",
    "&amp; &lt; ",
)


def text_characters(*, multiline: bool = False) -> SearchStrategy[str]:
    """Single characters a text field accepts: any Unicode scalar value but controls.

    Surrogates and control characters (category ``Cc``, NUL included) are
    excluded; with ``multiline`` the three line characters ``\\n``, ``\\r``
    and ``\\t`` are added, as markdown and reasons allow them. Single-line
    fields also refuse bidi overrides, isolates and tag characters (ADR 0022),
    so without ``multiline`` those are excluded too.
    """
    chars = st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        st.sampled_from(_SPICY),
    )
    if multiline:
        return st.one_of(chars, st.sampled_from("\n\r\t"))
    return chars.filter(lambda char: not has_reordering(char))


def bounded_text(
    *, max_size: int, min_size: int = 0, multiline: bool = False, trimmed: bool = False
) -> SearchStrategy[str]:
    """Text of at most ``max_size`` code points (non-ASCII and astral characters included).

    With ``trimmed``, the field is one the contract trims before checking its
    length: the text may be padded with spaces (beyond ``max_size`` in all),
    and at least ``min_size`` code points, one of them visible, survive
    ``str.strip()`` (a name of only spaces is not a name).
    """
    text = st.text(text_characters(multiline=multiline), min_size=min_size, max_size=max_size)
    if not trimmed:
        return text
    if min_size:
        text = text.filter(lambda value: len(value.strip()) >= min_size and _has_visible(value))
    # Bounds hold after trimming: padding may take the raw value past ``max_size``.
    padding = st.text(st.sampled_from(" \u00a0\u3000"), max_size=3)
    return st.builds(lambda left, core, right: left + core + right, padding, text, padding)


def _has_visible(text: str) -> bool:
    """Whether ``text`` has a character that is not a separator, control or format character.

    A required trimmed field made only of invisible characters (zero-width
    spaces, say) is refused, so the valid strategies never produce one.
    """
    return any(unicodedata.category(char)[0] not in "ZC" for char in text)


def listing_names() -> SearchStrategy[str]:
    """A listing name: 1..80 code points after trimming."""
    return bounded_text(min_size=1, max_size=NAME_MAX, trimmed=True)


def summaries() -> SearchStrategy[str]:
    """A listing summary: 0..240 code points, one line."""
    return bounded_text(max_size=SUMMARY_MAX)


def markdown_texts(max_size: int = DESCRIPTION_MAX) -> SearchStrategy[str]:
    """Markdown source of at most ``max_size`` code points: free text or markdown pieces.

    The pieces include raw HTML, ``javascript:`` links and images, which the
    markdown policy must neutralise, never reject.
    """
    pieces = st.lists(st.sampled_from(_MARKDOWN_SNIPPETS), max_size=8).map("".join)
    return st.one_of(bounded_text(max_size=max_size, multiline=True), pieces).filter(
        lambda text: len(text) <= max_size
    )


def descriptions(max_size: int = DESCRIPTION_MAX) -> SearchStrategy[dict[str, str]]:
    """A ``{"markdown": ..., "format"?: "markdown"}`` object (listing description)."""
    return st.fixed_dictionaries(
        {"markdown": markdown_texts(max_size)}, optional={"format": st.just("markdown")}
    )


def labels() -> SearchStrategy[str]:
    """One tag or category: 1..32 code points after trimming and lower-casing, any case.

    Lower-casing can lengthen a label (``İ`` becomes two code points); the
    bound holds for the normalised label, which is what is stored.
    """
    return bounded_text(min_size=1, max_size=LABEL_MAX, trimmed=True).filter(
        lambda label: len(label.strip().lower()) <= LABEL_MAX
    )


def _hosts() -> SearchStrategy[str]:
    """A DNS host name of LDH labels whose last label is alphabetic (never an IPv4 look-alike)."""
    label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
    tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)
    return st.builds(
        lambda parts, top: ".".join([*parts, top]), st.lists(label, min_size=1, max_size=3), tld
    )


_PATH_CHARACTERS: Final = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/"),
    st.sampled_from(("é", "中", "😀", "𝔘")),
)


def _ports() -> SearchStrategy[str]:
    """No port, or ``:1`` .. ``:65535``."""
    return st.one_of(st.just(""), st.integers(1, 65_535).map(lambda port: f":{port}"))


def https_urls() -> SearchStrategy[str]:
    """An acceptable link: ``https://`` (any case), a host name, optional port, path and query.

    Never more than 2 048 characters; no whitespace, controls, credentials,
    backslashes, quotes, angle brackets or backticks.
    """
    path = st.text(_PATH_CHARACTERS, max_size=40)
    query = st.one_of(st.just(""), st.text(_PATH_CHARACTERS, max_size=20).map("?{}".format))
    scheme = st.sampled_from(("https://", "HTTPS://", "Https://"))
    return st.builds(
        lambda s, host, port, p, q: f"{s}{host}{port}/{p}{q}",
        scheme,
        _hosts(),
        _ports(),
        path,
        query,
    ).filter(lambda url: len(url) <= URL_MAX)


def image_urls(host: str = IMAGE_HOST) -> SearchStrategy[str]:
    """An acceptable image URL: https on the allowlisted ``host``, a raster file, never SVG."""
    stem = st.text(
        st.sampled_from(string.ascii_letters + string.digits + "-_/"), min_size=1, max_size=30
    )
    extension = st.sampled_from(("png", "jpg", "jpeg", "webp", "gif", "PNG"))
    return st.builds(
        lambda port, name, ext: f"https://{host}{port}/{name}.{ext}", _ports(), stem, extension
    )


def images(host: str = IMAGE_HOST) -> SearchStrategy[dict[str, Any]]:
    """One listing image ``{"url", "alt"?}`` on the allowlisted ``host``; alt ≤ 200."""
    return st.fixed_dictionaries(
        {"url": image_urls(host)},
        optional={"alt": st.one_of(st.none(), bounded_text(max_size=IMAGE_ALT_MAX))},
    )


def links() -> SearchStrategy[dict[str, str | None]]:
    """A ``links`` object: optional ``docsUrl`` and ``repoUrl`` (each may be null)."""
    url = st.one_of(st.none(), https_urls())
    return st.fixed_dictionaries({}, optional={"docsUrl": url, "repoUrl": url})


def asset_kinds() -> SearchStrategy[AssetKind]:
    """One of the three asset kinds."""
    return st.sampled_from(AssetKind)


def _content_fields() -> dict[str, SearchStrategy[Any]]:
    """The optional content fields of a listing, as create and patch accept them."""
    return {
        "summary": st.one_of(st.none(), summaries()),
        "description": st.one_of(st.none(), descriptions()),
        "tags": st.one_of(st.none(), st.lists(labels(), max_size=TAGS_MAX)),
        "categories": st.one_of(st.none(), st.lists(labels(), max_size=CATEGORIES_MAX)),
        "images": st.one_of(st.none(), st.lists(images(), max_size=IMAGES_MAX)),
        "links": st.one_of(st.none(), links()),
    }


def listing_payloads(asset_kind: AssetKind | None = None) -> SearchStrategy[dict[str, Any]]:
    """A valid listing create body (B2), of ``asset_kind`` or of any kind.

    ``assetKind`` and ``name`` are always present; every other content field
    is optional and may be ``null``.
    """
    kind = st.just(asset_kind) if asset_kind is not None else asset_kinds()
    return st.fixed_dictionaries(
        {"assetKind": kind.map(lambda value: value.value), "name": listing_names()},
        optional=_content_fields(),
    )


def listing_patches() -> SearchStrategy[dict[str, Any]]:
    """A valid listing patch (B4): any subset of the content fields (``{}`` included).

    ``links`` may be a partial object (only ``docsUrl``, say): links are
    patched field by field.
    """
    return st.fixed_dictionaries({}, optional={"name": listing_names(), **_content_fields()})


def release_versions() -> SearchStrategy[str]:
    """A version: 1..64 characters of ``[0-9A-Za-z.+-]`` (semantic versions more often,
    with pre-releases and build metadata, so that "latest" has precedence to follow)."""
    number = st.one_of(st.integers(0, 12), st.integers(0, 999))
    pre = st.sampled_from(["", "", "", "-alpha", "-rc.1", "-rc.11", "-beta.2", "-0.x"])
    build = st.sampled_from(["", "", "", "+build.5", "+001"])
    semver = st.builds("{}.{}.{}{}{}".format, number, number, number, pre, build)
    return st.one_of(semver, st.from_regex(r"[0-9A-Za-z.+\-]{1,64}", fullmatch=True))


_REFS_BY_KIND: Final = {
    AssetKind.WHS_AGENT: ("whsAgentId", ("whsDeploymentId",)),
    AssetKind.AGENTROMATIC_WORKFLOW: ("agentromaticWorkflowId", ()),
    AssetKind.SPEC_ASSET: ("specAssetId", ()),
}


def _ref_ids() -> SearchStrategy[str]:
    """An opaque upstream id: 1..200 code points after trimming."""
    return bounded_text(min_size=1, max_size=REF_MAX, trimmed=True)


def release_refs(asset_kind: AssetKind) -> SearchStrategy[dict[str, str]]:
    """The ``refs`` a release of ``asset_kind`` must carry: its required id, plus the
    optional ``whsDeploymentId`` hint for a ``whs_agent``; never a ref of another kind."""
    required, optional = _REFS_BY_KIND[asset_kind]
    return st.fixed_dictionaries(
        {required: _ref_ids()}, optional={name: _ref_ids() for name in optional}
    )


def compats() -> SearchStrategy[dict[str, str | None]]:
    """A ``compat`` object: each minimum version optional, 1..64 characters or null."""
    value = st.one_of(st.none(), bounded_text(min_size=1, max_size=COMPAT_MAX, trimmed=True))
    return st.fixed_dictionaries(
        {},
        optional={
            "minWHSVersion": value,
            "minAgentromaticVersion": value,
            "minAgentelicVersion": value,
        },
    )


def _sha256_hex() -> SearchStrategy[str]:
    """64 hex digits in either case (32 bytes drawn at once: far cheaper than a regex)."""
    return st.builds(
        lambda digest, case: case(digest.hex()),
        st.binary(min_size=32, max_size=32),
        st.sampled_from((str.lower, str.upper)),
    )


def artifacts() -> SearchStrategy[dict[str, Any]]:
    """One artifact pointer: kind, 64-hex sha256 (any case), size ≥ 0, optional download.

    The download mode is ``none`` or ``specprompt_fulfillment``:
    ``fleetprompt_signed_url`` is not offered in v1 (``UNSUPPORTED``).
    """
    download = st.fixed_dictionaries(
        {"mode": st.sampled_from(("none", "specprompt_fulfillment"))},
        optional={
            "hint": st.one_of(st.none(), bounded_text(max_size=ARTIFACT_HINT_MAX, multiline=True))
        },
    )
    return st.fixed_dictionaries(
        {
            "kind": st.sampled_from(ArtifactKind).map(lambda kind: kind.value),
            "sha256": _sha256_hex(),
            "sizeBytes": st.integers(0, JSON_SAFE_INT_MAX),
        },
        optional={"download": st.one_of(st.none(), download)},
    )


def release_payloads(
    asset_kind: AssetKind, *, version: str | None = None
) -> SearchStrategy[dict[str, Any]]:
    """A valid release body (B6) for a listing of ``asset_kind``.

    ``version`` fixes the version (to provoke a duplicate, say); otherwise one
    is drawn from :func:`release_versions`. Refs follow the refs-by-kind rule,
    so a payload for one kind is always invalid for any other kind.
    """
    return st.fixed_dictionaries(
        {
            "version": st.just(version) if version is not None else release_versions(),
            "refs": release_refs(asset_kind),
        },
        optional={
            "compat": st.one_of(st.none(), compats()),
            "artifacts": st.one_of(st.none(), st.lists(artifacts(), max_size=ARTIFACTS_MAX)),
            "notes": st.one_of(st.none(), descriptions(NOTES_MAX)),
        },
    )


def target_systems() -> SearchStrategy[InstallTargetSystem]:
    """One of the three install target systems."""
    return st.sampled_from(InstallTargetSystem)


def target_contexts() -> SearchStrategy[dict[str, str | None]]:
    """A ``targetContext``: optional opaque ``telespaceId``, ``roomId``, ``orgId`` (≤ 200)."""
    value = st.one_of(
        st.none(), bounded_text(min_size=1, max_size=TARGET_CONTEXT_MAX, trimmed=True)
    )
    return st.fixed_dictionaries(
        {}, optional={"telespaceId": value, "roomId": value, "orgId": value}
    )


def intent_payloads(
    listing_id: str,
    release_id: str | None = None,
    target_system: InstallTargetSystem | None = None,
) -> SearchStrategy[dict[str, Any]]:
    """An install intent body (I1) for ``listing_id``, well-formed for any listing.

    With ``release_id`` the body names that release; without, ``releaseId`` is
    absent or null (the latest published release is meant). The target system
    is ``target_system`` or any.
    """
    target = st.just(target_system) if target_system is not None else target_systems()
    optional: dict[str, SearchStrategy[Any]] = {
        "targetContext": st.one_of(st.none(), target_contexts())
    }
    required: dict[str, SearchStrategy[Any]] = {
        "listingId": st.just(listing_id),
        "targetSystem": target.map(lambda system: system.value),
    }
    if release_id is None:
        optional["releaseId"] = st.none()
    else:
        required["releaseId"] = st.just(release_id)
    return st.fixed_dictionaries(required, optional=optional)


def token_ttls() -> SearchStrategy[int]:
    """A token TTL a buyer may ask for: 60 000..3 600 000 ms."""
    return st.integers(TOKEN_TTL_MIN_MS, TOKEN_TTL_MAX_MS)


def invalid_token_ttls() -> SearchStrategy[object]:
    """A ``ttlMs`` value that must be refused: out of range, or not an integer at all."""
    return st.one_of(
        st.integers(max_value=TOKEN_TTL_MIN_MS - 1),
        st.integers(min_value=TOKEN_TTL_MAX_MS + 1),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    )


def token_requests() -> SearchStrategy[dict[str, int] | None]:
    """A valid token request body (I4): absent, ``{}`` (15 min default) or a ``ttlMs``."""
    return st.one_of(st.none(), st.just({}), st.fixed_dictionaries({"ttlMs": token_ttls()}))


def api_token_names() -> SearchStrategy[str]:
    """A personal API token's name: 1..80 code points after trimming (§8)."""
    return bounded_text(min_size=1, max_size=API_TOKEN_NAME_MAX, trimmed=True)


def api_token_expiry_days() -> SearchStrategy[int]:
    """An API token lifetime an operator may ask for: 1..3 650 days."""
    return st.integers(API_TOKEN_EXPIRY_DAYS_MIN, API_TOKEN_EXPIRY_DAYS_MAX)


def invalid_api_token_expiry_days() -> SearchStrategy[object]:
    """An ``expiresInDays`` value that must be refused: out of range, or not an integer."""
    return st.one_of(
        st.integers(max_value=API_TOKEN_EXPIRY_DAYS_MIN - 1),
        st.integers(min_value=API_TOKEN_EXPIRY_DAYS_MAX + 1),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    )


def reasons() -> SearchStrategy[str]:
    """A moderation or revocation reason: 1..1 000 code points after trimming, lines allowed."""
    return bounded_text(min_size=1, max_size=REASON_MAX, multiline=True, trimmed=True)


def idempotency_keys() -> SearchStrategy[str]:
    """A valid ``Idempotency-Key``: 1..255 printable ASCII characters (space included)."""
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        min_size=1,
        max_size=IDEMPOTENCY_KEY_MAX,
    )


def invalid_idempotency_keys() -> SearchStrategy[str]:
    """A key that must be refused: empty, longer than 255, or not printable ASCII."""
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    outside = st.characters(exclude_characters=[chr(c) for c in range(0x20, 0x7F)])
    return st.one_of(
        st.just(""),
        st.text(printable, min_size=IDEMPOTENCY_KEY_MAX + 1, max_size=IDEMPOTENCY_KEY_MAX + 20),
        st.builds(
            lambda head, bad, tail: head + bad + tail,
            st.text(printable, max_size=5),
            outside,
            st.text(printable, max_size=5),
        ),
    )


def json_texts(max_size: int = 20) -> SearchStrategy[str]:
    """A JSON string as ``json.loads`` can return it: any code points, lone surrogates too
    (``"\\ud800"`` is a legal escape), controls and NUL included."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.characters(codec=None, categories=("Cs", "Cc", "L")), max_size=max_size),
    )


def json_values(*, max_leaves: int = 20) -> SearchStrategy[object]:
    """Any JSON value: null, booleans, integers, finite floats, text, lists and objects."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        json_texts(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(json_texts(max_size=10), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


def arbitrary_payloads() -> SearchStrategy[object]:
    """A request body from a careless or hostile client; mostly invalid for any use case.

    Either any JSON value, or an object whose keys are often real field names
    (:data:`KNOWN_PAYLOAD_KEYS`) with values of any JSON type, now and then a
    non-finite float (Python's ``json.loads`` accepts ``NaN``). A use case
    must answer it with a domain error (or accept it, when it happens to be
    valid), never with another exception.
    """
    keys = st.one_of(st.sampled_from(KNOWN_PAYLOAD_KEYS), json_texts(max_size=12))
    values = st.one_of(json_values(), st.sampled_from((float("nan"), float("inf"))))
    return st.one_of(json_values(), st.dictionaries(keys, values, max_size=6))
