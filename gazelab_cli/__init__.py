"""The `gazelab` command: Flask's CLI (run/routes/shell) over the app factory, plus one
module per command group of GazeLab's own. The top layer: nothing imports this package
but its console script (and Celery's `-A gazelab_cli.worker`)."""
from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from gazelab.config import ConfigError, load_config
from gazelab_cli import admin, bench, data, db, train, up


def _create_app():
    from webapp import create_app
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True,
             load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """GazeLab: webcam gaze data collection, feature extraction and model training."""


for command in (db.db, up.up, admin.admin, data.demo_data, data.sim_video, data.sim_sheet, train.train, bench.bench):
    cli.add_command(command)


def main() -> None:
    try:
        load_config()  # validate once, before any command runs
    except ConfigError as exc:
        click.echo(f"gazelab: config error: {exc}", err=True)
        sys.exit(2)
    cli.main(prog_name="gazelab")
