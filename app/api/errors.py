"""JSON error bodies of the REST API: ``{"error": {"code", "message", "field"?, "details"?}}``.

``code`` is for programs (stable, documented in the OpenAPI document), ``message`` for people (in the
caller's language). Domain errors from the services keep their own code and HTTP status.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from app.core.errors import DomainError


class ApiError(DomainError):
    """A refusal raised by the API layer itself (authentication, malformed input, unknown field)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, code=code, field=field, details=details)
        self.http_status = status
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.http_status

    def response(self) -> Response:
        return json_response({"error": self.to_dict()}, self.http_status, self.headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with UTF-8 text left readable (no ``\\u`` escapes)."""
    response = Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def domain_error_response(error: DomainError, extra_details: dict[str, Any] | None = None) -> Response:
    """Map a service's :class:`DomainError` onto its HTTP status with the same code and message."""
    body = error.to_dict()
    if extra_details:
        body["details"] = {**body.get("details", {}), **extra_details}
    return json_response({"error": body}, error.http_status)
