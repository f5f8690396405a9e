"""`gazelab admin …`: admin accounts of the dashboard (/admin)."""
from __future__ import annotations

from typing import Callable

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection.accounts import create_admin, set_password
from gazelab.db import session_scope
from gazelab.schema import AdminUser


@click.group()
def admin() -> None:
    """Admin accounts of the dashboard (/admin)."""


@admin.command("create")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted.")
@with_appcontext
def admin_create(name: str, password: str) -> None:
    """Create an admin account NAME."""
    _save_account(create_admin, name, password)
    click.echo(f"admin {name!r} created")


@admin.command("list")
@with_appcontext
def admin_list() -> None:
    """List admin accounts and their last login."""
    with session_scope(current_app.config["GAZELAB"].database_url) as db:
        for user in db.scalars(select(AdminUser).order_by(AdminUser.name)):
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
            click.echo(f"{user.name}\tcreated {user.created_at:%Y-%m-%d %H:%M}\tlast login {last}")


@admin.command("reset-password")
@click.argument("name")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted.")
@with_appcontext
def admin_reset_password(name: str, password: str) -> None:
    """Set a new password for the admin NAME."""
    _save_account(set_password, name, password)
    click.echo(f"password of {name!r} changed")


def _save_account(change: Callable[[Session, str, str], object], name: str, password: str) -> None:
    """Apply an accounts change (create_admin / set_password) and commit; errors as CLI errors."""
    try:
        with session_scope(current_app.config["GAZELAB"].database_url) as db:
            change(db, name, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
