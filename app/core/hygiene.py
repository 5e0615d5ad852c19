"""Input hygiene at the edge: control characters are refused before any view sees the request.

One ``before_request`` hook checks the path, the query string, form fields, upload file names and the
strings of a JSON body. NUL and the other C0/C1 control characters (and DEL) have no business in any of
them; PostgreSQL refuses NUL in text, which used to end in a 500 deep inside a view. Tab, carriage
return and line feed stay allowed in bodies (a note has lines), never in the path, the query or a file
name.

The refusal is in the shape of the interface: the REST API's ``{"error": {...}}`` with 422
``validation_error`` (as it answered before), Open311's 400 list of ``{code, description}`` (JSON or XML
by the URL's suffix), a 400 HTML error page otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, abort, request
from flask_babel import gettext as _

#: never allowed anywhere: C0 controls, DEL, C1 controls
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: in form values and JSON strings: the same, except tab, line feed and carriage return
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control(text: str, *, multiline: bool = False) -> bool:
    """Whether ``text`` holds a character refused at the edge (see the module docstring)."""
    return bool((_CONTROL_IN_TEXT if multiline else _CONTROL).search(text or ""))


def _json_offender(value: Any, where: str = "") -> str | None:
    """The path (``a.b[2]``) of the first JSON key or string holding a refused character, or None."""
    if isinstance(value, str):
        return where or "body" if has_control(value, multiline=True) else None
    if isinstance(value, dict):
        for key, child in value.items():
            label = f"{where}.{key}" if where else str(key)
            if has_control(str(key)):
                return "(key)"
            found = _json_offender(child, label)
            if found:
                return found
    if isinstance(value, list):
        for index, child in enumerate(value):
            found = _json_offender(child, f"{where}[{index}]")
            if found:
                return found
    return None


def find_offender() -> str | None:
    """Name the first part of the current request holding a refused character, or None.

    Never raises: a body that cannot be parsed is left to the view (it answers its own 400).
    """
    if has_control(request.path):
        return "path"
    for key, value in request.args.items(multi=True):
        if has_control(key) or has_control(value):
            return _printable(key)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in request.form.items(multi=True):
                if has_control(key) or has_control(value, multiline=True):
                    return _printable(key)
            for key, upload in request.files.items(multi=True):
                if has_control(key) or has_control(upload.filename or ""):
                    return _printable(key)
        elif request.is_json:
            try:
                body = request.get_json(silent=True)
                return _json_offender(body) if body is not None else None
            except RecursionError:  # absurdly nested: the view answers its own 400
                return None
    return None


def _printable(name: str) -> str:
    return _CONTROL.sub("?", name)[:64]


def refuse(field: str):
    """The 400 answer for a control character in ``field``, in the shape of the interface."""
    message = _(
        "The input “%(field)s” contains a control character (such as NUL). Remove it and try again.",
        field=field,
    )
    path = request.path
    if path.startswith("/api/"):
        from app.api.errors import ApiError

        if field == "path":  # no resource is named with a control character (the API's documented 404)
            return ApiError(404, "not_found", message, field=field).response()
        # the REST API answered 422 validation_error for such input before this hook: keep its contract
        return ApiError(
            422, "validation_error", message, field=field, details={"reason": "control_character"}
        ).response()
    if path.startswith("/open311/"):
        from app.open311.formats import render_errors

        fmt = "json" if path.endswith(".json") else "xml"
        return render_errors(fmt, 400, [{"code": 400, "description": message}])
    abort(400, description=message)


def init_app(app: Flask) -> None:
    """Register the hook (first, so no other hook or view sees such a request)."""

    def reject_control_characters():
        field = find_offender()
        if field is not None:
            return refuse(field)
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, reject_control_characters)
