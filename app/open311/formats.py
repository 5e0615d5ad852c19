"""GeoReport v2 output: XML (the required format) and JSON (its "Spark convention" mapping).

Lists are bare JSON arrays — a single request too; the XML root and item elements are the
specification's (``services/service``, ``service_requests/request``, ``errors/error``,
``service_definition/attributes/attribute/values/value``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from flask import Response

XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
#: the item element of each list element
ITEM_OF = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for name, child in value.items():
            _fill(ET.SubElement(element, name), child)
    elif isinstance(value, list):
        item = ITEM_OF.get(element.tag, "item")
        for child in value:
            _fill(ET.SubElement(element, item), child)
    else:
        element.text = _text(value)


def to_xml(root: str, value: Any) -> str:
    """``value`` under a ``root`` element, preceded by the XML declaration with encoding UTF-8."""
    element = ET.Element(root)
    _fill(element, value)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="unicode")


def render(fmt: str, root: str, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The response in ``fmt`` (``xml`` or ``json``); ``root`` names the XML root element."""
    if fmt == "json":
        body, mimetype = json.dumps(value, ensure_ascii=False), JSON_TYPE
    else:
        body, mimetype = to_xml(root, value), XML_TYPE
    response = Response(body, status=status, content_type=mimetype)
    for name, header in (headers or {}).items():
        response.headers[name] = header
    return response


def render_errors(fmt: str, status: int, errors: list[dict[str, Any]]) -> Response:
    """The specification's error list with the HTTP status it prescribes."""
    return render(fmt, "errors", errors, status)
