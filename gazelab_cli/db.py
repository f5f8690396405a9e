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
