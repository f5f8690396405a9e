"""`gazelab up`: everything one machine needs (see gazelab_cli.supervisor)."""
from __future__ import annotations

import sys

import click

from gazelab.config import load_config


@click.command("up")
@click.option("--only", "only", default="web,worker,beat", show_default=True,
              help="Which of web, worker, beat to start (comma-separated); beat once per installation.")
def up(only: str) -> None:
    """Start everything one machine needs: Redis (embedded), web server, one worker, beat."""
    from gazelab_cli.supervisor import PARTS, run_all
    parts = tuple(dict.fromkeys(part.strip() for part in only.split(",") if part.strip()))
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise click.BadParameter(f"choose from {', '.join(PARTS)} (got {only!r})", param_hint="--only")
    sys.exit(run_all(load_config(), parts))
