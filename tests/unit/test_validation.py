"""Input validation (U-VAL-01..07): bounds, URLs, versions, refs by kind, labels, all-at-once.

The parsers of ``fleetprompt_core.commands.parsers`` are exercised directly and,
for a few representative cases, through the use cases (which must reject the
input with ``VALIDATION_FAILED`` and store nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from fleetprompt_core import CoreSettings
from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import ArtifactDownloadMode, AssetKind, ListingStatus
from fleetprompt_core.base.errors import (
    DomainError,
    ErrorCode,
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.commands.parsers import (
    apply_listing_patch,
    parse_new_intent,
    parse_new_listing,
    parse_new_release,
    parse_profile_update,
    parse_reason,
    parse_token_request,
    parse_verification,
)
from fleetprompt_core.domain.model import Links, Listing
from support import IMAGE_HOST, Market, listing_payload, new_key, release_payload

HOSTS = frozenset({IMAGE_HOST})
IMAGE_URL = f"https://{IMAGE_HOST}/shot.png"
NOW = 1_767_225_600_000


def field_names(error: DomainError) -> list[str]:
    return [field.field_name for field in error.fields]


def rejects(fn: Callable[[], object]) -> list[str]:
    """The field names of the ``VALIDATION_FAILED`` that ``fn`` raises."""
    with pytest.raises(ValidationFailed) as info:
        fn()
    assert info.value.code is ErrorCode.VALIDATION_FAILED
    assert info.value.fields, "VALIDATION_FAILED always lists its fields"
    return field_names(info.value)


def new_listing(**overrides: Any) -> Any:
    return parse_new_listing(listing_payload(**overrides), HOSTS)


def new_release(kind: AssetKind = AssetKind.WHS_AGENT, **overrides: Any) -> Any:
    return parse_new_release(release_payload(**overrides), kind)


def image(alt: str = "shot", url: str = IMAGE_URL) -> dict[str, str]:
    return {"url": url, "alt": alt}


def artifact(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "manifest",
        "sha256": "a" * 64,
        "sizeBytes": 10,
        "download": {"mode": "none"},
    }
    item.update(overrides)
    return item


# --------------------------------------------------------------------------- U-VAL-01


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        pytest.param("a", "a", id="1-char"),
        pytest.param("n" * 80, "n" * 80, id="80-chars"),
        pytest.param("  " + "n" * 80 + "\u3000 ", "n" * 80, id="80-after-trim"),
        pytest.param(" Triage ", "Triage", id="trimmed"),
        pytest.param("é" * 80, "é" * 80, id="80-unicode-chars"),
    ],
)
def test_u_val_01_name_within_bounds_is_trimmed_and_kept(name: str, stored: str) -> None:
    """A listing name of 1..80 characters after trimming is accepted and stored trimmed."""
    assert new_listing(name=name).content.name == stored


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces-only"),
        pytest.param("\t", id="tab-only"),
        pytest.param(" \u3000\u2003 ", id="unicode-spaces-only"),
        pytest.param("n" * 81, id="81-chars"),
        pytest.param(" " + "n" * 81 + " ", id="81-after-trim"),
        pytest.param(None, id="null"),
        pytest.param(12, id="number"),
    ],
)
def test_u_val_01_name_out_of_bounds_fails_on_name(name: object) -> None:
    """Names of 0 or 81 chars after trimming, blank, null or non-text fail on ``name``."""
    assert rejects(lambda: new_listing(name=name)) == ["name"]


def test_u_val_01_missing_name_fails_on_name() -> None:
    """A new listing without a name is rejected on ``name``."""
    payload = listing_payload()
    del payload["name"]
    assert rejects(lambda: parse_new_listing(payload, HOSTS)) == ["name"]


def _artifact_hint(value: str) -> Any:
    return new_release(artifacts=[artifact(download={"mode": "none", "hint": value})])


#: (id, maximum, parse(value) -> result, read(result) -> the stored text, wire field path)
TEXT_BOUNDS: list[tuple[str, int, Callable[[str], Any], Callable[[Any], str], str]] = [
    (
        "summary",
        limits.SUMMARY_MAX,
        lambda v: new_listing(summary=v),
        lambda r: r.content.summary,
        "summary",
    ),
    (
        "description",
        limits.DESCRIPTION_MAX,
        lambda v: new_listing(description={"format": "markdown", "markdown": v}),
        lambda r: r.content.description,
        "description.markdown",
    ),
    (
        "alt",
        limits.IMAGE_ALT_MAX,
        lambda v: new_listing(images=[image(alt=v)]),
        lambda r: r.content.images[0].alt,
        "images[0].alt",
    ),
    (
        "bio",
        limits.BIO_MAX,
        lambda v: parse_profile_update({"displayName": "Pub", "bioMarkdown": v}),
        lambda r: r.bio_markdown,
        "bioMarkdown",
    ),
    (
        "display-name",
        limits.DISPLAY_NAME_MAX,
        lambda v: parse_profile_update({"displayName": v}),
        lambda r: r.display_name,
        "displayName",
    ),
    (
        "notes",
        limits.NOTES_MAX,
        lambda v: new_release(notes={"markdown": v}),
        lambda r: r.notes,
        "notes.markdown",
    ),
    (
        "revoke-reason",
        limits.REASON_MAX,
        lambda v: parse_reason({"reason": v}, required=False),
        lambda r: r,
        "reason",
    ),
    (
        "suspend-reason",
        limits.REASON_MAX,
        lambda v: parse_reason({"reason": v}, required=True),
        lambda r: r,
        "reason",
    ),
    (
        "verification-reason",
        limits.REASON_MAX,
        lambda v: parse_verification({"status": "verified", "reason": v}),
        lambda r: r[1],
        "reason",
    ),
    (
        "ref",
        limits.REF_MAX,
        lambda v: new_release(refs={"whsAgentId": v}),
        lambda r: r.refs.whs_agent_id,
        "refs.whsAgentId",
    ),
    (
        "compat",
        limits.COMPAT_MAX,
        lambda v: new_release(compat={"minAgentelicVersion": v}),
        lambda r: r.compat.min_agentelic_version,
        "compat.minAgentelicVersion",
    ),
    (
        "artifact-hint",
        limits.ARTIFACT_HINT_MAX,
        _artifact_hint,
        lambda r: r.artifacts[0].download.hint,
        "artifacts[0].download.hint",
    ),
    (
        "target-context",
        limits.TARGET_CONTEXT_MAX,
        lambda v: parse_new_intent(
            {"listingId": "lst_1", "targetSystem": "whs", "targetContext": {"roomId": v}}
        ),
        lambda r: r.target_context.room_id,
        "targetContext.roomId",
    ),
]


@pytest.mark.parametrize(
    ("maximum", "parse", "read", "path"),
    [pytest.param(*row[1:], id=row[0]) for row in TEXT_BOUNDS],
)
def test_u_val_01_text_at_its_maximum_is_accepted(
    maximum: int, parse: Callable[[str], Any], read: Callable[[Any], str], path: str
) -> None:
    """Every bounded text field accepts exactly its maximum length and keeps the value."""
    value = "x" * maximum
    assert read(parse(value)) == value
    assert len(value) == maximum


@pytest.mark.parametrize(
    ("maximum", "parse", "read", "path"),
    [pytest.param(*row[1:], id=row[0]) for row in TEXT_BOUNDS],
)
def test_u_val_01_text_one_over_its_maximum_fails_on_its_field(
    maximum: int, parse: Callable[[str], Any], read: Callable[[Any], str], path: str
) -> None:
    """Every bounded text field rejects maximum + 1 characters, naming exactly that field."""
    assert rejects(lambda: parse("x" * (maximum + 1))) == [path]


def test_u_val_01_empty_optional_texts_are_accepted() -> None:
    """Summary, description, notes and bio may be empty (lower bound 0)."""
    listing = new_listing(summary="", description={"format": "markdown", "markdown": ""})
    assert (listing.content.summary, listing.content.description) == ("", "")
    assert new_release(notes={"markdown": ""}).notes == ""
    assert parse_profile_update({"displayName": "P", "bioMarkdown": ""}).bio_markdown == ""


def test_u_val_01_required_reason_must_not_be_blank() -> None:
    """A suspension reason is required: absent, empty or blank fails on ``reason``."""
    assert rejects(lambda: parse_reason({}, required=True)) == ["reason"]
    assert rejects(lambda: parse_reason({"reason": "  "}, required=True)) == ["reason"]
    assert parse_reason({"reason": "  spam  "}, required=True) == "spam"
    assert parse_reason(None, required=False) is None


def test_u_val_01_use_case_rejects_long_name_and_stores_nothing(market: Market) -> None:
    """create_listing with an 81-char name fails on ``name`` and stores nothing."""
    pub = market.publisher()
    audit_before = len(market.store.audit)
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.create_listing(
            pub, listing_payload(name="n" * 81), idempotency_key=new_key()
        )
    assert field_names(info.value) == ["name"]
    assert market.store.listings == {}
    assert market.store.idempotency == {}
    assert len(market.store.audit) == audit_before


def test_u_val_01_use_case_rejects_long_bio_and_long_revoke_reason(market: Market) -> None:
    """profiles.put (bio 5 001) and revoke_release (reason 1 001) fail on their fields."""
    pub = market.publisher()
    with pytest.raises(ValidationFailed) as info:
        market.fp.profiles.put(pub, {"displayName": "P", "bioMarkdown": "b" * 5_001})
    assert field_names(info.value) == ["bioMarkdown"]
    assert market.store.profiles == {}
    view = market.draft(pub)
    release = market.release(pub, view.listing.listing_id)
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.revoke_release(
            pub, release.release_id, {"reason": "r" * 1_001}, idempotency_key=new_key()
        )
    assert field_names(info.value) == ["reason"]
    assert market.store.releases[release.release_id].status.value == "published"


# --------------------------------------------------------------------------- U-VAL-02


BAD_LINKS = [
    pytest.param("http://docs.example.com/", id="http"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:text/html,<b>x</b>", id="data"),
    pytest.param("vbscript:msgbox(1)", id="vbscript"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("//docs.example.com/x", id="protocol-relative"),
    pytest.param("https://user:pass@docs.example.com/", id="credentials"),
    pytest.param("https://", id="no-host"),
    pytest.param("https://docs.example.com/a b", id="whitespace"),
    pytest.param("https://docs.example.com/" + "a" * 2_048, id="too-long"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("url", BAD_LINKS)
@pytest.mark.parametrize("key", ["docsUrl", "repoUrl"])
def test_u_val_02_bad_link_url_fails_on_its_link_field(key: str, url: str) -> None:
    """A link URL breaking the URL policy fails on ``links.docsUrl`` / ``links.repoUrl`` only."""
    assert rejects(lambda: new_listing(links={key: url})) == [f"links.{key}"]


def test_u_val_02_good_link_urls_are_kept() -> None:
    """https links with a host are accepted as given; a null link is simply absent."""
    links = new_listing(
        links={"docsUrl": "https://docs.example.com/a?b=c#d", "repoUrl": None}
    ).content.links
    assert links == Links(docs_url="https://docs.example.com/a?b=c#d", repo_url=None)


def test_u_val_02_link_url_must_be_text() -> None:
    """A non-string link fails on its field; an unknown link key fails on ``links.<key>``."""
    assert rejects(lambda: new_listing(links={"docsUrl": 5})) == ["links.docsUrl"]
    assert rejects(lambda: new_listing(links={"homepage": "https://x.example/"})) == [
        "links.homepage"
    ]
    assert rejects(lambda: new_listing(links="https://x.example/")) == ["links"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://evil.example.com/shot.png", id="host-not-allowed"),
        pytest.param(f"https://{IMAGE_HOST}/logo.svg", id="svg"),
        pytest.param(f"http://{IMAGE_HOST}/shot.png", id="http"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param(f"https://u:p@{IMAGE_HOST}/shot.png", id="credentials"),
    ],
)
def test_u_val_02_bad_image_url_fails_on_its_index(url: str) -> None:
    """The second image with a disallowed URL fails on ``images[1].url``; the first is fine."""
    images = [image(), image(url=url)]
    assert rejects(lambda: new_listing(images=images)) == ["images[1].url"]


def test_u_val_02_images_need_an_allowlisted_host() -> None:
    """With an empty allowlist every image is rejected; with the host listed it is kept."""
    payload = listing_payload(images=[image()])
    assert rejects(lambda: parse_new_listing(payload, frozenset())) == ["images[0].url"]
    assert parse_new_listing(payload, HOSTS).content.images[0].url == IMAGE_URL


def test_u_val_02_image_url_is_required() -> None:
    """An image without ``url`` fails on ``images[0].url``; a missing alt becomes empty."""
    assert rejects(lambda: new_listing(images=[{"alt": "x"}])) == ["images[0].url"]
    assert new_listing(images=[{"url": IMAGE_URL}]).content.images[0].alt == ""


def test_u_val_02_use_case_without_image_hosts_rejects_images() -> None:
    """A market configured without image hosts answers VALIDATION_FAILED on ``images[0].url``."""
    market = Market.create(settings=CoreSettings(image_hosts=frozenset()))
    pub = market.publisher()
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.create_listing(pub, listing_payload(), idempotency_key=new_key())
    assert field_names(info.value) == ["images[0].url"]
    assert market.store.listings == {}


def test_u_val_02_use_case_patch_with_bad_docs_url_changes_nothing(market: Market) -> None:
    """A patch with a javascript: ``links.docsUrl`` fails on that field; listing unchanged."""
    pub = market.publisher()
    listing = market.draft(pub).listing
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.update_listing(
            pub, listing.listing_id, {"links": {"docsUrl": "javascript:alert(1)"}}
        )
    assert field_names(info.value) == ["links.docsUrl"]
    assert market.store.listings[listing.listing_id] == listing


# --------------------------------------------------------------------------- U-VAL-03


@pytest.mark.parametrize(
    "version",
    [
        "1",
        "1.0.0",
        "0.0.1",
        "10.20.30",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-rc.1+build.5",
        "1.0.0+20130313144700",
        "2.0.0-x.7.z.92",
        "v1.2.3",
        "A" * 64,
        "1.2.3-" + "9" * 58,
    ],
)
def test_u_val_03_valid_versions_are_accepted(version: str) -> None:
    """1..64 characters of ``[0-9A-Za-z.+-]`` (semver and more) are accepted unchanged."""
    assert new_release(version=version).version == version


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("", id="empty"),
        pytest.param("1.0 .0", id="space"),
        pytest.param(" 1.0.0", id="leading-space"),
        pytest.param("1.0.0 ", id="trailing-space"),
        pytest.param("1.0/0", id="slash"),
        pytest.param("1_0_0", id="underscore"),
        pytest.param("1.0.0é", id="unicode-letter"),
        pytest.param("١.٢.٣", id="unicode-digits"),
        pytest.param("１.０", id="fullwidth-digits"),
        pytest.param("1.0.0\n", id="newline"),
        pytest.param("1.0\x00", id="nul"),
        pytest.param("1" * 65, id="65-chars"),
        pytest.param("1.0.0;rm", id="semicolon"),
        pytest.param(None, id="null"),
        pytest.param(1, id="number"),
    ],
)
def test_u_val_03_invalid_versions_fail_on_version(version: object) -> None:
    """Empty, 65 characters, or any character outside ``[0-9A-Za-z.+-]`` fails on ``version``."""
    assert rejects(lambda: new_release(version=version)) == ["version"]


def test_u_val_03_missing_version_fails_on_version() -> None:
    """A release without a version is rejected on ``version``."""
    payload = release_payload()
    del payload["version"]
    assert rejects(lambda: parse_new_release(payload, AssetKind.WHS_AGENT)) == ["version"]


# --------------------------------------------------------------------------- U-VAL-04

ALL_REFS = ("whsAgentId", "whsDeploymentId", "agentromaticWorkflowId", "specAssetId")
REQUIRED = {
    AssetKind.WHS_AGENT: "whsAgentId",
    AssetKind.AGENTROMATIC_WORKFLOW: "agentromaticWorkflowId",
    AssetKind.SPEC_ASSET: "specAssetId",
}
PERMITTED = {
    AssetKind.WHS_AGENT: {"whsAgentId", "whsDeploymentId"},
    AssetKind.AGENTROMATIC_WORKFLOW: {"agentromaticWorkflowId"},
    AssetKind.SPEC_ASSET: {"specAssetId"},
}
SNAKE = {
    "whsAgentId": "whs_agent_id",
    "whsDeploymentId": "whs_deployment_id",
    "agentromaticWorkflowId": "agentromatic_workflow_id",
    "specAssetId": "spec_asset_id",
}


@pytest.mark.parametrize("kind", list(AssetKind))
def test_u_val_04_each_kind_accepts_its_required_ref(kind: AssetKind) -> None:
    """Each asset kind accepts its own ref (trimmed) and leaves the other refs empty."""
    ref = REQUIRED[kind]
    refs = new_release(kind, refs={ref: "  up-1  "}).refs
    assert getattr(refs, SNAKE[ref]) == "up-1"
    assert [getattr(refs, SNAKE[other]) for other in ALL_REFS if other != ref] == [None] * 3


def test_u_val_04_whs_deployment_hint_is_allowed_next_to_whs_agent() -> None:
    """A whs_agent release may carry the ``whsDeploymentId`` hint."""
    refs = new_release(refs={"whsAgentId": "a", "whsDeploymentId": "d"}).refs
    assert (refs.whs_agent_id, refs.whs_deployment_id) == ("a", "d")


@pytest.mark.parametrize("kind", list(AssetKind))
@pytest.mark.parametrize(
    "required_value",
    [
        pytest.param(None, id="null"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param(7, id="number"),
        pytest.param("r" * 201, id="201-chars"),
    ],
)
def test_u_val_04_required_ref_missing_null_or_invalid_fails(
    kind: AssetKind, required_value: object
) -> None:
    """A null, empty, blank, non-text or too long required ref fails on ``refs.<ref>``."""
    ref = REQUIRED[kind]
    assert rejects(lambda: new_release(kind, refs={ref: required_value})) == [f"refs.{ref}"]


@pytest.mark.parametrize("kind", list(AssetKind))
def test_u_val_04_required_ref_absent_fails(kind: AssetKind) -> None:
    """Empty refs fail on the kind's required ref; missing refs fail on ``refs``."""
    assert rejects(lambda: new_release(kind, refs={})) == [f"refs.{REQUIRED[kind]}"]
    payload = release_payload()
    del payload["refs"]
    assert rejects(lambda: parse_new_release(payload, kind)) == ["refs"]
    assert rejects(lambda: new_release(kind, refs=None)) == ["refs"]


@pytest.mark.parametrize(
    ("kind", "foreign"),
    [
        pytest.param(kind, ref, id=f"{kind.value}-{ref}")
        for kind in AssetKind
        for ref in ALL_REFS
        if ref not in PERMITTED[kind]
    ],
)
def test_u_val_04_refs_of_other_kinds_are_rejected(kind: AssetKind, foreign: str) -> None:
    """A ref that does not belong to the kind fails on exactly ``refs.<thatRef>``."""
    refs = {REQUIRED[kind]: "mine", foreign: "theirs"}
    assert rejects(lambda: new_release(kind, refs=refs)) == [f"refs.{foreign}"]


def test_u_val_04_unknown_ref_key_is_rejected() -> None:
    """A ref key outside the contract fails on ``refs.<key>``."""
    refs = {"whsAgentId": "a", "githubRepo": "x"}
    assert rejects(lambda: new_release(refs=refs)) == ["refs.githubRepo"]


def test_u_val_04_use_case_checks_refs_against_the_listing_kind(market: Market) -> None:
    """publish_release on a spec_asset listing rejects whs refs and stores no release."""
    pub = market.publisher()
    listing_id = market.draft(pub, assetKind="spec_asset").listing.listing_id
    with pytest.raises(ValidationFailed) as info:
        market.release(pub, listing_id)  # the default payload carries whs refs
    assert sorted(field_names(info.value)) == [
        "refs.specAssetId",
        "refs.whsAgentId",
        "refs.whsDeploymentId",
    ]
    assert market.store.releases == {}
    release = market.fp.publishing.publish_release(
        pub,
        listing_id,
        release_payload(refs={"specAssetId": "spec-1"}),
        idempotency_key=new_key(),
    ).value
    assert release.refs.spec_asset_id == "spec-1"


# --------------------------------------------------------------------------- U-VAL-05


def test_u_val_05_labels_are_trimmed_lowercased_deduplicated_in_order() -> None:
    """Tags and categories are trimmed, lower-cased and de-duplicated, first seen first."""
    content = new_listing(
        tags=[" Support ", "support", "TRIAGE", "b", "Triage", "SUPPORT", "a"],
        categories=["Ops", " ops", "OPS ", "Dev"],
    ).content
    assert content.tags == ("support", "triage", "b", "a")
    assert content.categories == ("ops", "dev")


@pytest.mark.parametrize(
    ("key", "maximum"), [("tags", limits.TAGS_MAX), ("categories", limits.CATEGORIES_MAX)]
)
def test_u_val_05_label_count_bounds(key: str, maximum: int) -> None:
    """≤ 20 tags and ≤ 10 categories are accepted; one more fails on the list field."""
    labels = [f"l{i}" for i in range(maximum)]
    assert getattr(new_listing(**{key: labels}).content, key) == tuple(labels)
    assert rejects(lambda: new_listing(**{key: [*labels, "extra"]})) == [key]


@pytest.mark.parametrize("key", ["tags", "categories"])
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("t" * 33, id="33-chars"),
        pytest.param(None, id="null"),
        pytest.param(3, id="number"),
        pytest.param(["x"], id="list"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\nb", id="newline"),
    ],
)
def test_u_val_05_bad_label_fails_on_its_index(key: str, bad: object) -> None:
    """A label that is not 1..32 characters of text fails on ``tags[3]`` (its own index)."""
    labels = ["a", "b", "c", bad, "e"]
    assert rejects(lambda: new_listing(**{key: labels})) == [f"{key}[3]"]


def test_u_val_05_label_bounds_are_after_trimming() -> None:
    """32 characters (after trimming) are accepted."""
    assert new_listing(tags=["  " + "T" * 32 + "  "]).content.tags == ("t" * 32,)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("accepted", fn())
    except ValidationFailed as error:
        return ("rejected", field_names(error))


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("İ" * 17, id="dotted-capital-i-17"),
        pytest.param("İ" * 32, id="dotted-capital-i-32"),
    ],
)
def test_u_val_05_normalized_labels_stay_within_32_chars(label: str) -> None:
    """A tag whose lower-case form grows (U+0130 ⇒ 2 chars) is rejected or stored ≤ 32 chars."""
    status, value = _outcome(lambda: new_listing(tags=[label]).content.tags)
    if status == "rejected":
        assert value == ["tags[0]"]
    else:
        assert [len(tag) <= limits.LABEL_MAX for tag in value] == [True], value


def test_u_val_05_labels_must_be_a_list() -> None:
    """A string where a list belongs fails on ``tags``; null tags mean none."""
    assert rejects(lambda: new_listing(tags="a,b")) == ["tags"]
    assert new_listing(tags=None).content.tags == ()


def test_u_val_05_use_case_stores_normalized_labels(market: Market) -> None:
    """create_listing stores normalized tags; a patch normalizes too."""
    pub = market.publisher()
    listing = market.draft(pub, tags=["B", " a ", "b"], categories=["X"]).listing
    assert market.store.listings[listing.listing_id].tags == ("b", "a")
    market.fp.publishing.update_listing(pub, listing.listing_id, {"tags": ["Z ", "z", "Y"]})
    assert market.store.listings[listing.listing_id].tags == ("z", "y")


# --------------------------------------------------------------------------- U-VAL-06


def _five_errors() -> dict[str, Any]:
    return listing_payload(
        name="   ",
        summary="s" * 241,
        tags=["a", "b", "c", "t" * 33],
        links={"docsUrl": "http://docs.example.com/"},
        images=[image(), image(url="https://evil.example.com/x.png")],
    )


FIVE_FIELDS = ["name", "summary", "tags[3]", "images[1].url", "links.docsUrl"]


def test_u_val_06_every_failing_field_is_reported_at_once() -> None:
    """A payload with five distinct errors yields exactly those five field names."""
    fields = rejects(lambda: parse_new_listing(_five_errors(), HOSTS))
    assert sorted(fields) == sorted(FIVE_FIELDS)
    assert len(fields) == 5


def test_u_val_06_release_errors_are_all_reported() -> None:
    """A release with five errors (version, refs, compat, sha256, unknown) lists all five."""
    payload = release_payload(
        version="1 0",
        refs={"whsAgentId": "a", "specAssetId": "s"},
        compat={"minWHSVersion": "9" * 65},
        artifacts=[artifact(sha256="xyz")],
        bogus=True,
    )
    fields = rejects(lambda: parse_new_release(payload, AssetKind.WHS_AGENT))
    assert sorted(fields) == sorted(
        ["version", "refs.specAssetId", "compat.minWHSVersion", "artifacts[0].sha256", "bogus"]
    )


def test_u_val_06_use_case_reports_all_fields_and_stores_nothing(market: Market) -> None:
    """create_listing raises one VALIDATION_FAILED listing the five fields and stores nothing."""
    pub = market.publisher()
    audit_before = list(market.store.audit)
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.create_listing(pub, _five_errors(), idempotency_key=new_key())
    assert sorted(field_names(info.value)) == sorted(FIVE_FIELDS)
    assert market.store.listings == {}
    assert market.store.idempotency == {}
    assert market.store.audit == audit_before


# --------------------------------------------------------------------------- U-VAL-07


def test_u_val_07_images_at_most_ten() -> None:
    """Ten images are accepted; eleven fail on ``images``."""
    assert len(new_listing(images=[image(alt=str(i)) for i in range(10)]).content.images) == 10
    assert rejects(lambda: new_listing(images=[image()] * 11)) == ["images"]


def test_u_val_07_artifacts_at_most_twenty() -> None:
    """Twenty artifacts are accepted; twenty-one fail on ``artifacts``."""
    assert len(new_release(artifacts=[artifact()] * 20).artifacts) == 20
    assert rejects(lambda: new_release(artifacts=[artifact()] * 21)) == ["artifacts"]


def test_u_val_07_sha256_is_64_hex_normalized_to_lower_case() -> None:
    """An upper-case 64-hex digest is stored lower-cased."""
    digest = "ABCDEF0123456789" * 4
    assert new_release(artifacts=[artifact(sha256=digest)]).artifacts[0].sha256 == digest.lower()


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("a" * 63, id="63"),
        pytest.param("a" * 65, id="65"),
        pytest.param("g" * 64, id="non-hex"),
        pytest.param("a" * 62 + " a", id="space"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
        pytest.param(12, id="number"),
    ],
)
def test_u_val_07_bad_sha256_fails_on_its_path(digest: object) -> None:
    """Anything but 64 hexadecimal characters fails on ``artifacts[0].sha256``."""
    assert rejects(lambda: new_release(artifacts=[artifact(sha256=digest)])) == [
        "artifacts[0].sha256"
    ]


@pytest.mark.parametrize("size", [0, 1, 2**53 - 1])
def test_u_val_07_size_bytes_accepts_non_negative_integers(size: int) -> None:
    """``sizeBytes`` of 0, 1 and 2**53-1 are accepted."""
    assert new_release(artifacts=[artifact(sizeBytes=size)]).artifacts[0].size_bytes == size


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(-1, id="negative"),
        pytest.param(1.5, id="float"),
        pytest.param(1.0, id="integral-float"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param("10", id="string"),
        pytest.param(None, id="null"),
        pytest.param(2**53, id="beyond-2**53"),
    ],
)
def test_u_val_07_bad_size_bytes_fails_on_its_index(size: object) -> None:
    """Negative, non-integer (bool too), null or huge ``sizeBytes`` fails on its own path."""
    items = [artifact(), artifact(sizeBytes=size)]
    assert rejects(lambda: new_release(artifacts=items)) == ["artifacts[1].sizeBytes"]


def test_u_val_07_artifact_kind_and_mode_are_enums() -> None:
    """Unknown artifact kind and download mode fail on their paths; the mode is required."""
    items = [artifact(kind="tarball"), artifact(download={"mode": "ftp"}), artifact(download={})]
    assert rejects(lambda: new_release(artifacts=items)) == [
        "artifacts[0].kind",
        "artifacts[1].download.mode",
        "artifacts[2].download.mode",
    ]


@pytest.mark.parametrize(
    ("payload", "ttl"),
    [
        (None, 900_000),
        ({}, 900_000),
        ({"ttlMs": None}, 900_000),
        ({"ttlMs": 60_000}, 60_000),
        ({"ttlMs": 3_600_000}, 3_600_000),
        ({"ttlMs": 120_000}, 120_000),
    ],
)
def test_u_val_07_token_ttl_accepted(payload: object, ttl: int) -> None:
    """Token TTL defaults to 15 min and accepts 60 000..3 600 000 ms."""
    assert parse_token_request(payload) == ttl


@pytest.mark.parametrize("ttl", [59_999, 3_600_001, 0, -60_000, 60_000.0, True, "60000"])
def test_u_val_07_token_ttl_out_of_range_fails_on_ttl(ttl: object) -> None:
    """TTL 59 999, 3 600 001, non-integers and booleans fail on ``ttlMs``."""
    assert rejects(lambda: parse_token_request({"ttlMs": ttl})) == ["ttlMs"]


def test_u_val_07_token_ttl_rejected_by_use_case(market: Market) -> None:
    """issue_token with ttlMs 59 999 answers VALIDATION_FAILED and issues no token."""
    pub, buyer = market.publisher(), market.user("buyer")
    view, _ = market.published(pub)
    intent = market.intent(buyer, view.listing.listing_id)
    for ttl in (59_999, 3_600_001):
        with pytest.raises(ValidationFailed) as info:
            market.token(buyer, intent.install_intent_id, ttl_ms=ttl)
        assert field_names(info.value) == ["ttlMs"]
    assert market.store.tokens == {}
    assert market.store.intents[intent.install_intent_id].status.value == "created"


@pytest.mark.parametrize(
    ("parse", "path"),
    [
        pytest.param(lambda: new_listing(website="https://x.example/"), "website", id="listing"),
        pytest.param(lambda: new_listing(status="published"), "status", id="listing-status"),
        pytest.param(
            lambda: new_listing(description={"markdown": "x", "html": "<b>"}),
            "description.html",
            id="description",
        ),
        pytest.param(
            lambda: new_listing(images=[{"url": IMAGE_URL, "width": 3}]),
            "images[0].width",
            id="image",
        ),
        pytest.param(lambda: new_release(extra=1), "extra", id="release"),
        pytest.param(
            lambda: new_release(compat={"minFooVersion": "1"}), "compat.minFooVersion", id="compat"
        ),
        pytest.param(
            lambda: new_release(artifacts=[artifact(url="https://x.example/")]),
            "artifacts[0].url",
            id="artifact",
        ),
        pytest.param(
            lambda: new_release(artifacts=[artifact(download={"mode": "none", "x": 1})]),
            "artifacts[0].download.x",
            id="download",
        ),
        pytest.param(lambda: parse_token_request({"ttl": 60_000}), "ttl", id="token"),
        pytest.param(
            lambda: parse_profile_update({"displayName": "P", "verified": True}),
            "verified",
            id="profile",
        ),
        pytest.param(
            lambda: parse_new_intent({"listingId": "l", "targetSystem": "whs", "buyerUserId": "u"}),
            "buyerUserId",
            id="intent",
        ),
    ],
)
def test_u_val_07_unknown_fields_are_rejected(parse: Callable[[], object], path: str) -> None:
    """A field the contract does not define fails on its own path, at any depth."""
    assert rejects(parse) == [path]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\ud800b", id="lone-high-surrogate"),
        pytest.param("a\udfffb", id="lone-low-surrogate"),
        pytest.param("a\x07b", id="bell"),
        pytest.param("a\x1bb", id="escape"),
        pytest.param("a\x7fb", id="del"),
        pytest.param("a\x85b", id="c1-control"),
    ],
)
def test_u_val_07_nul_surrogates_and_controls_are_rejected(bad: str) -> None:
    """NUL, lone surrogates and control characters fail in single-line and multi-line text."""
    assert rejects(lambda: new_listing(name=bad)) == ["name"]
    assert rejects(lambda: new_listing(description={"markdown": bad})) == ["description.markdown"]
    assert rejects(lambda: new_release(notes={"markdown": bad})) == ["notes.markdown"]
    assert rejects(lambda: parse_profile_update({"displayName": "P", "bioMarkdown": bad})) == [
        "bioMarkdown"
    ]


def test_u_val_07_newlines_allowed_only_in_multiline_text() -> None:
    """Markdown fields keep newlines and tabs; single-line fields reject them."""
    text = "line one\r\n\tline two"
    assert new_listing(description={"markdown": text}).content.description == text
    assert rejects(lambda: new_listing(summary="a\nb")) == ["summary"]


def test_u_val_07_signed_url_artifacts_are_unsupported_when_otherwise_valid() -> None:
    """A valid release with a ``fleetprompt_signed_url`` artifact answers UNSUPPORTED."""
    items = [artifact(), artifact(download={"mode": "fleetprompt_signed_url"})]
    with pytest.raises(Unsupported) as info:
        new_release(artifacts=items)
    assert info.value.code is ErrorCode.UNSUPPORTED
    fulfilled = new_release(
        artifacts=[artifact(download={"mode": "specprompt_fulfillment", "hint": "sku-1"})]
    )
    assert fulfilled.artifacts[0].download.mode is ArtifactDownloadMode.SPECPROMPT_FULFILLMENT


def test_u_val_07_signed_url_with_other_errors_is_a_validation_failure() -> None:
    """When the payload also has field errors, VALIDATION_FAILED wins over UNSUPPORTED."""
    items = [artifact(download={"mode": "fleetprompt_signed_url"})]
    assert rejects(lambda: new_release(version="bad version", artifacts=items)) == ["version"]


def test_u_val_07_signed_url_rejected_by_use_case(market: Market) -> None:
    """publish_release with a signed-url artifact raises UNSUPPORTED and stores nothing."""
    pub = market.publisher()
    listing_id = market.draft(pub).listing.listing_id
    audit_before = len(market.store.audit)
    records_before = dict(market.store.idempotency)
    with pytest.raises(Unsupported):
        market.fp.publishing.publish_release(
            pub,
            listing_id,
            release_payload(artifacts=[artifact(download={"mode": "fleetprompt_signed_url"})]),
            idempotency_key=new_key(),
        )
    assert market.store.releases == {}
    assert market.store.idempotency == records_before
    assert len(market.store.audit) == audit_before


@pytest.mark.parametrize("payload", [None, [], "x", 1, True])
def test_u_val_07_body_must_be_an_object(payload: object) -> None:
    """A non-object body fails on ``body`` (and on the required fields it lacks)."""
    assert "body" in rejects(lambda: parse_new_listing(payload, HOSTS))
    assert "body" in rejects(lambda: parse_new_release(payload, AssetKind.WHS_AGENT))


# --------------------------------------------------------------------------- patch semantics


@pytest.fixture
def listing(market: Market) -> Listing:
    pub = market.publisher()
    created = market.draft(
        pub,
        links={"docsUrl": "https://docs.example.com/a", "repoUrl": "https://repo.example.com/b"},
    ).listing
    return market.store.listings[created.listing_id]


def patch(listing: Listing, payload: object) -> Listing:
    return apply_listing_patch(listing, payload, HOSTS, NOW + 5)


def test_patch_absent_fields_are_kept(listing: Listing) -> None:
    """Patching only the summary changes the summary and updatedAt, nothing else."""
    patched = patch(listing, {"summary": "  New summary "})
    assert patched.summary == "New summary"
    assert patched.updated_at_ms == NOW + 5
    assert attrs.evolve(patched, summary=listing.summary, updated_at_ms=listing.updated_at_ms) == (
        listing
    )


def test_patch_null_clears_optional_fields(listing: Listing) -> None:
    """null clears summary, description, tags, categories, images and links."""
    patched = patch(
        listing,
        {
            "summary": None,
            "description": None,
            "tags": None,
            "categories": None,
            "images": None,
            "links": None,
        },
    )
    assert patched.summary == ""
    assert patched.description.markdown == ""
    assert (patched.tags, patched.categories, patched.images) == ((), (), ())
    assert patched.links == Links()
    assert patched.name == listing.name


def test_patch_null_name_is_rejected(listing: Listing) -> None:
    """The name is required: null or blank fails on ``name``."""
    assert rejects(lambda: patch(listing, {"name": None})) == ["name"]
    assert rejects(lambda: patch(listing, {"name": "  "})) == ["name"]


def test_patch_links_field_by_field(listing: Listing) -> None:
    """``links`` is patched per field: repoUrl alone keeps docsUrl; null docsUrl clears only it."""
    repo_only = patch(listing, {"links": {"repoUrl": "https://repo.example.com/new"}})
    assert repo_only.links == Links(
        docs_url="https://docs.example.com/a", repo_url="https://repo.example.com/new"
    )
    docs_cleared = patch(listing, {"links": {"docsUrl": None}})
    assert docs_cleared.links == Links(docs_url=None, repo_url="https://repo.example.com/b")
    assert patch(listing, {"links": {}}) is listing


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"assetKind": "spec_asset"}, "assetKind"),
        ({"status": "published"}, "status"),
        ({"publisherUserId": "usr_x"}, "publisherUserId"),
        ({"listingId": "lst_x"}, "listingId"),
        ({"moderation": {"flagged": False}}, "moderation"),
    ],
)
def test_patch_non_patchable_fields_fail(
    listing: Listing, payload: dict[str, Any], path: str
) -> None:
    """assetKind, status, owner, id and moderation are not patchable (VALIDATION_FAILED)."""
    assert rejects(lambda: patch(listing, payload)) == [path]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": "Support Triage Agent"},
        {"name": "  Support Triage Agent  "},
        {"tags": ["SUPPORT", "triage", "Support"]},
        {"description": {"format": "markdown", "markdown": "# Triage\n\nIt **routes** tickets."}},
        {"links": {"docsUrl": "https://docs.example.com/a"}},
    ],
)
def test_patch_no_op_returns_the_same_object(listing: Listing, payload: dict[str, Any]) -> None:
    """A patch that changes nothing returns the very same object (updatedAt untouched)."""
    assert patch(listing, payload) is listing


def test_patch_use_case_rejects_status_and_changes_nothing(
    market: Market, listing: Listing
) -> None:
    """update_listing with ``status`` answers VALIDATION_FAILED and leaves the listing as it was."""
    pub = market.publisher()
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.update_listing(pub, listing.listing_id, {"status": "published"})
    assert field_names(info.value) == ["status"]
    assert market.store.listings[listing.listing_id] == listing
    assert listing.status is ListingStatus.DRAFT


def test_patch_use_case_no_op_writes_no_audit_event(market: Market, listing: Listing) -> None:
    """A no-op patch through the use case succeeds without an audit event or a new updatedAt."""
    pub = market.publisher()
    audit_before = len(market.store.audit)
    market.clock.advance(1_000)
    view = market.fp.publishing.update_listing(pub, listing.listing_id, {"name": listing.name})
    assert view.value.listing == listing
    assert market.store.listings[listing.listing_id] is listing
    assert len(market.store.audit) == audit_before
