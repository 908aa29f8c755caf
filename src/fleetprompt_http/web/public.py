"""The pages anyone may open: the marketplace, a listing, a publisher (§12).

The marketplace is one GET form: the URL carries the whole query (the P1
parameters), so a search is shareable and the back button works. Keyset
cursors only go forward; "previous" works because the URL also carries the
trail of cursors that led here (``back``), bounded to a few pages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.params import FromPath

from fleetprompt_core.base.enums import AssetKind, SearchSort
from fleetprompt_core.base.errors import ValidationFailed
from fleetprompt_http.security_headers import ContentPolicy, declare
from fleetprompt_http.web.rendering import FormErrors, new_key, page
from fleetprompt_http.web.visitor import Visitor, run

__all__ = ["PublicPages"]

#: Cursors of earlier pages kept in the URL for "previous".
_TRAIL_MAX: Final = 10
_PAGE_SIZE: Final = "12"
#: Matches sampled for the tag and category facets, and how many of each are shown.
_FACET_SAMPLE: Final = 48
_FACETS_SHOWN: Final = 15
_SEARCH_KEYS: Final = ("q", "assetKind", "sort", "verified")
_LIST_KEYS: Final = ("tags", "categories")

ASSET_KINDS: Final = {
    AssetKind.WHS_AGENT.value: "Agent (WHS)",
    AssetKind.AGENTROMATIC_WORKFLOW.value: "Workflow (Agentromatic)",
    AssetKind.SPEC_ASSET.value: "Spec asset (SpecPrompt)",
}
TARGETS: Final = {"whs": "WHS", "agentromatic": "Agentromatic", "agentelic": "Agentelic"}
SORTS: Final = {
    "relevance": "Best match",
    "updated": "Recently updated",
    "created": "Newest",
    "name": "Name",
    "installs": "Most installed",
}


def _query(request: Request[Any, Any, Any]) -> tuple[dict[str, object], dict[str, object]]:
    """(the core's search parameters, what the page echoes back into its form)."""
    raw = request.query_params
    params: dict[str, object] = {}
    for key in _SEARCH_KEYS:
        value = raw.get(key)
        if value:
            params[key] = value
    for key in _LIST_KEYS:
        values = [v for v in raw.getall(key, []) if v.strip()]
        if values:
            params[key] = values
    echo = dict(params)
    if raw.get("cursor"):
        params["cursor"] = raw.get("cursor")
    params["limit"] = _PAGE_SIZE
    return params, echo


def _link(echo: Mapping[str, object], **extra: object) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in {**echo, **extra}.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return "/?" + urlencode(pairs) if pairs else "/"


class PublicPages(Controller):
    path = "/"
    opt = declare(content=ContentPolicy.PAGE)
    include_in_schema = False

    @get("/", name="marketplace")
    async def marketplace(self, request: Request[Any, Any, Any]) -> Response[Any]:
        params, echo = _query(request)
        trail = [c for c in request.query_params.get("back", "").split(" ") if c][-_TRAIL_MAX:]
        known_sorts = {s.value for s in SearchSort}
        sorts = {key: label for key, label in SORTS.items() if key in known_sorts}

        def render(visitor: Visitor) -> Response[Any]:
            errors = FormErrors()
            results = None
            try:
                results = visitor.app.catalog.search(params, visitor.call)
            except ValidationFailed as error:
                errors = FormErrors(error.fields)
            cursor = str(params.get("cursor") or "")
            items = results.items if results else ()
            tags, categories = _facets(visitor, params) if results else ([], [])
            tags = sorted(set(tags) | set(_list(echo, "tags")))
            categories = sorted(set(categories) | set(_list(echo, "categories")))
            next_link = (
                _link(echo, cursor=results.next_cursor, back=" ".join([*trail, cursor or "-"]))
                if results and results.next_cursor
                else None
            )
            previous_link = None
            if cursor:
                earlier = trail[-1] if trail else "-"
                previous_link = _link(
                    echo,
                    cursor=None if earlier == "-" else earlier,
                    back=" ".join(trail[:-1]) or None,
                )
            return page(
                request,
                visitor,
                "marketplace.html",
                {
                    "q": echo.get("q", ""),
                    "selected_kind": echo.get("assetKind", ""),
                    "selected_sort": echo.get("sort", ""),
                    "selected_tags": _list(echo, "tags"),
                    "selected_categories": _list(echo, "categories"),
                    "verified": bool(echo.get("verified")),
                    "asset_kinds": ASSET_KINDS,
                    "sorts": sorts,
                    "tags": tags,
                    "categories": categories,
                    "items": items,
                    "errors": errors,
                    "next_link": next_link,
                    "previous_link": previous_link,
                    "searched": bool(echo),
                },
                status=400 if errors else 200,
            )

        return await run(request, render)

    @get("/listings/{listing_id:str}", name="listing")
    async def listing(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        show_revoked = request.query_params.get("revoked") == "1"

        def render(visitor: Visitor) -> Response[Any]:
            app = visitor.app
            detail = app.catalog.listing(listing_id, visitor.call)
            history = app.catalog.releases(
                listing_id, {"includeRevoked": "true" if show_revoked else "false"}, visitor.call
            )
            return page(
                request,
                visitor,
                "listing.html",
                {
                    "detail": detail,
                    "listing": detail.listing,
                    "history": history.items,
                    "show_revoked": show_revoked,
                    "asset_kinds": ASSET_KINDS,
                    "targets": TARGETS,
                    "install_key": new_key(),
                },
            )

        return await run(request, render)

    @get("/publishers/{publisher_id:str}", name="publisher")
    async def publisher(
        self, request: Request[Any, Any, Any], publisher_id: FromPath[str]
    ) -> Response[Any]:
        def render(visitor: Visitor) -> Response[Any]:
            shown = visitor.app.storefront.publisher(publisher_id, visitor.call)
            return page(
                request,
                visitor,
                "publisher.html",
                {"profile": shown.profile, "items": shown.listings, "asset_kinds": ASSET_KINDS},
            )

        return await run(request, render)


def _facets(visitor: Visitor, params: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """The most common tags and categories among the first matches of the query without
    its label filters (so a person can widen or narrow them)."""
    wider = {k: v for k, v in params.items() if k not in ("tags", "categories", "cursor")}
    wider["limit"] = str(_FACET_SAMPLE)
    wider.pop("sort", None)
    sample = visitor.app.catalog.search(wider, visitor.call).items
    tags: Counter[str] = Counter(t for item in sample for t in item.tags)
    categories: Counter[str] = Counter(c for item in sample for c in item.categories)
    return (
        [t for t, _ in tags.most_common(_FACETS_SHOWN)],
        [c for c, _ in categories.most_common(_FACETS_SHOWN)],
    )


def _list(echo: Mapping[str, object], key: str) -> list[str]:
    value = echo.get(key)
    return [str(v) for v in value] if isinstance(value, list | tuple) else []
