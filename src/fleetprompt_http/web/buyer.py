"""Install from a listing and the buyer's intents (§12, I1–I5 in pages).

Install is one form post: it creates the install intent with the idempotency
key the form carries (rendered once per page view, so a double click or a
re-submitted form makes one intent) and issues a token for it. The raw
token appears in that answer only — it is never stored, never put in a URL
and the page is ``no-store`` — with its expiry counting down and what the
target system's server must do to redeem it.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from fleetprompt_core.base.enums import InstallIntentStatus
from fleetprompt_core.base.errors import NotFound, Unauthenticated, ValidationFailed
from fleetprompt_core.services.views import IssuedToken
from fleetprompt_http.security_headers import ContentPolicy, declare
from fleetprompt_http.web.public import TARGETS
from fleetprompt_http.web.rendering import FormErrors, form_dict, new_key, page, see_other
from fleetprompt_http.web.visitor import Visitor, check_unsafe, run

__all__ = ["BuyerPages"]

_TARGETS = TARGETS


def _listing_name(visitor: Visitor, listing_id: str) -> str:
    """The listing's public name, or its id once it is no longer in the catalogue."""
    try:
        return visitor.app.catalog.listing(listing_id, visitor.call).listing.name
    except NotFound:
        return listing_id


def _token_page(
    request: Request[Any, Any, Any], visitor: Visitor, issued: IssuedToken, listing_name: str
) -> Response[Any]:
    return page(
        request,
        visitor,
        "token.html",
        {
            "issued": issued,
            "listing_name": listing_name,
            "base_url": f"{request.url.scheme}://{request.headers.get('host', 'localhost')}",
            "cancel_key": new_key(),
        },
    )


class BuyerPages(Controller):
    path = "/"
    opt = declare(content=ContentPolicy.PAGE)
    include_in_schema = False

    @post("/listings/{listing_id:str}/install", name="install")
    async def install(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            if not visitor.signed_in:
                raise Unauthenticated()
            app = visitor.app
            payload: dict[str, object] = {
                "listingId": listing_id,
                "targetSystem": form.get("targetSystem", ""),
            }
            context = {
                key: form[key].strip()
                for key in ("telespaceId", "roomId", "orgId")
                if form.get(key, "").strip()
            }
            if context:
                payload["targetContext"] = context
            detail = app.catalog.listing(listing_id, visitor.call)
            try:
                intent = app.installs.create_intent(
                    visitor.call, payload, idempotency_key=form.get("key") or new_key()
                ).value
            except ValidationFailed as error:
                return page(
                    request,
                    visitor,
                    "install_form.html",
                    {
                        "listing": detail.listing,
                        "errors": FormErrors(error.fields, {"targetContext": "context"}),
                        "form": form,
                        "install_key": form.get("key") or new_key(),
                        "targets": _TARGETS,
                    },
                    status=400,
                )
            # A fresh key: a second post of the same form re-issues (revoking the
            # first token, whose answer the browser dropped) instead of replaying
            # an answer that no longer carries the token.
            issued = app.installs.issue_token(
                visitor.call, intent.install_intent_id, None, idempotency_key=new_key()
            ).value
            return _token_page(request, visitor, issued, detail.listing.name)

        return await run(request, work)

    @get("/listings/{listing_id:str}/install", name="install_form")
    async def install_form(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        def work(visitor: Visitor) -> Response[Any]:
            detail = visitor.app.catalog.listing(listing_id, visitor.call)
            if not visitor.signed_in:
                raise Unauthenticated()
            return page(
                request,
                visitor,
                "install_form.html",
                {
                    "listing": detail.listing,
                    "errors": FormErrors(),
                    "form": {},
                    "install_key": new_key(),
                    "targets": _TARGETS,
                },
            )

        return await run(request, work)

    @get("/installs", name="installs")
    async def installs(self, request: Request[Any, Any, Any]) -> Response[Any]:
        params: dict[str, object] = {"limit": "20"}
        for key in ("status", "cursor"):
            if request.query_params.get(key):
                params[key] = request.query_params.get(key)
        done = request.query_params.get("done")

        def work(visitor: Visitor) -> Response[Any]:
            if not visitor.signed_in:
                raise Unauthenticated()
            intents = visitor.app.installs.list_intents(visitor.call, params)
            names: dict[str, str] = {}
            for intent in intents.items:
                if intent.listing_id not in names:
                    names[intent.listing_id] = _listing_name(visitor, intent.listing_id)
            return page(
                request,
                visitor,
                "installs.html",
                {
                    "intents": intents.items,
                    "next_cursor": intents.next_cursor,
                    "status": params.get("status", ""),
                    "statuses": [s.value for s in InstallIntentStatus],
                    "open_statuses": ("created", "token_issued"),
                    "notice": "The install intent was canceled." if done == "canceled" else None,
                    "keys": {i.install_intent_id: new_key() for i in intents.items},
                    "names": names,
                },
            )

        return await run(request, work)

    @post("/installs/{intent_id:str}/token", name="reissue")
    async def reissue(
        self, request: Request[Any, Any, Any], intent_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            app = visitor.app
            issued = app.installs.issue_token(
                visitor.call, intent_id, None, idempotency_key=new_key()
            ).value
            intent = app.installs.get_intent(visitor.call, intent_id)
            return _token_page(request, visitor, issued, _listing_name(visitor, intent.listing_id))

        return await run(request, work)

    @post("/installs/{intent_id:str}/cancel", name="cancel")
    async def cancel(
        self, request: Request[Any, Any, Any], intent_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            visitor.app.installs.cancel_intent(
                visitor.call, intent_id, None, idempotency_key=form.get("key") or new_key()
            )
            return see_other("/installs?done=canceled")

        return await run(request, work)
