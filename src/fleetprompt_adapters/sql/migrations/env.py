"""Alembic environment: runs against the engine handed over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from fleetprompt_adapters.sql.tables import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations through fleetprompt_adapters.sql.upgrade(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
