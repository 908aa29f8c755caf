"""Short text renderings of the public shapes, for the model that reads a tool result.

Structured content carries the full wire shape; these lines say the same in a
few words. Descriptions and release notes are given as markdown (what a model
reads best), with raw HTML neutralised: the policy never lets HTML through, so
``<`` is written as an entity and a client that renders markdown shows it as text.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetprompt_http import wire

__all__ = [
    "intent_text",
    "intents_text",
    "listing_detail_text",
    "listings_text",
    "publisher_text",
    "release_text",
    "releases_text",
    "token_text",
]


def _markdown(source: str) -> str:
    return source.replace("<", "&lt;").strip()


def _verified(publisher: wire.PublisherWire) -> str:
    return " (verified publisher)" if publisher["verified"]["status"] == "verified" else ""


def _next(cursor: str | None) -> str:
    return f"\nMore results: call again with cursor={cursor!r}." if cursor else ""


def _listing_line(item: wire.PublicListingWire) -> str:
    tags = f" [{', '.join(item['tags'])}]" if item["tags"] else ""
    summary = f": {item['summary']}" if item["summary"] else ""
    return (
        f"- {item['name']} (listingId {item['listingId']}, {item['assetKind']}, by "
        f"{item['publisher']['displayName']}{_verified(item['publisher'])}){summary}{tags}"
    )


def listings_text(page: wire.PageWire[wire.PublicListingWire]) -> str:
    if not page["items"]:
        return "No published listing matches."
    lines = [f"{len(page['items'])} listing(s):", *map(_listing_line, page["items"])]
    return "\n".join(lines) + _next(page["nextCursor"])


def _release_line(item: wire.PublicReleaseWire) -> str:
    revoked = " REVOKED (cannot be installed)" if item["status"] == "revoked" else ""
    return f"- {item['version']} (releaseId {item['releaseId']}){revoked}"


def releases_text(page: wire.PageWire[wire.PublicReleaseWire]) -> str:
    if not page["items"]:
        return "No release."
    lines = [f"{len(page['items'])} release(s), newest first:", *map(_release_line, page["items"])]
    return "\n".join(lines) + _next(page["nextCursor"])


def listing_detail_text(detail: wire.ListingDetailWire) -> str:
    listing = detail["listing"]
    latest = detail["latestRelease"]
    parts = [
        f"# {listing['name']}",
        f"listingId {listing['listingId']} · {listing['assetKind']} · by "
        f"{listing['publisher']['displayName']}{_verified(listing['publisher'])} "
        f"(publisherId {listing['publisher']['publisherId']})",
    ]
    if listing["summary"]:
        parts.append(listing["summary"])
    if listing["tags"] or listing["categories"]:
        parts.append(
            "Tags: "
            + ", ".join(listing["tags"])
            + " · Categories: "
            + ", ".join(listing["categories"])
        )
    parts.append(
        f"Latest release: {latest['version']} (releaseId {latest['releaseId']})"
        if latest
        else "No installable release."
    )
    description = _markdown(detail["description"]["markdown"])
    if description:
        parts.append("## Description\n\n" + description)
    return "\n\n".join(parts)


def release_text(release: wire.PublicReleaseWire) -> str:
    refs = ", ".join(f"{name} {value}" for name, value in release["refs"].items() if value)
    parts = [
        f"Release {release['version']} (releaseId {release['releaseId']}) of listing "
        f"{release['listingId']}: {release['status']}",
        f"References: {refs}" if refs else "",
    ]
    notes = _markdown(release["notes"]["markdown"])
    if notes:
        parts.append("## Notes\n\n" + notes)
    return "\n\n".join(part for part in parts if part)


def publisher_text(publisher: wire.PublicPublisherWire) -> str:
    parts = [
        f"# {publisher['displayName']}{_verified(publisher)}",
        f"publisherId {publisher['publisherId']}",
    ]
    bio = _markdown(publisher["bio"]["markdown"])
    if bio:
        parts.append(bio)
    return "\n\n".join(parts)


def intent_text(intent: wire.InstallIntentWire) -> str:
    return (
        f"Install intent {intent['installIntentId']}: {intent['status']}, release "
        f"{intent['releaseId']} of listing {intent['listingId']} for {intent['targetSystem']}, "
        f"expires at {intent['expiresAtMs']} (epoch ms)."
    )


def intents_text(page: wire.PageWire[wire.InstallIntentWire]) -> str:
    if not page["items"]:
        return "No install intent."
    lines: Iterable[str] = (f"- {intent_text(item)}" for item in page["items"])
    return "\n".join([f"{len(page['items'])} install intent(s):", *lines]) + _next(
        page["nextCursor"]
    )


def token_text(issued: wire.IssuedTokenWire) -> str:
    if issued["installToken"] is None:
        return (
            f"A token was already issued for intent {issued['installIntentId']} with this "
            "idempotency key; the raw token is shown only once. Call again without the key "
            "(or with a new one) to issue a fresh token."
        )
    return (
        f"Install token for intent {issued['installIntentId']} (shown only this once; single "
        f"use; expires at {issued['expiresAtMs']} epoch ms). Give it to "
        f"{issued['redeem']['targetSystem']}, whose server redeems it:\n{issued['installToken']}"
    )
