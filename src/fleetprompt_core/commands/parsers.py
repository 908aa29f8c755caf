"""Parsers from JSON-like payloads (wire names) to validated domain values.

Each parser reads the whole payload, records every problem, and raises one
``VALIDATION_FAILED`` listing all failing fields, or returns a value that
satisfies every bound and normalisation of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    ArtifactDownloadMode,
    ArtifactKind,
    AssetKind,
    InstallTargetSystem,
    ListingStatus,
    Role,
    SearchSort,
    VerificationStatus,
)
from fleetprompt_core.base.errors import Unsupported
from fleetprompt_core.domain.model import (
    Artifact,
    ArtifactDownload,
    Compat,
    Image,
    Links,
    Listing,
    ReleaseRefs,
    TargetContext,
)
from fleetprompt_core.domain.search import search_terms
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fleetprompt_core.policies.urls import image_url_problem, url_problem
from fleetprompt_core.policies.validation import (
    MISSING,
    SHA256_PATTERN,
    VERSION_PATTERN,
    Problems,
    Reader,
    check_choice,
    check_text,
)

__all__ = [
    "CONTENT_ATTRIBUTES",
    "ListingContent",
    "NewApiToken",
    "NewIntent",
    "NewListing",
    "NewRelease",
    "ProfileUpdate",
    "RoleChange",
    "SearchRequest",
    "apply_listing_patch",
    "parse_api_token_request",
    "parse_bare",
    "parse_limit",
    "parse_new_intent",
    "parse_new_listing",
    "parse_new_release",
    "parse_profile_update",
    "parse_reason",
    "parse_role_change",
    "parse_search",
    "parse_status_change",
    "parse_token_request",
    "parse_verification",
]

_DESCRIPTION_FIELDS: Final = ("markdown", "format")
_LINK_FIELDS: Final = {"docsUrl": "docs_url", "repoUrl": "repo_url"}
#: The publisher-editable attributes of a listing; their wire names are the same.
CONTENT_ATTRIBUTES: Final = (
    "name",
    "summary",
    "description",
    "tags",
    "categories",
    "images",
    "links",
)
_CONTENT_FIELDS: Final = CONTENT_ATTRIBUTES

#: Which reference each asset kind requires, and which refs it may carry.
REQUIRED_REF: Final = {
    AssetKind.WHS_AGENT: "whsAgentId",
    AssetKind.AGENTROMATIC_WORKFLOW: "agentromaticWorkflowId",
    AssetKind.SPEC_ASSET: "specAssetId",
}
ALLOWED_REFS: Final = {
    AssetKind.WHS_AGENT: frozenset({"whsAgentId", "whsDeploymentId"}),
    AssetKind.AGENTROMATIC_WORKFLOW: frozenset({"agentromaticWorkflowId"}),
    AssetKind.SPEC_ASSET: frozenset({"specAssetId"}),
}
_REF_FIELDS: Final = {
    "whsAgentId": "whs_agent_id",
    "whsDeploymentId": "whs_deployment_id",
    "agentromaticWorkflowId": "agentromatic_workflow_id",
    "specAssetId": "spec_asset_id",
}
_COMPAT_FIELDS: Final = {
    "minWHSVersion": "min_whs_version",
    "minAgentromaticVersion": "min_agentromatic_version",
    "minAgentelicVersion": "min_agentelic_version",
}
_CONTEXT_FIELDS: Final = {"telespaceId": "telespace_id", "roomId": "room_id", "orgId": "org_id"}


# --------------------------------------------------------------------------- listings


@attrs.frozen
class ListingContent:
    """The publisher-editable part of a listing, validated and normalised."""

    name: str
    summary: str
    description: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    images: tuple[Image, ...]
    links: Links


@attrs.frozen
class NewListing:
    asset_kind: AssetKind
    content: ListingContent


def _labels(reader: Reader, key: str, max_items: int, problems: Problems) -> tuple[str, ...] | None:
    items = reader.array(key, max_items=max_items)
    if items is None:
        return None
    labels: dict[str, None] = {}
    for path, item in items:
        label = check_text(
            item,
            path,
            problems,
            max_len=limits.LABEL_MAX,
            min_len=1,
            trim=True,
            nullable=False,
            required=True,
        )
        if label is not None and (normalized := _normalized_label(label, path, problems)):
            labels.setdefault(normalized, None)
    return tuple(labels)


def _normalized_label(label: str, path: str, problems: Problems) -> str | None:
    """Lower-cased label; lower-casing can lengthen a string (``İ``), so check again."""
    lowered = label.lower()
    if len(lowered) > limits.LABEL_MAX:
        problems.add(path, f"must be at most {limits.LABEL_MAX} characters")
        return None
    return lowered


def _description(reader: Reader, key: str, max_len: int) -> str | None:
    """``{"markdown": str, "format": "markdown"}``; null clears it."""
    value = reader.raw(key)
    if value is MISSING:
        return None
    if value is None:
        return ""
    sub = reader.child(key, allowed=_DESCRIPTION_FIELDS)
    if sub is None:
        return None
    fmt = sub.raw("format")
    if fmt is not MISSING and fmt != "markdown":
        reader.problems.add(sub.at("format"), "must be markdown")
    text = sub.text("markdown", max_len=max_len, multiline=True)
    return text if text is not None else ""


def _url(reader: Reader, key: str) -> str | None:
    value = reader.text(key, max_len=4096)
    if value is None:
        return None
    problem = url_problem(value)
    if problem:
        reader.problems.add(reader.at(key), problem)
        return None
    return value


def _images(reader: Reader, image_hosts: frozenset[str]) -> tuple[Image, ...] | None:
    items = reader.array("images", max_items=limits.IMAGES_MAX)
    if items is None:
        return None
    images: list[Image] = []
    for path, item in items:
        sub = Reader(item, reader.problems, path, allowed=("url", "alt"))
        if not sub.valid:
            continue
        url = sub.text("url", max_len=4096, required=True)
        if url is not None and (problem := image_url_problem(url, image_hosts)):
            reader.problems.add(sub.at("url"), problem)
            url = None
        alt = sub.text("alt", max_len=limits.IMAGE_ALT_MAX) or ""
        if url is not None:
            images.append(Image(url=url, alt=alt))
    return tuple(images)


def _links(reader: Reader, current: Links) -> Links | None:
    value = reader.raw("links")
    if value is MISSING:
        return None
    if value is None:
        return Links()
    sub = reader.child("links", allowed=tuple(_LINK_FIELDS))
    if sub is None:
        return None
    changes: dict[str, str | None] = {}
    for wire, attr in _LINK_FIELDS.items():
        if sub.has(wire):
            changes[attr] = _url(sub, wire)
    return attrs.evolve(current, **changes)


def _content_changes(
    reader: Reader, image_hosts: frozenset[str], current_links: Links
) -> dict[str, object]:
    """Read the content fields present in ``reader`` into attribute changes."""
    problems = reader.problems
    changes: dict[str, object] = {}
    if reader.has("name"):
        changes["name"] = reader.text(
            "name", max_len=limits.NAME_MAX, min_len=1, trim=True, nullable=False, required=True
        )
    if reader.has("summary"):
        changes["summary"] = reader.text("summary", max_len=limits.SUMMARY_MAX, trim=True) or ""
    if reader.has("description"):
        changes["description"] = _description(reader, "description", limits.DESCRIPTION_MAX)
    if reader.has("tags"):
        changes["tags"] = _labels(reader, "tags", limits.TAGS_MAX, problems) or ()
    if reader.has("categories"):
        changes["categories"] = _labels(reader, "categories", limits.CATEGORIES_MAX, problems) or ()
    if reader.has("images"):
        changes["images"] = _images(reader, image_hosts) or ()
    if reader.has("links"):
        changes["links"] = _links(reader, current_links)
    return changes


_EMPTY_CONTENT: Final = ListingContent(
    name="", summary="", description="", tags=(), categories=(), images=(), links=Links()
)


def parse_new_listing(payload: object, image_hosts: frozenset[str]) -> NewListing:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("assetKind", *_CONTENT_FIELDS))
    asset_kind = reader.choice("assetKind", AssetKind, required=True)
    if reader.valid and not reader.has("name"):
        problems.add("name", "is required")
    changes = _content_changes(reader, image_hosts, Links())
    problems.raise_if_any()
    assert asset_kind is not None
    content = attrs.evolve(_EMPTY_CONTENT, **cast(dict[str, Any], changes))
    return NewListing(asset_kind=asset_kind, content=content)


def apply_listing_patch(
    listing: Listing, payload: object, image_hosts: frozenset[str], now_ms: int
) -> Listing:
    """The listing with the patch applied (same object when nothing changes).

    Patch semantics: absent fields are kept; ``null`` clears an optional
    field; ``links`` is patched field by field. ``assetKind``, ``status`` and
    ownership cannot be patched.
    """
    problems = Problems()
    reader = Reader(payload, problems, allowed=_CONTENT_FIELDS)
    changes = _content_changes(reader, image_hosts, listing.links)
    problems.raise_if_any()
    if "description" in changes:
        source = str(changes["description"])
        changes["description"] = (
            listing.description if source == listing.description.markdown else rendered(source)
        )
    patched = attrs.evolve(listing, **cast(dict[str, Any], changes))
    if patched == listing:
        return listing
    return attrs.evolve(patched, updated_at_ms=now_ms)


def parse_status_change(payload: object) -> ListingStatus:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("status",))
    status = reader.choice("status", ListingStatus, required=True)
    if status is ListingStatus.SUSPENDED:
        problems.add("status", "must be one of: draft, published, unlisted")
    problems.raise_if_any()
    assert status is not None
    return status


# --------------------------------------------------------------------------- releases


@attrs.frozen
class NewRelease:
    version: str
    refs: ReleaseRefs
    compat: Compat
    artifacts: tuple[Artifact, ...]
    notes: str


def _artifacts(reader: Reader) -> tuple[Artifact, ...]:
    items = reader.array("artifacts", max_items=limits.ARTIFACTS_MAX)
    artifacts: list[Artifact] = []
    for path, item in items or ():
        sub = Reader(
            item, reader.problems, path, allowed=("kind", "sha256", "sizeBytes", "download")
        )
        if not sub.valid:
            continue
        kind = sub.choice("kind", ArtifactKind, required=True)
        digest = sub.text("sha256", max_len=limits.SHA256_HEX_LENGTH, required=True)
        if digest is not None and not SHA256_PATTERN.fullmatch(digest):
            reader.problems.add(
                sub.at("sha256"), f"must be {limits.SHA256_HEX_LENGTH} hexadecimal characters"
            )
            digest = None
        size = sub.integer("sizeBytes", minimum=0, required=True)
        download = ArtifactDownload()
        dl = sub.child("download", allowed=("mode", "hint"))
        if dl is not None:
            mode = dl.choice("mode", ArtifactDownloadMode, required=True)
            hint = dl.text("hint", max_len=limits.ARTIFACT_HINT_MAX, multiline=True)
            download = ArtifactDownload(mode=mode or ArtifactDownloadMode.NONE, hint=hint)
        if kind is not None and digest is not None and size is not None:
            artifacts.append(
                Artifact(kind=kind, sha256=digest.lower(), size_bytes=size, download=download)
            )
    return tuple(artifacts)


def parse_new_release(payload: object, asset_kind: AssetKind) -> NewRelease:
    """A release for a listing of ``asset_kind`` (refs-by-kind rule, version rule).

    Raises ``UNSUPPORTED`` for ``fleetprompt_signed_url`` artifacts (ADR 0004)
    once the payload is otherwise valid.
    """
    problems = Problems()
    reader = Reader(payload, problems, allowed=("version", "refs", "compat", "artifacts", "notes"))
    version = reader.text(
        "version", max_len=limits.VERSION_MAX, min_len=1, required=True, nullable=False
    )
    if version is not None and not VERSION_PATTERN.fullmatch(version):
        problems.add("version", "may only contain letters, digits, '.', '+' and '-'")
    refs_reader = reader.child("refs", allowed=tuple(_REF_FIELDS), required=True)
    refs: dict[str, str | None] = {}
    if refs_reader is not None:
        for wire, attr in _REF_FIELDS.items():
            value = refs_reader.text(wire, max_len=limits.REF_MAX, min_len=1, trim=True)
            if value is not None and wire not in ALLOWED_REFS[asset_kind]:
                problems.add(
                    refs_reader.at(wire), f"does not belong to a {asset_kind.value} listing"
                )
            refs[attr] = value
        required_ref = REQUIRED_REF[asset_kind]
        if refs_reader.raw(required_ref) in (MISSING, None):
            problems.add(
                refs_reader.at(required_ref), f"is required for a {asset_kind.value} listing"
            )
    compat: dict[str, str | None] = {}
    compat_reader = reader.child("compat", allowed=tuple(_COMPAT_FIELDS))
    if compat_reader is not None:
        for wire, attr in _COMPAT_FIELDS.items():
            compat[attr] = compat_reader.text(wire, max_len=limits.COMPAT_MAX, min_len=1, trim=True)
    artifacts = _artifacts(reader)
    notes = _description(reader, "notes", limits.NOTES_MAX) or ""
    problems.raise_if_any()
    assert version is not None
    if any(a.download.mode is ArtifactDownloadMode.FLEETPROMPT_SIGNED_URL for a in artifacts):
        raise Unsupported(
            "FleetPrompt does not host artifacts; use mode none or specprompt_fulfillment.",
            hint="fleetprompt_signed_url is not offered in v1",
        )
    return NewRelease(
        version=version,
        refs=ReleaseRefs(**refs),
        compat=Compat(**compat),
        artifacts=artifacts,
        notes=notes,
    )


def parse_reason(payload: object, *, required: bool) -> str | None:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("reason",), required=False)
    reason = reader.text(
        "reason",
        max_len=limits.REASON_MAX,
        min_len=1 if required else 0,
        trim=True,
        required=required,
        multiline=True,
    )
    problems.raise_if_any()
    return reason or None


def parse_bare(payload: object) -> None:
    """A body that must be empty (``{}`` or absent)."""
    problems = Problems()
    Reader(payload, problems, allowed=(), required=False)
    problems.raise_if_any()


# --------------------------------------------------------------------------- profiles, admin


@attrs.frozen
class ProfileUpdate:
    display_name: str
    bio_markdown: str


def parse_profile_update(payload: object) -> ProfileUpdate:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("displayName", "bioMarkdown"))
    name = reader.text(
        "displayName",
        max_len=limits.DISPLAY_NAME_MAX,
        min_len=1,
        trim=True,
        required=True,
        nullable=False,
    )
    bio = reader.text("bioMarkdown", max_len=limits.BIO_MAX, multiline=True) or ""
    problems.raise_if_any()
    assert name is not None
    return ProfileUpdate(display_name=name, bio_markdown=bio)


@attrs.frozen
class RoleChange:
    grant: frozenset[Role]
    revoke: frozenset[Role]


def parse_role_change(payload: object) -> RoleChange:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("grant", "revoke"))
    sets: dict[str, set[Role]] = {"grant": set(), "revoke": set()}
    for key, roles in sets.items():
        for path, item in reader.array(key, max_items=len(Role)) or ():
            role = check_choice(item, path, problems, Role, required=True)
            if role is not None:
                roles.add(role)
    if reader.valid and not (reader.has("grant") or reader.has("revoke")):
        problems.add("grant", "grant or revoke at least one role")
    for role in sets["grant"] & sets["revoke"]:
        problems.add("revoke", f"{role.value} cannot be granted and revoked at once")
    problems.raise_if_any()
    return RoleChange(grant=frozenset(sets["grant"]), revoke=frozenset(sets["revoke"]))


def parse_verification(payload: object) -> tuple[VerificationStatus, str | None]:
    problems = Problems()
    reader = Reader(payload, problems, allowed=("status", "reason"))
    status = reader.choice("status", VerificationStatus, required=True)
    reason = reader.text("reason", max_len=limits.REASON_MAX, trim=True, multiline=True)
    problems.raise_if_any()
    assert status is not None
    return status, reason or None


# --------------------------------------------------------------------------- installs


@attrs.frozen
class NewIntent:
    listing_id: str
    release_id: str | None
    target_system: InstallTargetSystem
    target_context: TargetContext


def parse_new_intent(payload: object) -> NewIntent:
    problems = Problems()
    reader = Reader(
        payload, problems, allowed=("listingId", "releaseId", "targetSystem", "targetContext")
    )
    listing_id = reader.text("listingId", max_len=limits.REF_MAX, min_len=1, required=True)
    release_id = reader.text("releaseId", max_len=limits.REF_MAX, min_len=1)
    target = reader.choice("targetSystem", InstallTargetSystem, required=True)
    context: dict[str, str | None] = {}
    ctx_reader = reader.child("targetContext", allowed=tuple(_CONTEXT_FIELDS))
    if ctx_reader is not None:
        for wire, attr in _CONTEXT_FIELDS.items():
            context[attr] = ctx_reader.text(
                wire, max_len=limits.TARGET_CONTEXT_MAX, min_len=1, trim=True
            )
    problems.raise_if_any()
    assert listing_id is not None
    assert target is not None
    return NewIntent(listing_id, release_id, target, TargetContext(**context))


def parse_token_request(payload: object) -> int:
    """The requested token TTL in ms (default 15 min)."""
    problems = Problems()
    reader = Reader(payload, problems, allowed=("ttlMs",), required=False)
    ttl = reader.integer("ttlMs", minimum=limits.TOKEN_TTL_MIN_MS, maximum=limits.TOKEN_TTL_MAX_MS)
    problems.raise_if_any()
    return ttl if ttl is not None else limits.TOKEN_TTL_DEFAULT_MS


# --------------------------------------------------------------------------- credentials


@attrs.frozen
class NewApiToken:
    name: str
    expires_in_days: int | None


def parse_api_token_request(payload: object) -> NewApiToken:
    """A personal API token's ``name`` (default ``"default"``) and ``expiresInDays``
    (absent ⇒ no expiry)."""
    problems = Problems()
    reader = Reader(payload, problems, allowed=("name", "expiresInDays"), required=False)
    name = reader.text(
        "name", max_len=limits.API_TOKEN_NAME_MAX, min_len=1, trim=True, nullable=True
    )
    days = reader.integer(
        "expiresInDays",
        minimum=limits.API_TOKEN_EXPIRY_DAYS_MIN,
        maximum=limits.API_TOKEN_EXPIRY_DAYS_MAX,
    )
    problems.raise_if_any()
    return NewApiToken(name if name is not None else limits.API_TOKEN_NAME_DEFAULT, days)


# --------------------------------------------------------------------------- queries


def parse_limit(value: object, problems: Problems) -> int:
    if value is None or value is MISSING:
        return DEFAULT_LIMIT
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        number = int(value)
    if number is None or not 1 <= number <= MAX_LIMIT:
        problems.add("limit", f"must be an integer between 1 and {MAX_LIMIT}")
        return DEFAULT_LIMIT
    return number


def parse_cursor(value: object, problems: Problems) -> str | None:
    if value is None or value is MISSING:
        return None
    if not isinstance(value, str) or not value:
        problems.add("cursor", "The cursor is malformed or does not belong to this query.")
        return None
    return value


def parse_flag(value: object, name: str, problems: Problems) -> bool:
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    problems.add(name, "must be true or false")
    return False


@attrs.frozen
class SearchRequest:
    terms: tuple[str, ...]
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    asset_kind: AssetKind | None
    verified: bool
    sort: SearchSort
    cursor: str | None
    limit: int


def _label_filter(value: object, name: str, max_items: int, problems: Problems) -> tuple[str, ...]:
    """Repeated values or one comma-separated string, normalised like stored labels."""
    if value is None or value is MISSING:
        return ()
    raw: list[object]
    if isinstance(value, str):
        raw = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        raw = list(value)
    else:
        problems.add(name, "must be a list of strings")
        return ()
    if len(raw) > max_items:
        problems.add(name, f"must have at most {max_items} items")
        return ()
    labels: dict[str, None] = {}
    for index, item in enumerate(raw):
        label = check_text(
            item,
            f"{name}[{index}]",
            problems,
            max_len=limits.LABEL_MAX,
            min_len=1,
            trim=True,
            nullable=False,
            required=True,
        )
        if label is not None and (
            normalized := _normalized_label(label, f"{name}[{index}]", problems)
        ):
            labels.setdefault(normalized, None)
    return tuple(labels)


_SEARCH_PARAMS: Final = (
    "q",
    "tags",
    "categories",
    "assetKind",
    "verified",
    "sort",
    "cursor",
    "limit",
)


def parse_search(params: Mapping[str, object]) -> SearchRequest:
    problems = Problems()
    Reader(params, problems, allowed=_SEARCH_PARAMS)
    q = check_text(params.get("q"), "q", problems, max_len=limits.QUERY_MAX, trim=True)
    asset_kind = check_choice(params.get("assetKind"), "assetKind", problems, AssetKind)
    sort = check_choice(params.get("sort"), "sort", problems, SearchSort)
    terms = search_terms(q) if q else ()
    if sort is None:
        sort = SearchSort.RELEVANCE if terms else SearchSort.UPDATED
    request = SearchRequest(
        terms=terms,
        tags=_label_filter(params.get("tags"), "tags", limits.TAGS_MAX, problems),
        categories=_label_filter(
            params.get("categories"), "categories", limits.CATEGORIES_MAX, problems
        ),
        asset_kind=asset_kind,
        verified=parse_flag(params.get("verified"), "verified", problems),
        sort=sort,
        cursor=parse_cursor(params.get("cursor"), problems),
        limit=parse_limit(params.get("limit"), problems),
    )
    problems.raise_if_any()
    return request
