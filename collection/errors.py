"""Domain errors of the collection core. Each carries a short machine-readable `code` and a
one-line `message` for people; the web app maps the class to an HTTP status."""
from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class NotFound(DomainError):
    """The thing named does not exist (or is not visible to the caller)."""


class Conflict(DomainError):
    """The request is well-formed but clashes with the current state."""


class Invalid(DomainError):
    """A value is well-formed but not acceptable (off screen, out of range, ...)."""


class Unsupported(DomainError):
    """The payload is of a kind we cannot process (not a picture we can read)."""


class Unauthorized(DomainError):
    """No credentials were given."""


class Forbidden(DomainError):
    """Credentials were given but do not grant this."""

