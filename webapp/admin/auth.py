"""Admin login/logout, the login requirement and CSRF protection for the whole blueprint.

Pages answer a redirect to /admin/login without a login; JSON endpoints (/admin/api/…)
answer 401 JSON. Every POST/PUT/PATCH/DELETE must carry the session's CSRF token, as the
form field `csrf_token` or the header `X-CSRF-Token` (fetch).

The login cookie holds the admin's id and session version; the version is checked against
the database on every request, so logout and password changes revoke every copy of every
cookie at once. Logins are throttled per IP and per name (webapp.ratelimit); an unknown
name takes as long as a wrong password.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, session, url_for

from collection.accounts import authenticate, end_sessions, session_version
from webapp import get_config, get_db, ratelimit
from webapp.admin import bp
from webapp.csrf import csrf_token, csrf_valid
from webapp.errors import ApiError, wants_json

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_ENDPOINTS = frozenset({"admin.login"})


def current_admin() -> str | None:
    """The logged-in admin's name, or None (usable by other blueprints). Checked once per
    request against the admin's session version in the database."""
    if "admin_checked" not in g:
        user_id, version = session.get("admin_user_id"), session.get("admin_version")
        valid = isinstance(user_id, int) and version is not None and \
            session_version(get_db(), user_id) == version
        g.admin_checked = session.get("admin_name") if valid else None
    return g.admin_checked


@bp.app_context_processor
def _template_helpers() -> dict:
    return {"csrf_token": csrf_token, "current_admin": current_admin}


@bp.before_request
def require_login_and_csrf():
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_admin():
        if wants_json() or request.method != "GET":
            raise ApiError(401, "login_required", "log in at /admin/login first")
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    if request.method in STATE_CHANGING and not csrf_valid():
        raise ApiError(400, "csrf_failed", "missing or wrong CSRF token; reload the page and retry")
    return None


def _safe_next(target: str | None) -> str:
    """Only a local /admin path; anything else (another host, //evil) goes to the overview."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and target.startswith("/admin"):
        return target
    return url_for("admin.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        wait = ratelimit.login_wait(get_config(), request.remote_addr or "unknown", name)
        if wait is not None:
            response = render_template("admin/login.html", error=f"Too many attempts; try again in {wait} s.",
                                       next=request.values.get("next", ""))
            return response, 429, {"Retry-After": str(wait)}
        db = get_db()
        user = authenticate(db, name, password) if name and password else None
        if user is not None:
            db.commit()
            session.clear()  # a fresh session (and CSRF token) after login
            session["admin_name"] = user.name
            session["admin_user_id"] = user.id
            session["admin_version"] = user.session_version or 0
            session.permanent = True
            return redirect(_safe_next(request.form.get("next")))
        error = "Wrong name or password."
    status = 401 if error else 200
    return render_template("admin/login.html", error=error,
                           next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    """Log out everywhere: every cookie of this admin, copied or not, stops working."""
    db = get_db()
    end_sessions(db, session["admin_user_id"])
    db.commit()
    session.clear()
    return redirect(url_for("admin.login"))
