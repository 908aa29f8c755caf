"""The ``fleetprompt`` command: serve, migrate, manage users and API tokens, demo data.

Every command reads the same ``FLEETPROMPT_*`` variables as the server. Output
meant for scripts goes to standard output (``tokens create`` prints the token
and nothing else); messages and errors go to standard error, and any failure
exits non-zero: 2 for invalid configuration or usage, 1 for everything else.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
import sqlalchemy as sa
import uvicorn

from fleetprompt_adapters import sql
from fleetprompt_core import FleetPrompt
from fleetprompt_core.domain.enums import Role
from fleetprompt_core.domain.errors import DomainError
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.app import SchemaNotCurrent, Storage, open_storage
from fleetprompt_http.settings import ConfigError, Settings

__all__ = ["main"]

_ROLES = {"publisher": Role.PUBLISHER, "admin": Role.ADMIN}


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"fleetprompt: error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except ConfigError as error:
        _fail(f"invalid configuration: {error}", 2)


@contextmanager
def _failures() -> Iterator[None]:
    """Turn the errors a command can meet into one clear line and an exit code."""
    try:
        yield
    except DomainError as error:
        details = "; ".join(f"{f.field_name}: {f.message}" for f in error.fields)
        _fail(f"{error.code.value}: {error.message}" + (f" ({details})" if details else ""))
    except SchemaNotCurrent as error:
        _fail(str(error))
    except sa.exc.SQLAlchemyError as error:
        # The driver's text may hold a password or SQL: name the kind of failure only.
        _fail(f"database error ({type(error).__name__}); check FLEETPROMPT_DATABASE_URL")


@contextmanager
def _storage(*, migrate: bool = False) -> Iterator[FleetPrompt]:
    settings = _settings()
    with _failures():
        storage = open_storage(settings)
        try:
            if migrate:
                _upgrade(storage)
            storage.check_schema()
            yield storage.app
        finally:
            storage.close()


def _upgrade(storage: Storage) -> None:
    if storage.engine is not None:
        sql.upgrade(storage.engine)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fleetprompt")
def main() -> None:
    """FleetPrompt: the marketplace and distribution server for agent products.

    Configuration comes from FLEETPROMPT_* environment variables (see
    docs/configuration.md); by default the data lives in ./fleetprompt.db.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (applies pending migrations on SQLite first)."""
    settings = _settings()
    if settings.uses_memory and workers > 1:
        _fail("memory:// keeps data inside one process; use --workers 1 or a database", 2)
    with _failures():
        storage = open_storage(settings)
        try:
            if settings.uses_sqlite:
                _upgrade(storage)
            storage.check_schema()
        finally:
            storage.close()
    if settings.cursor_key is None:
        # Every worker must sign cursors with the same key; this one lasts until restart.
        os.environ["FLEETPROMPT_CURSOR_KEY"] = secrets.token_hex(32)
    click.echo(f"FleetPrompt serving on http://{host}:{port} ({workers} worker(s))", err=True)
    uvicorn.run(
        "fleetprompt_http.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to FLEETPROMPT_DATABASE_URL."""
    settings = _settings()
    if settings.uses_memory:
        _fail("memory:// has no schema to migrate", 2)
    with _storage(migrate=True):
        click.echo("database is at the latest schema revision", err=True)


@main.group()
def users() -> None:
    """Users and their roles (roles come only from an admin or this command)."""


@users.command("create")
@click.argument("external_id")
@click.option("--display-name", default=None, help="Shown as the publisher's default name.")
@click.option("--publisher", is_flag=True, help="Grant the publisher role.")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
def users_create(external_id: str, display_name: str | None, publisher: bool, admin: bool) -> None:
    """Create a user (or give an existing one the roles asked for); prints the user id."""
    roles = [role for flag, role in ((publisher, Role.PUBLISHER), (admin, Role.ADMIN)) if flag]
    with _storage() as app:
        user = app.operator.ensure_user(external_id, display_name=display_name, roles=roles)
    click.echo(user.user_id)


def _role_change(verb: str) -> Callable[[str, str], None]:
    def change(external_id: str, role: str) -> None:
        changes = {verb: [_ROLES[role]]}
        with _storage() as app:
            user = app.operator.set_roles(external_id, **changes)
        click.echo(" ".join(sorted(r.value for r in user.roles)) or "(no roles)")

    return change


_ROLE_OPTION = click.option(
    "--role", required=True, type=click.Choice(sorted(_ROLES)), help="The role."
)
users.command("grant", help="Grant a role; prints the user's roles.")(
    click.argument("external_id")(_ROLE_OPTION(_role_change("grant")))
)
users.command("revoke", help="Revoke a role; prints the user's roles.")(
    click.argument("external_id")(_ROLE_OPTION(_role_change("revoke")))
)


@main.group()
def tokens() -> None:
    """Personal API tokens (bearer credentials; only their hashes are stored)."""


@tokens.command("create")
@click.argument("external_id")
@click.option("--name", default=None, help="A label for the token (1..80 characters).")
@click.option(
    "--expires-in-days", default=None, type=int, help="Expiry, 1..3650 days (default: none)."
)
def tokens_create(external_id: str, name: str | None, expires_in_days: int | None) -> None:
    """Create an API token for an existing user; prints the token and nothing else."""
    with _storage() as app:
        issued = app.credentials.issue_api_token(
            external_id, name=name, expires_in_days=expires_in_days
        )
    click.echo(issued.api_token)
    click.echo(f"token id: {issued.token_id} (keep the token secret; it is shown once)", err=True)


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke an API token by its id (pat_…)."""
    with _storage() as app:
        app.credentials.revoke_api_token(token_id)
    click.echo(f"revoked {token_id}", err=True)


@main.command()
def purge() -> None:
    """Run the retention job: expire old intents and tokens, drop old idempotency records."""
    with _storage() as app:
        report = app.retention.run()
    click.echo(
        f"intents expired: {report.intents_expired}, tokens expired: {report.tokens_expired}, "
        f"idempotency records dropped: {report.idempotency_records_dropped}"
    )


@main.command()
def demo() -> None:
    """Fill the configured database with a small marketplace and print tokens to try it."""
    settings = _settings()
    with _storage(migrate=not settings.uses_memory) as app:
        lines = _fill_demo(app)
    for line in lines:
        click.echo(line)


def _key() -> str:
    return str(uuid.uuid4())


def _fill_demo(app: FleetPrompt) -> list[str]:
    """Publishers, a buyer and an admin; a listing of each asset kind; one revoked release."""
    suffix = secrets.token_hex(3)
    acme = f"demo-acme-{suffix}"
    flows = f"demo-flows-{suffix}"
    buyer = f"demo-buyer-{suffix}"
    admin = f"demo-admin-{suffix}"
    app.operator.ensure_user(acme, display_name="Acme Agents", roles=[Role.PUBLISHER])
    app.operator.ensure_user(flows, display_name="Flowworks", roles=[Role.PUBLISHER])
    app.operator.ensure_user(buyer, display_name="Bea Buyer")
    app.operator.ensure_user(admin, display_name="Ada Admin", roles=[Role.ADMIN])
    acme_call, flows_call = Call.as_user(acme), Call.as_user(flows)
    app.profiles.put(
        acme_call, {"displayName": "Acme Agents", "bioMarkdown": "We build **support** agents."}
    )
    app.profiles.put(flows_call, {"displayName": "Flowworks", "bioMarkdown": "Workflows."})
    catalogue = [
        (
            acme_call,
            "whs_agent",
            "Support Triage Agent",
            "Routes support tickets to the right queue.",
            ["support", "triage"],
            {"whsAgentId": "agent-triage-1", "whsDeploymentId": "dep-1"},
        ),
        (
            acme_call,
            "whs_agent",
            "Meeting Notes Agent",
            "Summarises meetings and files action items.",
            ["productivity", "meetings"],
            {"whsAgentId": "agent-notes-7"},
        ),
        (
            flows_call,
            "agentromatic_workflow",
            "Invoice Approval Flow",
            "Routes invoices for approval with an audit trail.",
            ["finance", "approvals"],
            {"agentromaticWorkflowId": "wf-invoice-42"},
        ),
        (
            flows_call,
            "spec_asset",
            "Onboarding Checklist Spec",
            "A spec for employee onboarding agents.",
            ["hr", "onboarding"],
            {"specAssetId": "spec-onboarding-3"},
        ),
    ]
    first_listing = first_release = ""
    for call, kind, name, summary, tags, refs in catalogue:
        listing = app.publishing.create_listing(
            call,
            {
                "assetKind": kind,
                "name": name,
                "summary": summary,
                "description": {"markdown": f"# {name}\n\n{summary}"},
                "tags": tags,
                "categories": ["demo"],
                "links": {"docsUrl": "https://docs.example.com/" + tags[0]},
            },
            idempotency_key=_key(),
        ).value.listing
        release = {"refs": refs, "notes": {"markdown": "Initial release."}}
        first = app.publishing.publish_release(
            call, listing.listing_id, {"version": "1.0.0", **release}, idempotency_key=_key()
        ).value
        app.publishing.change_status(
            call, listing.listing_id, {"status": "published"}, idempotency_key=_key()
        )
        if not first_listing:
            first_listing, first_release = listing.listing_id, first.release_id
            bad = app.publishing.publish_release(
                call, listing.listing_id, {"version": "1.0.1", **release}, idempotency_key=_key()
            ).value
            app.publishing.revoke_release(
                call, bad.release_id, {"reason": "Broke ticket routing."}, idempotency_key=_key()
            )
    issued = {
        who: app.credentials.issue_api_token(who, name="demo").api_token
        for who in (acme, buyer, admin)
    }
    return [
        f"# demo marketplace: 4 published listings (publisher tokens: {acme}, buyer: {buyer})",
        f"export FP_PUBLISHER_TOKEN={issued[acme]}",
        f"export FP_BUYER_TOKEN={issued[buyer]}",
        f"export FP_ADMIN_TOKEN={issued[admin]}",
        f"export FP_LISTING_ID={first_listing}",
        f"export FP_RELEASE_ID={first_release}",
    ]
