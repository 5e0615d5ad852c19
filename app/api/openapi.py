"""The OpenAPI 3.1 document of ``/api/v1``, built from the same data the API runs on.

States, triggers and trigger inputs come from ``workflows.definitions``; channels and urgencies from
the case model; so the document cannot drift from what the engine accepts. The reference page
(``/api/v1/docs``) is rendered from this document too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from app.api.inputs import MAX_ID
from app.cases import attachments
from app.cases.models import CHANNELS, URGENCIES
from app.cases.queries import MAX_PAGE
from app.cases.services import MAX_DESCRIPTION, MAX_NOTE
from app.reports.indicators import FIGURES, SLICES
from app.reports.rates import GROUPS
from workflows import definitions as d

API_VERSION = "1.0.0"
#: channels an integration may name; ``open311`` belongs to the Open311 endpoint
API_CHANNELS = tuple(c for c in CHANNELS if c != "open311")
CREATE_FIELDS = {
    "category",
    "description",
    "channel",
    "compound",
    "building",
    "unit",
    "urgency",
    "resident_name",
    "resident_phone",
    "address_text",
    "latitude",
    "longitude",
    "external_ref",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
INSTANT = {"type": "string", "format": "date-time"}
ID_OR_CODE = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"type": "string", "maxLength": 100}]}


def _object(properties: dict[str, Any], required: list[str] | None = None, **extra) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    schema.update(extra)
    return schema


def _input_schema(spec: d.Input) -> dict[str, Any]:
    if spec.kind == "bool":
        schema: dict[str, Any] = {"type": "boolean"}
    elif spec.kind == "choice":
        schema = {"type": "string", "enum": [code for code, _zh, _en in spec.choices]}
    else:
        schema = {"type": "string", "maxLength": spec.max_length}
        if spec.required:
            schema["minLength"] = 1
    description = spec.en
    if spec.kind == "choice":
        description += ": " + "; ".join(f"`{code}` {en}" for code, _zh, en in spec.choices)
    if spec.required_if:
        description += f" (required when `{spec.required_if[0]}` is `{spec.required_if[1]}`)"
    schema["description"] = description
    return schema


def person_triggers() -> list[d.Trigger]:
    """Triggers a person can fire (``route`` and ``auto_close`` belong to the system)."""
    return [t for t in d.TRIGGERS.values() if not t.system_only]


def transition_schema(trigger: d.Trigger) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "trigger": {"type": "string", "const": trigger.name},
        "version": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "The case version you saw; a different current version answers 409 version_conflict.",
        },
    }
    for spec in trigger.inputs:
        properties[spec.name] = _input_schema(spec)
    roles = ", ".join(sorted(trigger.roles))
    return {
        "title": trigger.name,
        "description": f"{trigger.en} ({trigger.zh}). Roles: {roles}.",
        "type": "object",
        "properties": properties,
        "required": ["trigger", *[i.name for i in trigger.inputs if i.required]],
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    named = _object({"id": INTEGER, "code": STRING, "name": STRING})
    person = _object({"id": INTEGER, "username": STRING, "display_name": STRING})
    summary_properties = {
        "ref": {"type": "string", "description": "Reference number, e.g. KSM-20261125-0001."},
        "state": {"type": "string", "enum": list(d.STATES)},
        "state_label": STRING,
        "workflow": {"type": "string", "enum": list(d.WORKFLOWS)},
        "category": _object({"code": STRING, "name": STRING}),
        "urgency": {"type": "string", "enum": list(URGENCIES)},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "description": STRING,
        "compound": _nullable(_ref("Named")),
        "assigned_grid_worker": _nullable(_ref("Person")),
        "needs_routing": BOOLEAN,
        "reopen_count": INTEGER,
        "resolution": _nullable({"type": "string", "enum": list(d.CLOSING_RESOLUTIONS)}),
        "resolution_label": _nullable(STRING),
        "created_at": INSTANT,
        "updated_at": INSTANT,
        "closed_at": _nullable(INSTANT),
        "due_at": _nullable({**INSTANT, "description": "Deadline of the current step."}),
        "resolve_by": _nullable({**INSTANT, "description": "Deadline of the whole case."}),
        "escalation_level": {
            "type": "integer",
            "minimum": 0,
            "maximum": 3,
            "description": "0 normal, 1 warned, 2 overdue (yellow card), 3 long overdue (red card).",
        },
        "shelved": {"type": "boolean", "description": "Supervisor-approved long-running case, clock stopped."},
        "version": {"type": "integer", "description": "Optimistic-lock version; send it back with a transition."},
    }
    attachment = _object(
        {
            "id": INTEGER,
            "filename": STRING,
            "content_type": STRING,
            "size": INTEGER,
            "sha256": STRING,
            "event_id": _nullable(INTEGER),
            "created_at": INSTANT,
        }
    )
    detail_properties = {
        **summary_properties,
        "street": _nullable(_ref("Named")),
        "community": _nullable(_ref("Named")),
        "building": _nullable(_object({"id": INTEGER, "name": STRING})),
        "unit": _nullable(STRING),
        "address_text": _nullable(STRING),
        "latitude": _nullable({"type": "number"}),
        "longitude": _nullable({"type": "number"}),
        "resident": _object(
            {
                "name": _nullable(STRING),
                "phone": _nullable({"type": "string", "description": "Masked (138****5678) for property managers."}),
            }
        ),
        "grid": _nullable(_ref("Named")),
        "firm": _nullable(_ref("Named")),
        "branch": _nullable(_ref("Named")),
        "station": _nullable(_ref("Named")),
        "state_entered_at": INSTANT,
        "firm_dispatched_at": _nullable(INSTANT),
        "resolved_on_site": BOOLEAN,
        "duplicate_of": _nullable(STRING),
        "allowed_triggers": {
            "type": "array",
            "items": {"type": "string", "enum": list(d.TRIGGERS)},
            "description": "What the caller may fire now (role, scope, state and the case's rules).",
        },
        "attachments": {"type": "array", "items": _ref("Attachment")},
    }
    event = _object(
        {
            "id": INTEGER,
            "kind": STRING,
            "kind_label": STRING,
            "created_at": INSTANT,
            "actor": _object({"id": _nullable(INTEGER), "name": STRING, "role": STRING, "role_label": STRING}),
            "trigger": _nullable(STRING),
            "trigger_label": _nullable(STRING),
            "from_state": _nullable(STRING),
            "to_state": _nullable(STRING),
            "note": _nullable(STRING),
            "payload": _nullable({"type": "object"}),
        }
    )
    category = _object(
        {
            "code": STRING,
            "name": STRING,
            "name_zh": STRING,
            "name_en": STRING,
            "description": _nullable(STRING),
            "default_urgency": {"type": "string", "enum": list(URGENCIES)},
            "workflow": {"type": "string", "enum": list(d.WORKFLOWS)},
            "workflow_label": STRING,
            "active": BOOLEAN,
            "attributes": {
                "type": "array",
                "items": _object(
                    {
                        "code": STRING,
                        "datatype": {
                            "type": "string",
                            "enum": ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"],
                        },
                        "required": BOOLEAN,
                        "order": _nullable(INTEGER),
                        "description": _nullable(STRING),
                        "values": {"type": "array", "items": _object({"key": STRING, "name": _nullable(STRING)})},
                    }
                ),
            },
        }
    )
    compound = _object(
        {
            "id": INTEGER,
            "code": STRING,
            "name": STRING,
            "address": _nullable(STRING),
            "grid_id": _nullable(INTEGER),
            "buildings": {"type": "array", "items": _object({"id": INTEGER, "name": STRING})},
        }
    )
    community = _object(
        {
            "id": INTEGER,
            "code": STRING,
            "name": STRING,
            "grids": {"type": "array", "items": _ref("Named")},
            "compounds": {"type": "array", "items": compound},
            "stations": {"type": "array", "items": _ref("Named")},
        }
    )
    rate_row = _object(
        {
            "id": _nullable(INTEGER),
            "code": _nullable(STRING),
            "name": _nullable(STRING),
            "valid_follow_ups": INTEGER,
            "contacted": INTEGER,
            "resolved": INTEGER,
            "satisfied": INTEGER,
            "basically_satisfied": INTEGER,
            "unsatisfied": INTEGER,
            "response_rate": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "resolution_rate": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "satisfaction_rate": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "composite": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
        }
    )
    return {
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"type": "string", "description": "Machine-readable, e.g. trigger_not_allowed."},
                        "message": {"type": "string", "description": "For people, in the caller's language."},
                        "field": {"type": "string", "description": "The input at fault, when there is one."},
                        "detail": STRING,
                        "details": {
                            "type": "object",
                            "description": "E.g. `allowed` (triggers possible now), `state`, `version`, "
                            "`fields` (input → message).",
                        },
                    },
                    required=["code", "message"],
                )
            }
        ),
        "Named": named,
        "Person": person,
        "Attachment": attachment,
        "CaseSummary": _object(summary_properties),
        "Case": _object(detail_properties),
        "CreatedCase": _object(
            {
                **detail_properties,
                "possible_duplicates": {
                    "type": "array",
                    "items": STRING,
                    "description": "Open cases of the same category in the same compound from the last 7 days.",
                },
            }
        ),
        "CaseList": _object(
            {
                "items": {"type": "array", "items": _ref("CaseSummary")},
                "next_cursor": _nullable(
                    {"type": "string", "description": "Pass as `cursor` for the next page; null on the last page."}
                ),
            }
        ),
        "Event": event,
        "EventList": _object({"items": {"type": "array", "items": _ref("Event")}}),
        "TransitionResult": _object({"case": _ref("Case"), "event": _ref("Event")}),
        "EventResult": _object({"event": _ref("Event")}),
        "AttachmentResult": _object(
            {"event": _ref("Event"), "attachments": {"type": "array", "items": _ref("Attachment")}}
        ),
        "Category": category,
        "CategoryList": _object({"items": {"type": "array", "items": _ref("Category")}}),
        "Organisation": _object(
            {
                "streets": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": INTEGER,
                            "code": STRING,
                            "name": STRING,
                            "communities": {"type": "array", "items": community},
                        }
                    ),
                },
                "firms": {"type": "array", "items": _ref("Named")},
            }
        ),
        "RateRow": rate_row,
        "IndicatorRow": _object(
            {
                "key": {"type": ["integer", "string", "null"]},
                "code": _nullable(STRING),
                "name": _nullable(STRING),
                **{name: _nullable(NUMBER) for name in FIGURES},
                "counts": {"type": "object", "additionalProperties": NUMBER},
            }
        ),
        "Indicators": _object(
            {
                "period": _object(
                    {
                        "label": STRING,
                        "kind": {"type": "string", "enum": ["month", "quarter", "year", "range"]},
                        "start": INSTANT,
                        "end": INSTANT,
                    }
                ),
                "group": {"type": "string", "enum": list(SLICES)},
                "as_of": INSTANT,
                "weights": {"type": "object", "additionalProperties": NUMBER},
                "definitions": {
                    "type": "object",
                    "additionalProperties": _object({"label": STRING, "how": STRING, "percent": BOOLEAN}),
                },
                "rows": {"type": "array", "items": _ref("IndicatorRow")},
                "total": _ref("IndicatorRow"),
            }
        ),
        "Rating": _object(
            {
                "code": STRING,
                "name": STRING,
                "score": _nullable(NUMBER),
                "base_score": _nullable(NUMBER),
                "grade": {"type": ["string", "null"], "enum": ["A", "B", "C", "D", None]},
                "priority": BOOLEAN,
                "restricted": BOOLEAN,
                "restricted_until": _nullable({"type": "string", "format": "date"}),
                "components": {"type": "object"},
                "adjustments": {
                    "type": "array",
                    "items": _object({"points": NUMBER, "reason": STRING, "by": STRING, "at": INSTANT}),
                },
            }
        ),
        "Ratings": _object({"month": STRING, "frozen": BOOLEAN, "items": {"type": "array", "items": _ref("Rating")}}),
        "Rates": _object(
            {
                "period": _object({"label": STRING, "start": INSTANT, "end": INSTANT}),
                "group_by": {"type": "string", "enum": list(GROUPS)},
                "weights": _object(
                    {
                        "response": {"type": "number"},
                        "resolution": {"type": "number"},
                        "satisfaction": {"type": "number"},
                    }
                ),
                "rows": {"type": "array", "items": _ref("RateRow")},
                "total": _ref("RateRow"),
            }
        ),
        "Me": _object(
            {
                "id": INTEGER,
                "username": STRING,
                "display_name": STRING,
                "role": STRING,
                "role_label": STRING,
                "scope": _nullable(_object({"kind": STRING, "id": INTEGER, "name": STRING})),
            }
        ),
        "CaseCreate": {
            "type": "object",
            "properties": {
                "category": {
                    "oneOf": [
                        {"type": "string", "minLength": 1, "maxLength": 32},
                        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    ],
                    "description": "Category code (see GET /categories).",
                },
                "description": {"type": "string", "minLength": 5, "maxLength": MAX_DESCRIPTION},
                "channel": {"type": "string", "enum": list(API_CHANNELS), "default": "api"},
                "compound": {**ID_OR_CODE, "description": "Compound id or code, e.g. X01."},
                "building": {**ID_OR_CODE, "description": "Building id, or its name within the compound (e.g. 3栋)."},
                "unit": {"type": "string", "maxLength": 50},
                "urgency": _nullable({"type": "string", "enum": list(URGENCIES)}),
                "resident_name": {"type": "string", "maxLength": 50},
                "resident_phone": {
                    "type": "string",
                    "maxLength": 20,
                    "description": "Mobile number (11 digits starting with 1); needed for window/phone/grid channels.",
                },
                "address_text": {"type": "string", "maxLength": 200},
                "latitude": _nullable({"type": "number", "minimum": -90, "maximum": 90}),
                "longitude": _nullable({"type": "number", "minimum": -180, "maximum": 180}),
                "external_ref": {
                    "type": "string",
                    "maxLength": 64,
                    "description": "The case's number in the calling system (e.g. the 12345 work-order number).",
                },
            },
            "required": ["category", "description"],
            "additionalProperties": False,
        },
        "Transition": {
            "oneOf": [_ref(f"Transition_{t.name}") for t in person_triggers()],
            "discriminator": {
                "propertyName": "trigger",
                "mapping": {t.name: f"#/components/schemas/Transition_{t.name}" for t in person_triggers()},
            },
        },
        **{f"Transition_{t.name}": transition_schema(t) for t in person_triggers()},
        "Note": {
            "type": "object",
            "properties": {"note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE}},
            "required": ["note"],
            "additionalProperties": False,
        },
        "PhoneReveal": {
            "type": "object",
            "properties": {"reason": {"type": "string", "minLength": 4, "maxLength": 200}},
            "required": ["reason"],
            "additionalProperties": False,
        },
        "PhoneRevealResult": _object({"phone": {"type": "string"}}),
        "Upload": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "One file."},
                "photos": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "maxItems": attachments.MAX_FILES_PER_ACTION,
                    "description": "Several files (the field name of the web form).",
                },
                "note": {"type": "string", "maxLength": MAX_NOTE},
            },
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


ERRORS = {
    "400": "Malformed request: not JSON, malformed JSON, or a body that is not an object.",
    "401": "Missing, unknown, revoked or disabled token.",
    "403": "Your role may not do this (e.g. `role_not_allowed`, `forbidden`).",
    "404": "No such case in your area (`not_found`); existence outside it is not revealed.",
    "409": "Refused by the case's state or rules (`trigger_not_allowed`, `condition_failed`, `no_firm`, …) "
    "or changed by someone else (`version_conflict`).",
    "413": "The upload is larger than the server accepts.",
    "422": "Invalid input (`validation_error`, `unknown_field`, `unknown_trigger`, `idempotency_key_reused`, …); "
    "`details.fields` maps each input to its message.",
}


def _responses(success: dict[str, Any], *errors: str) -> dict[str, Any]:
    responses = dict(success)
    for status in ("401", *errors):
        responses[status] = _error(ERRORS[status])
    return responses


def _ok(schema: str, description: str = "OK", status: str = "200", headers: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}
    if headers:
        body["headers"] = headers
    return {status: body}


REF_PARAMETER = {
    "name": "ref",
    "in": "path",
    "required": True,
    "description": "Reference number, e.g. KSM-20261125-0001.",
    "schema": {"type": "string", "maxLength": 40},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _paths() -> dict[str, Any]:
    trigger_lines = "\n".join(
        f"- `{t.name}` — {t.en}; roles: {', '.join(sorted(t.roles))}; inputs: "
        + (", ".join(f"`{i.name}`{'' if i.required else ' (optional)'}" for i in t.inputs) or "none")
        for t in person_triggers()
    )
    return {
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "tags": ["meta"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/me": {
            "get": {
                "operationId": "getMe",
                "tags": ["meta"],
                "summary": "Who the token acts as",
                "responses": _responses(_ok("Me")),
            }
        },
        "/cases": {
            "get": {
                "operationId": "listCases",
                "tags": ["cases"],
                "summary": "List and search cases in your area, newest first",
                "description": "Keyset pagination: follow `next_cursor`. A page costs the same number of queries "
                "whatever the page size and the number of cases.",
                "parameters": [
                    _query(
                        "state",
                        {"type": "string", "enum": [*d.STATES, "open", "closed", "all"]},
                        "A state, `open`, `closed` or `all` (the default).",
                    ),
                    _query("category", {"type": "string", "maxLength": 32}, "Category code."),
                    _query("compound_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Compound id."),
                    _query("urgency", {"type": "string", "enum": list(URGENCIES)}, "normal or urgent."),
                    _query("channel", {"type": "string", "enum": list(CHANNELS)}, "Intake channel."),
                    _query(
                        "escalation",
                        {"type": "string", "enum": ["warning", "overdue", "yellow", "red", "any"]},
                        "Escalation level: near the deadline, overdue (yellow or red card), yellow, red, any.",
                    ),
                    _query(
                        "q",
                        {"type": "string", "maxLength": 60},
                        "Search: reference (or part, with or without the prefix), full mobile or its last 4 "
                        "digits, resident name, words of the description or address; every word must match.",
                    ),
                    _query("needs_routing", {"type": "boolean"}, "Only cases waiting for a supervisor to route them."),
                    _query(
                        "assigned_to",
                        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "Assigned grid worker's user id.",
                    ),
                    _query(
                        "created_from", {"type": "string", "maxLength": 40}, "ISO 8601 date or date-time (inclusive)."
                    ),
                    _query(
                        "created_to", {"type": "string", "maxLength": 40}, "ISO 8601 date or date-time (exclusive)."
                    ),
                    _query("cursor", {"type": "string", "maxLength": 200}, "`next_cursor` of the previous page."),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 25}, "Page size."
                    ),
                ],
                "responses": _responses(_ok("CaseList"), "422"),
            },
            "post": {
                "operationId": "createCase",
                "tags": ["cases"],
                "summary": "Register a case (routed at once)",
                "description": "Send `Idempotency-Key` so that a retry never creates a second case: the same key and "
                "body answer the same case with `Idempotent-Replayed: true`; the same key with another body "
                "answers 422 `idempotency_key_reused`. The compound must be in your area.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[!-~]+$"},
                        "description": "A unique key per case you create, e.g. a UUID or your work-order number.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("CaseCreate"),
                            "example": {
                                "category": "water_leak",
                                "description": "3栋2单元楼道水管漏水，地面积水",
                                "compound": "X01",
                                "building": "3栋",
                                "resident_name": "陈先生",
                                "resident_phone": "13812345678",
                                "channel": "hotline",
                                "external_ref": "12345-2026-000123",
                            },
                        }
                    },
                },
                "responses": _responses(
                    _ok(
                        "CreatedCase",
                        "Created (or replayed)",
                        "201",
                        {
                            "Location": {"schema": STRING, "description": "The case's URL."},
                            "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
                        },
                    ),
                    "400",
                    "403",
                    "422",
                ),
            },
        },
        "/cases/{ref}": {
            "get": {
                "operationId": "getCase",
                "tags": ["cases"],
                "summary": "One case, with `allowed_triggers` and `version`",
                "parameters": [REF_PARAMETER],
                "responses": _responses(_ok("Case"), "404"),
            }
        },
        "/cases/{ref}/events": {
            "get": {
                "operationId": "listEvents",
                "tags": ["cases"],
                "summary": "The case's history, oldest first",
                "parameters": [REF_PARAMETER],
                "responses": _responses(_ok("EventList"), "404"),
            }
        },
        "/cases/{ref}/transitions": {
            "post": {
                "operationId": "fireTransition",
                "tags": ["cases"],
                "summary": "Fire a workflow trigger with its inputs",
                "description": "Triggers you may fire now are in the case's `allowed_triggers`. Send `version` "
                "to be told (409 `version_conflict`) when someone changed the case since you read it. A refusal "
                "names what is allowed in `details.allowed`.\n\n" + trigger_lines,
                "parameters": [REF_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("Transition"),
                            "example": {"trigger": "dispatch_to_firm", "note": "已核实，需物业维修"},
                        }
                    },
                },
                "responses": _responses(_ok("TransitionResult"), "400", "403", "404", "409", "422"),
            }
        },
        "/cases/{ref}/notes": {
            "post": {
                "operationId": "addNote",
                "tags": ["cases"],
                "summary": "Add a note to the history",
                "parameters": [REF_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("Note"), "example": {"note": "居民来电询问进度，已告知"}}
                    },
                },
                "responses": _responses(_ok("EventResult", "Created", "201"), "400", "403", "404", "422"),
            }
        },
        "/cases/{ref}/phone-reveals": {
            "post": {
                "operationId": "revealPhone",
                "tags": ["cases"],
                "summary": "Property firms: the resident's full phone number, with a reason",
                "description": "Firms see the resident's phone masked. Give the reason you need to call (4–200 "
                "characters): the number is returned, and the look-up is written on the case's history and in the "
                "audit log. Other roles see the number in the case already (403).",
                "parameters": [REF_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("PhoneReveal"), "example": {"reason": "约上门维修时间"}}
                    },
                },
                "responses": _responses(_ok("PhoneRevealResult", "Created", "201"), "400", "403", "404", "422"),
            }
        },
        "/cases/{ref}/attachments": {
            "post": {
                "operationId": "uploadAttachment",
                "tags": ["cases"],
                "summary": "Attach photos or PDFs (JPEG, PNG, GIF, WebP, PDF; checked by content)",
                "parameters": [REF_PARAMETER],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _ref("Upload")}}},
                "responses": _responses(_ok("AttachmentResult", "Created", "201"), "403", "404", "413", "422"),
            }
        },
        "/categories": {
            "get": {
                "operationId": "listCategories",
                "tags": ["reference data"],
                "summary": "Categories (with their extra attributes)",
                "responses": _responses(_ok("CategoryList")),
            }
        },
        "/organisation": {
            "get": {
                "operationId": "getOrganisation",
                "tags": ["reference data"],
                "summary": "Street → community → grids, compounds (with buildings), stations; property firms",
                "description": "Administrators see every street; everyone else the street of their scope.",
                "responses": _responses(_ok("Organisation")),
            }
        },
        "/rates": {
            "get": {
                "operationId": "getRates",
                "tags": ["reports"],
                "summary": "The three rates of a month over valid follow-ups in your area",
                "description": "response = contacted / valid; resolution = resolved / valid; satisfaction = "
                "(satisfied + 0.9 × basically satisfied) / valid; composite = 0.1 × response + 0.5 × resolution + "
                "0.4 × satisfaction (weights configurable).",
                "parameters": [
                    _query(
                        "period",
                        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                        "Month, e.g. 2026-11 (default: this month).",
                    ),
                    _query("group_by", {"type": "string", "enum": list(GROUPS), "default": "community"}, "Grouping."),
                ],
                "responses": _responses(_ok("Rates"), "422"),
            }
        },
        "/indicators": {
            "get": {
                "operationId": "getIndicators",
                "tags": ["reports"],
                "summary": "Every figure of a period per slice, in your area",
                "description": "Response, resolution, satisfaction and composite rates; on-time acceptance and "
                "completion; average and 90th-percentile handling time in working hours; resident send-back and "
                "supervisor reopen rates; yellow/red cards and urges; new, closed and auto-closed cases; backlog "
                "at the end of the period. Each figure is attributed to the party responsible when it happened "
                "(a firm is judged on its own steps). `definitions` says how each is computed.",
                "parameters": [
                    _query(
                        "period",
                        {"type": "string", "maxLength": 40},
                        "2026-11 (reporting month), 2026-Q4, 2026, or 2026-11-01..2026-11-15; default this month.",
                    ),
                    _query("group", {"type": "string", "enum": list(SLICES), "default": "community"}, "Slice."),
                ],
                "responses": _responses(_ok("Indicators"), "422"),
            }
        },
        "/ratings": {
            "get": {
                "operationId": "getRatings",
                "tags": ["reports"],
                "summary": "Property-firm credit ratings of a month",
                "description": "One entry per firm you may see (supervisors and administrators: all; property "
                "managers: their own), best first. A rated month is frozen; a month not rated yet is shown as it "
                "would be rated now (`frozen: false`). Grades A ≥ 90, B ≥ 75, C ≥ 60, D below (configurable); "
                "D is restricted for three years from the rating date.",
                "parameters": [
                    _query(
                        "month",
                        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                        "Month, e.g. 2026-11 (default: the last month that is over).",
                    )
                ],
                "responses": _responses(_ok("Ratings"), "403", "422"),
            }
        },
    }


@cache
def build_spec() -> dict[str, Any]:
    """The OpenAPI document (built once per process; it depends only on code and definitions)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Key Small Matters API",
            "version": API_VERSION,
            "description": "Cases of residents' key small matters (关键小事) for the 12345 hotline platform and "
            "other integrations. Authenticate with `Authorization: Bearer TOKEN` (create tokens on your profile "
            "page or with `flask create-token USERNAME`); a token acts with its owner's role and scope. Errors "
            'are `{"error": {"code", "message", "details"}}`. Send `Accept-Language: en` for English '
            "messages (default Simplified Chinese).",
        },
        "servers": [{"url": "/api/v1"}],
        "tags": [
            {"name": "cases", "description": "Intake, search, history and workflow actions."},
            {"name": "reference data", "description": "Categories and the organisation."},
            {"name": "reports", "description": "Figures for supervisors."},
            {"name": "meta", "description": "This document and the token's identity."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "API token"}},
            "schemas": _schemas(),
        },
    }


# ------------------------------------------------------------------------------- reference page


def describe(schema: dict[str, Any]) -> str:
    """A short type description of a schema for people: ``string``, ``Case | null``, ``array of Event``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for combinator, joiner in (("anyOf", " | "), ("oneOf", " | ")):
        if combinator in schema:
            return joiner.join(describe(s) for s in schema[combinator])
    if "const" in schema:
        return f'"{schema["const"]}"'
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(describe({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {describe(schema.get('items', {}))}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _notes(schema: dict[str, Any]) -> str:
    parts = []
    if schema.get("description"):
        parts.append(schema["description"])
    if "enum" in schema:
        parts.append("One of: " + ", ".join(str(v) for v in schema["enum"]))
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("pattern", "pattern"),
        ("default", "default"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    return "; ".join(parts)


def schema_rows(schema: dict[str, Any], prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
    """The fields of an object schema as table rows (nested inline objects flattened with dots)."""
    rows: list[dict[str, Any]] = []
    required = set(schema.get("required", []))
    for name, prop in (schema.get("properties") or {}).items():
        rows.append(
            {"name": prefix + name, "type": describe(prop), "required": name in required, "notes": _notes(prop)}
        )
        inline = prop
        if prop.get("type") == "array" and "properties" in prop.get("items", {}):
            inline = prop["items"]
            name += "[]"
        if "properties" in inline and depth < 3:
            rows.extend(schema_rows(inline, prefix + name + ".", depth + 1))
    return rows


def reference_view(spec: dict[str, Any]) -> dict[str, Any]:
    """What the reference page shows: operations grouped by tag, and every schema's fields."""
    groups: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in spec.get("tags", [])}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {})
            groups.setdefault(operation.get("tags", ["other"])[0], []).append(
                {
                    "id": operation["operationId"],
                    "method": method.upper(),
                    "path": spec["servers"][0]["url"] + path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "public": operation.get("security") == [],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "type": describe(p["schema"]),
                            "required": p.get("required", False),
                            "notes": "; ".join(x for x in (p.get("description", ""), _notes(p["schema"])) if x),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": [{"media_type": media, "schema": describe(c["schema"])} for media, c in body.items()],
                    "responses": [
                        {
                            "status": status,
                            "description": response.get("description", ""),
                            "schema": ", ".join(describe(c["schema"]) for c in response.get("content", {}).values()),
                        }
                        for status, response in operation["responses"].items()
                    ],
                }
            )
    schemas = {
        name: {"description": schema.get("description", ""), "type": describe(schema), "rows": schema_rows(schema)}
        for name, schema in spec["components"]["schemas"].items()
    }
    return {"groups": groups, "schemas": schemas}
