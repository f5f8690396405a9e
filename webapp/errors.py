"""JSON errors: every failure answers {"error": code, "message": text}, never an HTML 500.

The collection core raises domain errors (collection.errors); STATUS maps each kind to
its HTTP status here, the one place that knows about both."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from collection import errors as domain

STATUS: dict[type[domain.DomainError], int] = {
    domain.Invalid: 422, domain.Unsupported: 415, domain.Unauthorized: 401,
    domain.Forbidden: 403, domain.NotFound: 404, domain.Conflict: 409,
}

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a view to answer `status` with a JSON error."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    response = jsonify(error=code, message=message)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_json() -> bool:
    """Whether this request is answered in JSON rather than HTML: the APIs, /healthz, and
    any request whose client prefers JSON (fetch with Accept: application/json)."""
    return (request.path.startswith(("/api/", "/admin/api/")) or request.path == "/healthz"
            or request.accept_mimetypes.best == "application/json")


def status_of(exc: domain.DomainError) -> int:
    return next((status for kind, status in STATUS.items() if isinstance(exc, kind)), 400)


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(domain.DomainError)
    def _domain_error(exc: domain.DomainError):
        return error_response(status_of(exc), exc.code, exc.message)

    @app.errorhandler(StaleDataError)
    def _gone(_exc: StaleDataError):
        # a row this request changed was deleted meanwhile (an erasure racing an upload)
        return error_response(409, "deleted_meanwhile", "the data this request changes was deleted meanwhile; "
                              "nothing was stored")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "too_large"
            message = (exc.description if exc.description != type(exc).description   # a limit of our own
                       else f"request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes")
        else:
            message = exc.description or exc.name
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed; nothing was stored")
