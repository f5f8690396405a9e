"""CSRF protection for cookie-authenticated (admin) requests: one token per login session,
sent back as the form field `csrf_token` or the header `X-CSRF-Token`; compared in
constant time. Used by the admin blueprint and by admin deletions through the API."""
from __future__ import annotations

import hmac
import secrets

from flask import request, session


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def csrf_valid() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf_token") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())
