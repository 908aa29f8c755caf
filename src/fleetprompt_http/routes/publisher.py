"""B1–B9: the publisher console (own listings, releases and profile)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypedDict

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.params import FromPath, QueryParameter

from fleetprompt_core import (
    ListingPatchPayload,
    NewListingPayload,
    NewReleasePayload,
    ProfilePayload,
    ReasonPayload,
    StatusChangePayload,
)
from fleetprompt_core.base.enums import ListingStatus
from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_http import wire
from fleetprompt_http.handling import call_use_case, query, respond, services_of, write
from fleetprompt_http.openapi import PAGE, choice, documented
from fleetprompt_http.routes.docs import CURSOR, KEY_ACCEPTED, KEY_REQUIRED, LIMIT, errors

__all__ = ["PublisherController"]

_PRIVATE: Final = (ErrorCode.UNAUTHENTICATED, ErrorCode.UNAUTHORIZED)
_WRITE: Final = (
    *_PRIVATE,
    ErrorCode.NOT_FOUND,
    ErrorCode.CONFLICT,
    ErrorCode.RATE_LIMITED,
    ErrorCode.TOO_LARGE,
    ErrorCode.UNSUPPORTED,
)


class ListingEnvelope(TypedDict):
    listing: wire.PublisherListingWire


class ReleaseEnvelope(TypedDict):
    release: wire.ReleaseWire


class ProfileEnvelope(TypedDict):
    profile: wire.ProfileWire


class Ok(TypedDict):
    ok: Literal[True]


class PublisherController(Controller):
    path = "/v1/publisher"
    tags = ["publisher"]  # noqa: RUF012 - Litestar reads a class attribute

    @get(
        "/listings",
        summary="Own listings, newest first",
        responses=errors(*_PRIVATE),
        operation_class=documented(query={**PAGE, "status": choice(ListingStatus)}),
    )
    async def list_listings(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            str | None, QueryParameter(description="draft | published | unlisted | suspended")
        ] = None,
        cursor: Annotated[str | None, CURSOR] = None,
        limit: Annotated[str | None, LIMIT] = None,
    ) -> Response[wire.PublisherListingPage]:
        params = query(request)
        publishing = services_of(request).app.publishing
        page = await call_use_case(request, lambda call: publishing.list_listings(call, params))
        return respond(wire.page(page, wire.publisher_listing))

    @post(
        "/listings",
        summary="Create a draft listing",
        status_code=201,
        responses=errors(*_WRITE),
        operation_class=documented(NewListingPayload, location=True, idempotency="required"),
    )
    async def create_listing(
        self,
        request: Request[Any, Any, Any],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ListingEnvelope]:
        publishing = services_of(request).app.publishing
        return await write(
            request,
            lambda call, body: publishing.create_listing(call, body, idempotency_key=key),
            lambda v: {"listing": wire.publisher_listing(v)},
            201,
            location=lambda v: f"{self.path}/listings/{v.listing.listing_id}",
            # A few statements by key, bounded by the database's own timeouts: on SQLite,
            # for a small body, it runs on the event loop (ADR 0036, 0043).
            inline=True,
        )

    @get(
        "/listings/{listing_id:str}",
        summary="One own listing",
        responses=errors(*_PRIVATE, ErrorCode.NOT_FOUND),
        operation_class=documented(),
    )
    async def get_listing(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[ListingEnvelope]:
        publishing = services_of(request).app.publishing
        view = await call_use_case(request, lambda call: publishing.get_listing(call, listing_id))
        return respond({"listing": wire.publisher_listing(view)})

    @patch(
        "/listings/{listing_id:str}",
        summary="Change an own listing (fields not sent stay as they are)",
        responses=errors(*_WRITE),
        operation_class=documented(ListingPatchPayload, idempotency="accepted"),
    )
    async def update_listing(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        key: Annotated[str | None, KEY_ACCEPTED] = None,
    ) -> Response[Ok]:
        publishing = services_of(request).app.publishing
        return await write(
            request,
            lambda call, body: publishing.update_listing(
                call, listing_id, body, idempotency_key=key
            ),
            lambda _: {"ok": True},
        )

    @post(
        "/listings/{listing_id:str}/status",
        summary="Move an own listing to draft, published or unlisted",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(StatusChangePayload, idempotency="required"),
    )
    async def change_status(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ListingEnvelope]:
        publishing = services_of(request).app.publishing
        return await write(
            request,
            lambda call, body: publishing.change_status(
                call, listing_id, body, idempotency_key=key
            ),
            lambda v: {"listing": wire.publisher_listing(v)},
        )

    @post(
        "/listings/{listing_id:str}/releases",
        summary="Publish an immutable release of an own listing",
        status_code=201,
        responses=errors(
            *_WRITE,
            not_offered="an artifact asks for `fleetprompt_signed_url` downloads (not in v1).",
        ),
        operation_class=documented(NewReleasePayload, idempotency="required"),
    )
    async def publish_release(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ReleaseEnvelope]:
        publishing = services_of(request).app.publishing
        return await write(
            request,
            lambda call, body: publishing.publish_release(
                call, listing_id, body, idempotency_key=key
            ),
            lambda v: {"release": wire.release(v)},
            201,
        )

    @get(
        "/listings/{listing_id:str}/releases",
        summary="An own listing's releases, revoked ones included",
        responses=errors(*_PRIVATE, ErrorCode.NOT_FOUND),
        operation_class=documented(query=PAGE),
    )
    async def list_releases(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        cursor: Annotated[str | None, CURSOR] = None,
        limit: Annotated[str | None, LIMIT] = None,
    ) -> Response[wire.ReleasePage]:
        params = query(request)
        publishing = services_of(request).app.publishing
        page = await call_use_case(
            request, lambda call: publishing.list_releases(call, listing_id, params)
        )
        return respond(wire.page(page, wire.release))

    @post(
        "/releases/{release_id:str}/revoke",
        summary="Revoke an own release (kept, marked, never installable again)",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(ReasonPayload, body_required=False, idempotency="required"),
    )
    async def revoke_release(
        self,
        request: Request[Any, Any, Any],
        release_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ReleaseEnvelope]:
        publishing = services_of(request).app.publishing
        return await write(
            request,
            lambda call, body: publishing.revoke_release(
                call, release_id, body, idempotency_key=key
            ),
            lambda v: {"release": wire.release(v)},
        )

    @get(
        "/profile",
        summary="The caller's publisher profile",
        responses=errors(*_PRIVATE),
        operation_class=documented(),
    )
    async def get_profile(self, request: Request[Any, Any, Any]) -> Response[ProfileEnvelope]:
        profiles = services_of(request).app.profiles
        profile = await call_use_case(request, profiles.get)
        return respond({"profile": wire.publisher_profile(profile)})

    @put(
        "/profile",
        summary="Replace the caller's display name and bio",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(ProfilePayload, idempotency="accepted"),
    )
    async def put_profile(
        self,
        request: Request[Any, Any, Any],
        key: Annotated[str | None, KEY_ACCEPTED] = None,
    ) -> Response[ProfileEnvelope]:
        profiles = services_of(request).app.profiles
        return await write(
            request,
            lambda call, body: profiles.put(call, body, idempotency_key=key),
            lambda v: {"profile": wire.publisher_profile(v)},
        )
