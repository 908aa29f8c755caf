"""P1–P3: the public catalogue, open to anyone (rate-limited per client)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter

from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_core.services.catalog import PublicRead, short_search
from fleetprompt_http import wire
from fleetprompt_http.handling import public_read, query, services_of
from fleetprompt_http.openapi import PAGE, SEARCH, choice, documented
from fleetprompt_http.routes.docs import CURSOR, LIMIT, errors
from fleetprompt_http.security_headers import Caching, declare

__all__ = ["PublicController"]


class DetailEnvelope(TypedDict):
    listingDetail: wire.ListingDetailWire


class PublicController(Controller):
    path = "/v1/public/listings"
    tags = ["public"]  # noqa: RUF012 - Litestar reads a class attribute
    #: The same answer for every caller: caches may keep it.
    opt = declare(caching=Caching.PUBLIC)

    @get(
        "/search",
        summary="Search published listings",
        description="Published listings only. `sort` defaults to `relevance` with `q`, "
        "else `updated`. Filters combine with AND; `tags`/`categories` may repeat or be "
        "comma-separated.",
        responses=errors(ErrorCode.RATE_LIMITED, ErrorCode.UNAUTHENTICATED),
        operation_class=documented(query=SEARCH, security="optional"),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        q: Annotated[str | None, QueryParameter(description="Words to find (≤ 200 chars).")] = None,
        tags: Annotated[list[str] | None, QueryParameter(description="Required tags.")] = None,
        categories: Annotated[list[str] | None, QueryParameter(description="Categories.")] = None,
        asset_kind: Annotated[
            str | None,
            QueryParameter(
                name="assetKind", description="whs_agent|agentromatic_workflow|spec_asset"
            ),
        ] = None,
        verified: Annotated[
            str | None, QueryParameter(description="true: verified publishers only.")
        ] = None,
        sort: Annotated[
            str | None,
            QueryParameter(description="relevance | updated | created | name | installs"),
        ] = None,
        cursor: Annotated[str | None, CURSOR] = None,
        limit: Annotated[str | None, LIMIT] = None,
    ) -> Response[wire.PublicListingPage]:
        params = query(request)
        catalog = services_of(request).app.catalog
        return await public_read(  # type: ignore[return-value] # the same shape, encoded
            request,
            PublicRead.SEARCH,
            lambda call: wire.page(catalog.search(params, call), wire.public_listing),
            inline=short_search(params),
        )

    @get(
        "/{listing_id:str}",
        summary="A published listing with its first page of releases",
        responses=errors(ErrorCode.NOT_FOUND, ErrorCode.RATE_LIMITED, ErrorCode.UNAUTHENTICATED),
        operation_class=documented(security="optional"),
    )
    async def detail(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[DetailEnvelope]:
        catalog = services_of(request).app.catalog
        return await public_read(  # type: ignore[return-value] # the same shape, encoded
            request,
            PublicRead.LISTING,
            lambda call: {"listingDetail": wire.public_detail(catalog.listing(listing_id, call))},
            inline=True,
        )

    @get(
        "/{listing_id:str}/releases",
        summary="A published listing's releases, newest first",
        description="Revoked releases are hidden unless `includeRevoked=true`.",
        responses=errors(ErrorCode.NOT_FOUND, ErrorCode.RATE_LIMITED, ErrorCode.UNAUTHENTICATED),
        operation_class=documented(
            query={**PAGE, "includeRevoked": choice(("true", "false"))}, security="optional"
        ),
    )
    async def releases(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        include_revoked: Annotated[
            str | None, QueryParameter(name="includeRevoked", description="true | false")
        ] = None,
        cursor: Annotated[str | None, CURSOR] = None,
        limit: Annotated[str | None, LIMIT] = None,
    ) -> Response[wire.PublicReleasePage]:
        params = query(request)
        catalog = services_of(request).app.catalog
        return await public_read(  # type: ignore[return-value] # the same shape, encoded
            request,
            PublicRead.RELEASES,
            lambda call: wire.page(catalog.releases(listing_id, params, call), wire.public_release),
        )
