"""The `gazelab` command: Flask's CLI (run/routes/shell) plus GazeLab's own subcommands."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from gazelab.config import ConfigError, load_config


def _create_app():
    from webapp import create_app
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True,
             load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """GazeLab: webcam gaze data collection, feature extraction and model training."""


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from gazelab import migrate
    url = current_app.config["GAZELAB"].database_url
    before = migrate.current_revision(url)
    migrate.upgrade(url)
    after = migrate.current_revision(url)
    click.echo(f"database at revision {after}" + (" (no change)" if before == after else
                                                  f" (was {before or 'empty'})"))


@cli.command("up")
def up() -> None:
    """Start everything one machine needs: Redis (embedded), web server, one worker."""
    from gazelab.supervisor import run_all
    sys.exit(run_all(load_config()))


@cli.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object."""


# COMMANDS (one block each; keep this marker)


def main() -> None:
    try:
        load_config()  # validate once, before any command runs
    except ConfigError as exc:
        click.echo(f"gazelab: config error: {exc}", err=True)
        sys.exit(2)
    cli.main(prog_name="gazelab")
