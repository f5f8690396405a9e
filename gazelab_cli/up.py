"""`gazelab up`: everything one machine needs (see gazelab_cli.supervisor)."""
from __future__ import annotations

import sys

import click

from gazelab.config import load_config


@click.command("up")
def up() -> None:
    """Start everything one machine needs: Redis (embedded), web server, one worker."""
    from gazelab_cli.supervisor import run_all
    sys.exit(run_all(load_config()))
