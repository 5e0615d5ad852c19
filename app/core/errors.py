"""Domain errors raised by services and mapped by each interface (web flash, JSON 4xx, CLI message).

Every error carries a machine-readable ``code`` and a human message already translated for the
current locale where there is one.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a business rule refused the request. Maps to HTTP 400/422 by default."""

    code = "invalid"
    http_status = 422

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class ValidationError(DomainError):
    """Input is missing or malformed (HTTP 422). ``field`` names the offending input."""

    code = "validation_error"
    http_status = 422


class NotFound(DomainError):
    """The object does not exist or is outside the actor's scope (HTTP 404)."""

    code = "not_found"
    http_status = 404


class PermissionDenied(DomainError):
    """The actor may see the object but not do this to it (HTTP 403)."""

    code = "forbidden"
    http_status = 403


class Conflict(DomainError):
    """The object changed under the actor, or the action does not fit its state (HTTP 409)."""

    code = "conflict"
    http_status = 409
