"""The admin dashboard: one blueprint under /admin, one module per area.

Every request under /admin needs a logged-in admin (auth.require_login runs before each
one) and every state-changing request needs the session's CSRF token.
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from webapp.admin import auth, export, live, overview, review, sessions, training  # noqa: E402,F401
