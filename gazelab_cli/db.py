"""`gazelab db …`: the database schema (Alembic migrations)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from gazelab import migrate


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    url = current_app.config["GAZELAB"].database_url
    before = migrate.current_revision(url)
    migrate.upgrade(url)
    after = migrate.current_revision(url)
    click.echo(f"database at revision {after}" + (" (no change)" if before == after else
                                                  f" (was {before or 'empty'})"))


@db.command("recount")
@with_appcontext
def db_recount() -> None:
    """Rebuild the admin summary (counts per day/status, per reason, per screen cell) from
    the samples themselves; needed only after samples were written behind the ORM's back."""
    from collection.summary import recount
    from gazelab.db import session_scope
    url = current_app.config["GAZELAB"].database_url
    with session_scope(url) as session:
        sizes = recount(session)
    click.echo(f"summary rebuilt from {sizes['samples']} samples: {sizes['days']} day/status rows, "
               f"{sizes['reasons']} reason rows, {sizes['cells']} screen cells")
