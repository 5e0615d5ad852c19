"""Shape checks of API input (JSON bodies, query parameters): types, lengths, unknown fields.

Business validation stays in the services; this module only makes sure that what reaches them has the
types they expect, so a malformed request answers 400/422 and never 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request
from flask_babel import gettext as _

from app.api.errors import ApiError

MAX_ID = 2**31 - 1
ASCII_DIGITS = re.compile(r"^[0-9]{1,10}$")
REF_RE = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def invalid(field: str, message: str, code: str = "validation_error") -> ApiError:
    return ApiError(422, code, message, field=field, details={"fields": {field: message}})


def _clean_text(value: str) -> bool:
    """Whether a string can be stored: no NUL character and valid UTF-8 (no lone surrogates)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_strings(value: Any, where: str = "body") -> None:
    """Raise :class:`ApiError` 422 if any string in ``value`` holds NUL or invalid Unicode."""
    if isinstance(value, str):
        if not _clean_text(value):
            raise invalid(where, _("%(field)s contains characters that cannot be stored.", field=where))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_strings(key, where)
            check_strings(item, str(key) if isinstance(key, str) and _clean_text(key) else where)
    elif isinstance(value, list):
        for item in value:
            check_strings(item, where)


def json_body() -> dict[str, Any]:
    """The request's JSON object. Raises :class:`ApiError` 400 for another content type, malformed
    JSON or a body that is not an object, 422 for text that cannot be stored."""
    if not request.is_json:
        raise ApiError(400, "json_required", _("Send the body as JSON with the header Content-Type: application/json."))
    try:
        data = request.get_json(silent=True)
        if data is None and request.get_data(cache=True):
            raise ApiError(400, "malformed_json", _("The body is not valid JSON."))
        if not isinstance(data, dict):
            raise ApiError(400, "json_object_required", _("The body must be a JSON object."))
        check_strings(data)
    except RecursionError:  # absurdly deep nesting: not a request any client means
        raise ApiError(400, "malformed_json", _("The body is not valid JSON.")) from None
    return data


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise :class:`ApiError` 422 naming the first field the operation does not know."""
    known = set(allowed)
    for name in body:
        if name not in known:
            raise invalid(
                name,
                _("Unknown field %(field)s; allowed: %(allowed)s.", field=name, allowed=", ".join(sorted(known))),
                code="unknown_field",
            )


def optional_text(body: Mapping[str, Any], name: str, max_length: int) -> str | None:
    """A string field (or null). Raises :class:`ApiError` 422 for another type or a too long text."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, _("%(field)s must be a string.", field=name))
    if len(value) > max_length:
        raise invalid(name, _("%(field)s is longer than %(max)d characters.", field=name, max=max_length))
    return value


def optional_number(body: Mapping[str, Any], name: str) -> float | str | None:
    """A number (or a numeric string, or null). Raises :class:`ApiError` 422 otherwise."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(name, _("%(field)s must be a number.", field=name))
    if isinstance(value, str) and len(value) > 32:
        raise invalid(name, _("%(field)s must be a number.", field=name))
    return value


def optional_reference(body: Mapping[str, Any], name: str, max_length: int = 100) -> int | str | None:
    """An id (integer) or a code/name (string) of an organisation object. Raises :class:`ApiError` 422."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(name, _("%(field)s must be an id or a code.", field=name))
    if isinstance(value, int):
        if not 1 <= value <= MAX_ID:
            raise invalid(name, _("%(field)s is not a valid id.", field=name))
        return value
    value = value.strip()
    if len(value) > max_length:
        raise invalid(name, _("%(field)s is longer than %(max)d characters.", field=name, max=max_length))
    if value.isdigit():
        if not ASCII_DIGITS.match(value) or not 1 <= int(value) <= MAX_ID:
            raise invalid(name, _("%(field)s is not a valid id.", field=name))
        return int(value)
    return value


def query_id(args: Mapping[str, str], name: str) -> None:
    """Raise :class:`ApiError` 422 unless the query parameter ``name`` is absent or a valid id."""
    value = (args.get(name) or "").strip()
    if value and (not ASCII_DIGITS.match(value) or not 1 <= int(value) <= MAX_ID):
        raise invalid(name, _("%(field)s is a number.", field=name))


def query_int(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]. Raises :class:`ApiError` 422 otherwise."""
    value = (args.get(name) or "").strip()
    if not value:
        return default
    if not ASCII_DIGITS.match(value) or not low <= int(value) <= high:
        raise invalid(
            name, _("%(field)s must be a whole number from %(low)d to %(high)d.", field=name, low=low, high=high)
        )
    return int(value)


def check_query_strings() -> None:
    """Raise :class:`ApiError` 422 if a query parameter holds characters that cannot be stored."""
    for name, value in request.args.items(multi=True):
        if not _clean_text(name) or not _clean_text(value):
            raise invalid(name if _clean_text(name) else "query", _("A query parameter contains invalid characters."))


def valid_ref(ref: str) -> bool:
    """Whether ``ref`` looks like a reference number at all (anything else is simply not found)."""
    return bool(REF_RE.match(ref or ""))
