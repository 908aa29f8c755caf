"""The FleetPrompt MCP server (contract §13), built on the official ``mcp`` SDK.

Tools, resources and a prompt over the core's use cases, for any transport:
the transport only says who calls and under which request id (an
:class:`Invocations`: bearer credentials on ``/mcp``, a configured token over
stdio). Every result is the JSON API's public shape (``wire.py``) as
structured content, with an output schema derived from the same ``TypedDict``,
plus a short text for the model. Every failure is a tool error whose
structured content is the contract's error envelope, request id included;
nothing else (no exception text, no stack trace) reaches the client.

Validation, authorization, tenant rules, idempotency and rate limits are the
core's: a tool turns its arguments into the same payload or query the JSON
API passes, and no bound is enforced here (schemas only describe them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Final, Protocol, TypeVar

import attrs
import jsonschema
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field
from typing_extensions import TypedDict

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    AssetKind,
    InstallIntentStatus,
    InstallTargetSystem,
    SearchSort,
)
from fleetprompt_core.base.errors import DomainError, ErrorCode
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fleetprompt_core.services.runtime import Call
from fleetprompt_http import wire
from fleetprompt_http.errors import domain_envelope, envelope
from fleetprompt_http.handling import Services
from fleetprompt_http.logs import log_event
from fleetprompt_http.mcp import text

__all__ = ["SERVER_NAME", "Invocation", "Invocations", "build_server"]

T = TypeVar("T")
W = TypeVar("W")

SERVER_NAME: Final = "fleetprompt"

_log = logging.getLogger("fleetprompt.mcp")

_INSTRUCTIONS: Final = (
    "FleetPrompt is a marketplace of AI agents and workflows. Search with search_listings, "
    "inspect with get_listing, list_releases, get_release and get_publisher (no sign-in "
    "needed). To install, a signed-in buyer calls create_install_intent for a listing "
    "(its latest release unless releaseId is given), then issue_install_token: the token is "
    "shown once and is single-use; the target system's server redeems it and performs the "
    "install. FleetPrompt itself never runs anything. Every error carries a code "
    "(NOT_FOUND, VALIDATION_FAILED, UNAUTHENTICATED, RATE_LIMITED, ...) and a request id."
)

_READ_ONLY: Final = ToolAnnotations(
    read_only_hint=True, idempotent_hint=True, open_world_hint=False
)
_WRITE: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
_ISSUE: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
_CANCEL: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


# --------------------------------------------------------------------------- transports


class Invocation(Protocol):
    """One tool call or resource read: its request id and how to run a use case for it."""

    @property
    def request_id(self) -> str: ...

    @property
    def caller(self) -> str | None:
        """Who calls, for the log (an external id), when known before the use case runs."""
        ...

    async def run(self, use_case: Callable[[Call], T]) -> T:
        """Run ``use_case`` with the caller's :class:`Call`, in a worker thread."""
        ...


class Invocations(Protocol):
    """What a transport provides: an :class:`Invocation` for each request's context."""

    def begin(self, request: ServerRequestContext[Any, Any]) -> Invocation: ...


# --------------------------------------------------------------------------- argument types

_CURSOR = Field(description="The nextCursor of the previous page (opaque).")
_LIMIT = Field(
    description=f"Items per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
    json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
)
_KEY = Field(
    description=f"Idempotency key (1..{limits.IDEMPOTENCY_KEY_MAX} printable ASCII). A retry "
    "with the same key and "
    "arguments returns the first answer. Without one, a key is derived from the arguments.",
)

Cursor = Annotated[str | None, _CURSOR]
Limit = Annotated[int | None, _LIMIT]
IdempotencyKey = Annotated[str | None, _KEY]


class TargetContext(TypedDict, total=False):
    """Where the target system should install (opaque ids, never authorization)."""

    telespaceId: str
    roomId: str
    orgId: str


# Concrete page shapes (the SDK derives a schema from a TypedDict, not from a generic one):
# each is exactly ``wire.PageWire`` of its items.


class ListingPage(TypedDict):
    items: list[wire.PublicListingWire]
    nextCursor: str | None


class ReleasePage(TypedDict):
    items: list[wire.PublicReleaseWire]
    nextCursor: str | None


class IntentPage(TypedDict):
    items: list[wire.InstallIntentWire]
    nextCursor: str | None


def _query(**values: object) -> dict[str, object]:
    """Arguments as the JSON API's query: what was given, enums as their values."""
    query: dict[str, object] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, AssetKind | SearchSort | InstallIntentStatus | InstallTargetSystem):
            query[name] = value.value
        else:
            query[name] = value
    return query


def derived_key(tool: str, arguments: Mapping[str, object]) -> str:
    """An idempotency key for a call that brought none: the same arguments, the same key,
    so a client's retry of a lost answer makes one intent, not two."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return f"mcp-{tool}-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


# --------------------------------------------------------------------------- results


def _error_result(body: wire.ErrorEnvelope, retry_after_s: int | None = None) -> CallToolResult:
    error = body["error"]
    line = f"{error['code']}: {error['message']}"
    if hint := error["details"].get("hint"):
        line += f" ({hint})"
    for problem in error["details"].get("fields", ()):
        line += f"\n- {problem['fieldName']}: {problem['message']}"
    if retry_after_s is not None:
        line += f"\nRetry after {retry_after_s} s."
    line += f"\nrequestId {error['requestId']}"
    return CallToolResult(
        content=[TextContent(type="text", text=line)], structured_content=body, is_error=True
    )


@contextmanager
def _logged(tool: str, invocation: Invocation) -> Iterator[dict[str, object]]:
    """One redacted line per tool call: request id, tool, outcome, latency, caller."""
    started = time.perf_counter()
    outcome: dict[str, object] = {"outcome": "INTERNAL"}
    try:
        yield outcome
    finally:
        log_event(
            _log,
            logging.INFO,
            "mcp tool",
            {
                "requestId": invocation.request_id,
                "tool": tool,
                "outcome": outcome["outcome"],
                "latencyMs": round((time.perf_counter() - started) * 1000, 3),
                "caller": invocation.caller,
            },
        )


async def _answer(
    invocations: Invocations,
    ctx: Context,
    tool: str,
    use_case: Callable[[Call], T],
    shape: Callable[[T], W],
    render: Callable[[W], str],
) -> CallToolResult:
    invocation = invocations.begin(ctx.request_context)
    with _logged(tool, invocation) as outcome:
        try:
            value = await invocation.run(use_case)
        except DomainError as exc:
            outcome["outcome"] = exc.code.value
            return _error_result(domain_envelope(exc, invocation.request_id), exc.retry_after_s)
        except Exception as exc:
            # The type only: an exception's text may hold SQL, a path or a secret.
            log_event(
                _log,
                logging.ERROR,
                "unhandled exception",
                {"requestId": invocation.request_id, "error": type(exc).__name__},
            )
            return _error_result(
                envelope(ErrorCode.INTERNAL, "Internal error.", invocation.request_id)
            )
        body = shape(value)
        outcome["outcome"] = "ok"
        return CallToolResult(
            content=[TextContent(type="text", text=render(body))],
            structured_content=body,
        )


_JSONRPC_CODES: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.NOT_FOUND: INVALID_PARAMS,
    ErrorCode.VALIDATION_FAILED: INVALID_PARAMS,
    ErrorCode.INTERNAL: INTERNAL_ERROR,
}


async def _resource(invocations: Invocations, ctx: Context, use_case: Callable[[Call], T]) -> T:
    """A resource read: a domain error becomes a JSON-RPC error whose data is the envelope."""
    invocation = invocations.begin(ctx.request_context)
    try:
        return await invocation.run(use_case)
    except DomainError as exc:
        raise MCPError(
            code=_JSONRPC_CODES.get(exc.code, INVALID_REQUEST),
            message=f"{exc.code.value}: {exc.message}",
            data=dict(domain_envelope(exc, invocation.request_id)),
        ) from None


# --------------------------------------------------------------------------- arguments


def _problem(error: jsonschema.ValidationError) -> str:
    """What is wrong, in the schema's words (never echoing the value sent)."""
    causes = [error, *error.context]
    for cause in causes:
        if cause.validator == "enum" and isinstance(cause.validator_value, list):
            return "must be one of " + ", ".join(map(str, cause.validator_value))
    for cause in causes:
        if cause.validator == "type":
            return f"must be of type {cause.validator_value}"
    return "is invalid (see the tool's input schema)"


def _path(parts: Iterable[str | int]) -> str:
    """A field path as the core writes it: ``targetContext.roomId``, ``tags[0]``."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "arguments"


def argument_problems(
    validator: jsonschema.protocols.Validator, arguments: object
) -> list[tuple[str, str]]:
    """``(field, message)`` for every argument that does not fit the input schema of
    ``validator``: the checks the SDK would make, reported like the core's (an unknown
    argument is one, as in the API)."""
    if not isinstance(arguments, Mapping):
        return [("arguments", "must be an object")]
    schema = validator.schema
    known = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    problems = [
        (str(name), "is not an argument of this tool") for name in arguments if name not in known
    ]
    for error in validator.iter_errors(dict(arguments)):
        if error.validator == "required" and isinstance(error.validator_value, list):
            problems += [
                (str(name), "is required")
                for name in error.validator_value
                if name not in arguments
            ]
        elif error.validator != "additionalProperties":
            # An optional argument is ``anyOf [its schema, null]``: report the first branch.
            branches = [
                cause
                for cause in error.context
                if not (cause.validator == "type" and cause.validator_value == "null")
            ]
            cause = (jsonschema.exceptions.best_match(branches) if branches else None) or error
            problems.append((_path(cause.absolute_path), _problem(cause)))
    return sorted(set(problems))


@attrs.define
class _ArgumentCheck:
    """Middleware: a ``tools/call`` whose arguments do not fit the tool's input schema is a
    ``VALIDATION_FAILED`` tool error naming each field, with its request id, like any other
    error of the contract (the SDK's own message would quote the values instead)."""

    server: MCPServer
    invocations: Invocations
    #: One validator per tool, built on first use (after every tool is registered).
    validators: dict[str, jsonschema.protocols.Validator] | None = None

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, Mapping):
            return await call_next(ctx)
        if self.validators is None:
            self.validators = {
                tool.name: jsonschema.Draft202012Validator(tool.input_schema)
                for tool in await self.server.list_tools()
            }
        name = params.get("name")
        validator = self.validators.get(name) if isinstance(name, str) else None
        if validator is None:
            return await call_next(ctx)
        problems = argument_problems(validator, params.get("arguments") or {})
        if not problems:
            return await call_next(ctx)
        invocation = self.invocations.begin(ctx)
        with _logged(str(name), invocation) as outcome:
            outcome["outcome"] = ErrorCode.VALIDATION_FAILED.value
            return _error_result(
                envelope(
                    ErrorCode.VALIDATION_FAILED,
                    "The arguments are invalid.",
                    invocation.request_id,
                    fields=problems,
                )
            )


# --------------------------------------------------------------------------- the server


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The SDK's constructor calls ``logging.basicConfig``; a placeholder handler makes that a
    no-op, so the host's logging (the server's redacting JSON lines) stays as configured."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


def build_server(services: Services, invocations: Invocations) -> MCPServer:
    """The MCP server over ``services``' use cases, its callers told by ``invocations``."""
    with _quiet_root_logger():
        server: MCPServer = MCPServer(
            SERVER_NAME,
            title="FleetPrompt",
            description="Find, inspect and install AI agents and workflows from FleetPrompt.",
            instructions=_INSTRUCTIONS,
            version=services.version,
        )
    _public_tools(server, services, invocations)
    _buyer_tools(server, services, invocations)
    _resources(server, services, invocations)
    _prompts(server)
    server.middleware.append(_ArgumentCheck(server, invocations))
    return server


def _public_tools(server: MCPServer, services: Services, invocations: Invocations) -> None:
    catalog = services.app.catalog

    @server.tool(
        title="Search listings",
        description="Search the published agents and workflows (no sign-in). Words match "
        "prefixes of name, summary, tags and categories; filters combine with AND. `sort` "
        "defaults to relevance with `q`, else updated. Page with `cursor`.",
        annotations=_READ_ONLY,
    )
    async def search_listings(
        ctx: Context,
        q: Annotated[
            str | None, Field(description=f"Words to find (at most {limits.QUERY_MAX} chars).")
        ] = None,
        tags: Annotated[list[str] | None, Field(description="Every tag must be present.")] = None,
        categories: Annotated[
            list[str] | None, Field(description="Every category must be present.")
        ] = None,
        assetKind: Annotated[AssetKind | None, Field(description="Kind of asset.")] = None,
        verified: Annotated[
            bool | None, Field(description="true: listings of verified publishers only.")
        ] = None,
        sort: Annotated[SearchSort | None, Field(description="Order of the results.")] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Annotated[CallToolResult, ListingPage]:
        params = _query(
            q=q,
            tags=tags,
            categories=categories,
            assetKind=assetKind,
            verified=verified or None,
            sort=sort,
            cursor=cursor,
            limit=limit,
        )
        return await _answer(
            invocations,
            ctx,
            "search_listings",
            lambda call: catalog.search(params, call),
            lambda page: wire.page(page, wire.public_listing),
            text.listings_text,
        )

    @server.tool(
        title="Get a listing",
        description="A published listing: its details, sanitized description, latest release "
        "and first page of releases. Anything not published is NOT_FOUND.",
        annotations=_READ_ONLY,
    )
    async def get_listing(
        ctx: Context, listingId: Annotated[str, Field(description="The listing's id.")]
    ) -> Annotated[CallToolResult, wire.ListingDetailWire]:
        return await _answer(
            invocations,
            ctx,
            "get_listing",
            lambda call: catalog.listing(listingId, call),
            wire.public_detail,
            text.listing_detail_text,
        )

    @server.tool(
        title="List a listing's releases",
        description="A published listing's releases, newest first. Revoked releases are "
        "hidden unless includeRevoked is true (then marked revoked).",
        annotations=_READ_ONLY,
    )
    async def list_releases(
        ctx: Context,
        listingId: Annotated[str, Field(description="The listing's id.")],
        includeRevoked: Annotated[
            bool | None, Field(description="Also list revoked releases.")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Annotated[CallToolResult, ReleasePage]:
        params = _query(includeRevoked=includeRevoked, cursor=cursor, limit=limit)
        return await _answer(
            invocations,
            ctx,
            "list_releases",
            lambda call: catalog.releases(listingId, params, call),
            lambda page: wire.page(page, wire.public_release),
            text.releases_text,
        )

    @server.tool(
        title="Get a release",
        description="One release of a published listing: version, references, compatibility, "
        "artifacts and notes.",
        annotations=_READ_ONLY,
    )
    async def get_release(
        ctx: Context, releaseId: Annotated[str, Field(description="The release's id.")]
    ) -> Annotated[CallToolResult, wire.PublicReleaseWire]:
        return await _answer(
            invocations,
            ctx,
            "get_release",
            lambda call: catalog.release(releaseId, call),
            wire.public_release,
            text.release_text,
        )

    @server.tool(
        title="Get a publisher",
        description="The public profile of a publisher of published listings: name, bio and "
        "verification (informational; it grants nothing).",
        annotations=_READ_ONLY,
    )
    async def get_publisher(
        ctx: Context,
        publisherId: Annotated[str, Field(description="The publisher's id.")],
    ) -> Annotated[CallToolResult, wire.PublicPublisherWire]:
        return await _answer(
            invocations,
            ctx,
            "get_publisher",
            lambda call: catalog.publisher(publisherId, call),
            wire.public_publisher,
            text.publisher_text,
        )


def _buyer_tools(server: MCPServer, services: Services, invocations: Invocations) -> None:
    installs = services.app.installs

    @server.tool(
        title="List my install intents",
        description="The signed-in buyer's install intents, newest first.",
        annotations=_READ_ONLY,
    )
    async def list_my_installs(
        ctx: Context,
        status: Annotated[
            InstallIntentStatus | None, Field(description="Only this status.")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Annotated[CallToolResult, IntentPage]:
        params = _query(status=status, cursor=cursor, limit=limit)
        return await _answer(
            invocations,
            ctx,
            "list_my_installs",
            lambda call: installs.list_intents(call, params),
            lambda page: wire.page(page, wire.install_intent),
            text.intents_text,
        )

    @server.tool(
        title="Create an install intent",
        description="Signed in: start installing a published listing on a target system "
        "(whs, agentromatic or agentelic). Without releaseId the latest release is pinned. "
        "Then call issue_install_token.",
        annotations=_WRITE,
    )
    async def create_install_intent(
        ctx: Context,
        listingId: Annotated[str, Field(description="The listing to install.")],
        targetSystem: Annotated[
            InstallTargetSystem, Field(description="The system that will install it.")
        ],
        releaseId: Annotated[
            str | None, Field(description="A published release of the listing (default latest).")
        ] = None,
        targetContext: Annotated[
            TargetContext | None, Field(description="Where to install, for the target system.")
        ] = None,
        idempotencyKey: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, wire.InstallIntentWire]:
        payload = _query(
            listingId=listingId,
            releaseId=releaseId,
            targetSystem=targetSystem,
            targetContext=dict(targetContext) if targetContext is not None else None,
        )
        key = idempotencyKey or derived_key("create_install_intent", payload)
        return await _answer(
            invocations,
            ctx,
            "create_install_intent",
            lambda call: installs.create_intent(call, payload, idempotency_key=key),
            lambda outcome: wire.install_intent(outcome.value),
            text.intent_text,
        )

    @server.tool(
        title="Issue an install token",
        description="Signed in: a short-lived, single-use install token for one of your "
        "install intents. It is shown once, in this result; issuing again revokes earlier "
        "tokens. Hand it to the target system, whose server redeems it.",
        annotations=_ISSUE,
    )
    async def issue_install_token(
        ctx: Context,
        installIntentId: Annotated[str, Field(description="Your install intent.")],
        ttlMs: Annotated[
            int | None,
            Field(
                description=f"Lifetime in ms, {limits.TOKEN_TTL_MIN_MS}..{limits.TOKEN_TTL_MAX_MS} "
                f"(default {limits.TOKEN_TTL_DEFAULT_MS}).",
                json_schema_extra={
                    "minimum": limits.TOKEN_TTL_MIN_MS,
                    "maximum": limits.TOKEN_TTL_MAX_MS,
                },
            ),
        ] = None,
        idempotencyKey: Annotated[
            str | None,
            Field(
                description="Idempotency key. A replay answers installToken null (the raw "
                "token is never stored); without a key every call issues a new token."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, wire.IssuedTokenWire]:
        payload = _query(ttlMs=ttlMs) or None
        # Every call without a key is a deliberate re-issue (the state machine allows it and
        # revokes the earlier tokens); a derived key would replay a null token instead.
        key = idempotencyKey or derived_key(
            "issue_install_token", {"intent": installIntentId, "nonce": time.time_ns()}
        )
        return await _answer(
            invocations,
            ctx,
            "issue_install_token",
            lambda call: installs.issue_token(call, installIntentId, payload, idempotency_key=key),
            lambda outcome: wire.issued_token(outcome.value),
            text.token_text,
        )

    @server.tool(
        title="Cancel an install intent",
        description="Signed in: cancel one of your install intents; its tokens stop working.",
        annotations=_CANCEL,
    )
    async def cancel_install_intent(
        ctx: Context,
        installIntentId: Annotated[str, Field(description="Your install intent.")],
        idempotencyKey: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, wire.InstallIntentWire]:
        key = idempotencyKey or derived_key(
            "cancel_install_intent", {"installIntentId": installIntentId}
        )
        return await _answer(
            invocations,
            ctx,
            "cancel_install_intent",
            lambda call: installs.cancel_intent(call, installIntentId, None, idempotency_key=key),
            lambda outcome: wire.install_intent(outcome.value),
            text.intent_text,
        )


def _resources(server: MCPServer, services: Services, invocations: Invocations) -> None:
    catalog = services.app.catalog

    @server.resource(
        "fleetprompt://listings/{listing_id}",
        name="listing",
        title="A published listing",
        description="The public detail of a published listing (the JSON API's listingDetail).",
        mime_type="application/json",
    )
    async def listing_resource(listing_id: str, ctx: Context) -> str:
        detail = await _resource(invocations, ctx, lambda call: catalog.listing(listing_id, call))
        return json.dumps({"listingDetail": wire.public_detail(detail)}, ensure_ascii=False)

    @server.resource(
        "fleetprompt://releases/{release_id}",
        name="release",
        title="A release of a published listing",
        description="One public release (the JSON API's release shape).",
        mime_type="application/json",
    )
    async def release_resource(release_id: str, ctx: Context) -> str:
        release = await _resource(invocations, ctx, lambda call: catalog.release(release_id, call))
        return json.dumps({"release": wire.public_release(release)}, ensure_ascii=False)


def _prompts(server: MCPServer) -> None:
    @server.prompt(
        name="find_and_install",
        title="Find and install an agent",
        description="Guide the user from a need to an install token for the right listing.",
    )
    def find_and_install(
        need: Annotated[str, Field(description="What the user wants an agent or workflow for.")],
        targetSystem: Annotated[
            str, Field(description="Where to install: whs, agentromatic or agentelic.")
        ] = "whs",
    ) -> str:
        return (
            f"Help me find and install a FleetPrompt listing for this need: {need}\n\n"
            "1. Call search_listings with a few words from the need (try tags or assetKind "
            "to narrow; verified=true for verified publishers only) and show me the best "
            "matches with their publishers.\n"
            "2. For the one I pick, call get_listing and summarise its description and latest "
            "release; call get_publisher if I ask who publishes it.\n"
            f"3. When I confirm, call create_install_intent with targetSystem {targetSystem!r} "
            "(this needs my sign-in), then issue_install_token.\n"
            "4. Give me the install token exactly once and tell me it is single-use and "
            "short-lived: the target system's server redeems it and performs the install; "
            "FleetPrompt itself runs nothing.\n"
            "If a tool answers an error, tell me its code and request id."
        )
