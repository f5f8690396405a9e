"""Security headers on every response: a strict Content-Security-Policy (scripts and
styles from our own origin only, no inline code), no framing, no MIME sniffing, no
referrer; the camera is allowed only on the pages that film (the volunteer page and the
admin's live tracking)."""
from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
CAMERA_PAGES = ("/", "/admin/live")


def _headers(response: Response) -> Response:
    camera = "(self)" if request.path in CAMERA_PAGES else "()"
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["Permissions-Policy"] = f"camera={camera}, microphone=(), geolocation=()"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def register(app: Flask) -> None:
    app.after_request(_headers)
