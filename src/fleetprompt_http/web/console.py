"""The publisher console (§12, B1–B9 in pages).

Forms are translated into the same payloads the JSON API takes (comma
separated tags become a list, one image per line, empty links are cleared)
and handed to the core's publishing use cases; field errors come back next to
their fields with what was typed kept. "Preview" renders the typed markdown
through the core's one markdown policy without saving anything (with htmx,
into the page in place; without JavaScript, as a full page).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from fleetprompt_core.base.enums import AssetKind, ListingStatus
from fleetprompt_core.base.errors import Unauthorized, ValidationFailed
from fleetprompt_core.commands.parsers import REQUIRED_REF
from fleetprompt_core.domain.model import Listing
from fleetprompt_core.policies.markdown import render_markdown
from fleetprompt_http.security_headers import ContentPolicy, declare
from fleetprompt_http.web.charts import activity_chart
from fleetprompt_http.web.public import ASSET_KINDS
from fleetprompt_http.web.rendering import FormErrors, form_dict, new_key, page, see_other
from fleetprompt_http.web.visitor import Visitor, check_unsafe, run

__all__ = ["ConsolePages", "listing_form", "listing_payload"]

_ALIASES: Final = {"description.markdown": "description", "description": "description"}
_REFS: Final = {
    "whsAgentId": "WHS agent id",
    "whsDeploymentId": "WHS deployment id (a hint)",
    "agentromaticWorkflowId": "Agentromatic workflow id",
    "specAssetId": "SpecPrompt asset id",
}
_REFS_BY_KIND: Final = {
    AssetKind.WHS_AGENT.value: ("whsAgentId", "whsDeploymentId"),
    AssetKind.AGENTROMATIC_WORKFLOW.value: ("agentromaticWorkflowId",),
    AssetKind.SPEC_ASSET.value: ("specAssetId",),
}
_COMPAT: Final = {
    "minWHSVersion": "Minimum WHS version",
    "minAgentromaticVersion": "Minimum Agentromatic version",
    "minAgentelicVersion": "Minimum Agentelic version",
}
_MOVES: Final = {
    ListingStatus.DRAFT: ("published",),
    ListingStatus.PUBLISHED: ("unlisted", "draft"),
    ListingStatus.UNLISTED: ("published", "draft"),
    ListingStatus.SUSPENDED: (),
}


def _labels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def listing_payload(form: dict[str, str], *, create: bool) -> dict[str, object]:
    """The API payload of a listing form."""
    images: list[dict[str, str]] = []
    for line in form.get("images", "").splitlines():
        if line.strip():
            url, _, alt = line.strip().partition(" ")
            images.append({"url": url, "alt": alt.strip()})
    payload: dict[str, object] = {
        "name": form.get("name", ""),
        "summary": form.get("summary", ""),
        "description": {"markdown": form.get("description", "")},
        "tags": _labels(form.get("tags", "")),
        "categories": _labels(form.get("categories", "")),
        "images": images,
        "links": {
            "docsUrl": form.get("docsUrl", "").strip() or None,
            "repoUrl": form.get("repoUrl", "").strip() or None,
        },
    }
    if create:
        payload["assetKind"] = form.get("assetKind", "")
    return payload


def listing_form(listing: Listing) -> dict[str, str]:
    """A stored listing as the values of its form."""
    return {
        "name": listing.name,
        "summary": listing.summary,
        "description": listing.description.markdown,
        "tags": ", ".join(listing.tags),
        "categories": ", ".join(listing.categories),
        "images": "\n".join(f"{i.url} {i.alt}".strip() for i in listing.images),
        "docsUrl": listing.links.docs_url or "",
        "repoUrl": listing.links.repo_url or "",
        "assetKind": listing.asset_kind.value,
    }


def _release_payload(form: dict[str, str]) -> dict[str, object]:
    refs = {k: form[k].strip() for k in _REFS if form.get(k, "").strip()}
    compat = {k: form[k].strip() for k in _COMPAT if form.get(k, "").strip()}
    payload: dict[str, object] = {"version": form.get("version", "").strip(), "refs": refs}
    if compat:
        payload["compat"] = compat
    if form.get("notes", "").strip():
        payload["notes"] = {"markdown": form.get("notes", "")}
    return payload


def _here(listing_id: str, done: str | None = None) -> str:
    return f"/console/listings/{quote(listing_id, safe='')}" + (f"?done={done}" if done else "")


class ConsolePages(Controller):
    path = "/console"
    opt = declare(content=ContentPolicy.PAGE)
    include_in_schema = False

    @get("/", name="console")
    async def console(self, request: Request[Any, Any, Any]) -> Response[Any]:
        status = request.query_params.get("status") or None
        done = request.query_params.get("done")

        def work(visitor: Visitor) -> Response[Any]:
            return _console_home(request, visitor, status, done)

        return await run(request, work)

    @post("/profile", name="console_profile")
    async def profile(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            try:
                visitor.app.profiles.put(
                    visitor.call,
                    {
                        "displayName": form.get("displayName", ""),
                        "bioMarkdown": form.get("bioMarkdown", ""),
                    },
                    idempotency_key=form.get("key") or new_key(),
                )
            except ValidationFailed as error:
                return _console_home(
                    request, visitor, None, None, errors=FormErrors(error.fields), form=form
                )
            return see_other("/console?done=profile")

        return await run(request, work)

    @get("/new", name="console_new")
    async def new_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        def work(visitor: Visitor) -> Response[Any]:
            visitor.app.profiles.get(visitor.call)  # publishers only
            return _edit_page(request, visitor, None, {"assetKind": "whs_agent"})

        return await run(request, work)

    @post("/new", name="console_create")
    async def create(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            if form.get("action") == "preview":
                visitor.app.profiles.get(visitor.call)
                return _edit_page(request, visitor, None, form, preview=True)
            try:
                view = visitor.app.publishing.create_listing(
                    visitor.call,
                    listing_payload(form, create=True),
                    idempotency_key=form.get("key") or new_key(),
                ).value
            except ValidationFailed as error:
                return _edit_page(
                    request, visitor, None, form, errors=FormErrors(error.fields, _ALIASES)
                )
            return see_other(_here(view.listing.listing_id, "created"))

        return await run(request, work)

    @post("/preview", name="console_preview")
    async def preview(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The htmx preview: the typed markdown rendered by the core's policy, unsaved."""
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            visitor.app.profiles.get(visitor.call)  # publishers only
            source = form.get("description", form.get("notes", ""))
            return page(request, visitor, "preview.html", {"preview_html": render_markdown(source)})

        return await run(request, work)

    @get("/listings/{listing_id:str}", name="console_listing")
    async def listing(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        done = request.query_params.get("done")

        def work(visitor: Visitor) -> Response[Any]:
            view = visitor.app.publishing.get_listing(visitor.call, listing_id)
            return _edit_page(request, visitor, view, listing_form(view.listing), done=done)

        return await run(request, work)

    @post("/listings/{listing_id:str}", name="console_update")
    async def update(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            app = visitor.app
            view = app.publishing.get_listing(visitor.call, listing_id)
            form.setdefault("assetKind", view.listing.asset_kind.value)
            if form.get("action") == "preview":
                return _edit_page(request, visitor, view, form, preview=True)
            try:
                app.publishing.update_listing(
                    visitor.call,
                    listing_id,
                    listing_payload(form, create=False),
                    idempotency_key=form.get("key") or new_key(),
                )
            except ValidationFailed as error:
                return _edit_page(
                    request, visitor, view, form, errors=FormErrors(error.fields, _ALIASES)
                )
            return see_other(_here(listing_id, "saved"))

        return await run(request, work)

    @post("/listings/{listing_id:str}/status", name="console_status")
    async def status(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            visitor.app.publishing.change_status(
                visitor.call,
                listing_id,
                {"status": form.get("status", "")},
                idempotency_key=form.get("key") or new_key(),
            )
            return see_other(_here(listing_id, "status"))

        return await run(request, work)

    @post("/listings/{listing_id:str}/releases", name="console_release")
    async def release(
        self, request: Request[Any, Any, Any], listing_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            app = visitor.app
            try:
                app.publishing.publish_release(
                    visitor.call,
                    listing_id,
                    _release_payload(form),
                    idempotency_key=form.get("key") or new_key(),
                )
            except ValidationFailed as error:
                view = app.publishing.get_listing(visitor.call, listing_id)
                return _edit_page(
                    request,
                    visitor,
                    view,
                    listing_form(view.listing),
                    release_form=form,
                    release_errors=FormErrors(
                        error.fields, {"notes.markdown": "notes", "notes": "notes"}
                    ),
                )
            return see_other(_here(listing_id, "released"))

        return await run(request, work)

    @post("/releases/{release_id:str}/revoke", name="console_revoke")
    async def revoke(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            release = visitor.app.publishing.revoke_release(
                visitor.call,
                release_id,
                {"reason": form.get("reason", "").strip() or None},
                idempotency_key=form.get("key") or new_key(),
            ).value
            return see_other(_here(release.listing_id, "revoked"))

        return await run(request, work)


_NOTICES: Final = {
    "created": "The listing was created as a draft. Publish a release, then the listing.",
    "saved": "Your changes were saved.",
    "status": "The listing's status was changed.",
    "released": "The release was published.",
    "revoked": "The release was revoked.",
    "profile": "Your publisher profile was saved.",
}


def _console_home(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    status: str | None,
    done: str | None,
    *,
    errors: FormErrors | None = None,
    form: dict[str, str] | None = None,
) -> Response[Any]:
    app = visitor.app
    if not visitor.signed_in:
        app.profiles.get(visitor.call)  # UNAUTHENTICATED: the sign-in page
    try:
        profile = app.profiles.get(visitor.call)
    except Unauthorized:
        return page(request, visitor, "console_not_publisher.html", status=403)
    params: dict[str, object] = {"limit": "100"}
    if status:
        params["status"] = status
    listings = app.publishing.list_listings(visitor.call, params)
    return page(
        request,
        visitor,
        "console.html",
        {
            "profile": profile,
            "listings": listings.items,
            "status": status or "",
            "statuses": [s.value for s in ListingStatus],
            "notice": _NOTICES.get(done or ""),
            "errors": errors or FormErrors(),
            "form": form
            or {"displayName": profile.display_name, "bioMarkdown": profile.bio.markdown},
            "profile_key": new_key(),
            "asset_kinds": ASSET_KINDS,
        },
        status=400 if errors else 200,
    )


def _edit_page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    view: Any,
    form: dict[str, str],
    *,
    errors: FormErrors | None = None,
    preview: bool = False,
    done: str | None = None,
    release_form: dict[str, str] | None = None,
    release_errors: FormErrors | None = None,
) -> Response[Any]:
    app = visitor.app
    releases: tuple[Any, ...] = ()
    chart = None
    moves: tuple[str, ...] = ()
    kind = form.get("assetKind", AssetKind.WHS_AGENT.value)
    if view is not None:
        listing = view.listing
        releases = app.publishing.list_releases(
            visitor.call, listing.listing_id, {"limit": "100"}
        ).items
        activity = app.storefront.install_activity(visitor.call, listing.listing_id)
        versions = {r.release_id: r.version for r in releases}
        chart = activity_chart(activity, versions)
        moves = _MOVES.get(listing.status, ())
        kind = listing.asset_kind.value
    failed = bool(errors) or bool(release_errors)
    return page(
        request,
        visitor,
        "console_listing.html",
        {
            "view": view,
            "form": form,
            "errors": errors or FormErrors(),
            "preview_html": render_markdown(form.get("description", "")) if preview else None,
            "notice": _NOTICES.get(done or ""),
            "releases": releases,
            "chart": chart,
            "moves": moves,
            "asset_kinds": ASSET_KINDS,
            "ref_fields": {k: _REFS[k] for k in _REFS_BY_KIND.get(kind, ())},
            "required_ref": REQUIRED_REF.get(AssetKind(kind)) if kind in ASSET_KINDS else None,
            "compat_fields": _COMPAT,
            "release_form": release_form or {},
            "release_errors": release_errors or FormErrors(),
            "keys": {name: new_key() for name in ("save", "status", "release", "revoke")},
        },
        status=400 if failed else 200,
    )
