"""JSON shapes of the REST API (documented in :mod:`app.api.openapi`).

List shapes read only the columns of the row and the relationships that
:func:`app.cases.queries.list_cases` loads eagerly, so a page costs a fixed number of queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.auth.permissions import can_see_resident_phone
from app.cases import labels as L
from app.cases.models import Attachment, Case, CaseEvent, Category
from app.core.i18n import is_english
from app.core.timeutil import to_local


def instant(value: datetime | None) -> str | None:
    """ISO 8601 in the application's time zone, e.g. ``2026-11-25T09:30:00+08:00``."""
    local = to_local(value)
    return local.isoformat(timespec="seconds") if local else None


def _named(obj, *fields: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {name: getattr(obj, name) for name in ("id", *fields)}


def _person(user) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "display_name": user.display_name}


def category_brief(category: Category) -> dict[str, Any]:
    return {"code": category.code, "name": category.name}


def case_summary(case: Case) -> dict[str, Any]:
    """One row of a case list (columns, category, compound and assigned grid worker only)."""
    return {
        "ref": case.ref,
        "state": case.state,
        "state_label": L.state_label(case.state),
        "workflow": case.workflow,
        "category": category_brief(case.category),
        "urgency": case.urgency,
        "channel": case.channel,
        "description": case.description,
        "compound": _named(case.compound, "code", "name"),
        "assigned_grid_worker": _person(case.assigned_grid_worker),
        "needs_routing": case.needs_routing,
        "reopen_count": case.reopen_count,
        "resolution": case.resolution,
        "resolution_label": L.resolution_label(case.resolution) if case.resolution else None,
        "created_at": instant(case.created_at),
        "updated_at": instant(case.updated_at),
        "closed_at": instant(case.closed_at),
        "due_at": instant(case.due_at),
        "resolve_by": instant(case.resolve_by),
        "escalation_level": case.escalation_level,
        "shelved": case.shelved,
        "version": case.version,
    }


def case_detail(case: Case, user, *, allowed: list[str], attachments: list[Attachment]) -> dict[str, Any]:
    """Everything about one case the user may see; the resident's phone is masked for property firms."""
    body = case_summary(case)
    phone = case.resident_phone if can_see_resident_phone(user, case) else case.masked_phone
    body.update(
        {
            "street": _named(case.street, "code", "name"),
            "community": _named(case.community, "code", "name"),
            "building": _named(case.building, "name"),
            "unit": case.unit,
            "address_text": case.address_text,
            "latitude": case.latitude,
            "longitude": case.longitude,
            "resident": {"name": case.resident_name, "phone": phone or None},
            "grid": _named(case.grid, "code", "name"),
            "firm": _named(case.firm, "code", "name"),
            "branch": _named(case.branch, "code", "name"),
            "station": _named(case.station, "code", "name"),
            "state_entered_at": instant(case.state_entered_at),
            "firm_dispatched_at": instant(case.firm_dispatched_at),
            "resolved_on_site": case.resolved_on_site,
            "duplicate_of": case.duplicate_of.ref if case.duplicate_of is not None else None,
            "allowed_triggers": allowed,
            "attachments": [attachment_dict(a) for a in attachments],
        }
    )
    return body


def attachment_dict(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "event_id": attachment.event_id,
        "created_at": instant(attachment.created_at),
    }


def _event_payload(event: CaseEvent, user) -> dict[str, Any] | None:
    """The event's structured payload; contact details of an Open311 reporter are kept from firms."""
    if not event.payload:
        return None
    payload = {k: v for k, v in event.payload.items() if k not in ("firm_id", "assigned_from")}
    extra = payload.get("extra")
    if isinstance(extra, dict) and not can_see_resident_phone(user):
        payload["extra"] = {k: v for k, v in extra.items() if k != "contact"}
    if not can_see_resident_phone(user):
        payload.pop("contact", None)  # a second reporter's name and phone, noted on the case
    return payload


def event_dict(event: CaseEvent, user) -> dict[str, Any]:
    """One line of a case's history."""
    person = event.actor_role not in ("system", "resident")
    return {
        "id": event.id,
        "kind": event.kind,
        "kind_label": str(L.EVENT_KIND_LABELS.get(event.kind, event.kind)),
        "created_at": instant(event.created_at),
        "actor": {
            "id": event.actor_id,
            "name": event.actor_name if person else L.role_label(event.actor_role),
            "role": event.actor_role,
            "role_label": L.role_label(event.actor_role),
        },
        "trigger": event.trigger,
        "trigger_label": L.trigger_label(event.trigger) if event.trigger else None,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "note": event.note,
        "payload": _event_payload(event, user),
    }


def category_dict(category: Category) -> dict[str, Any]:
    english = is_english()
    return {
        "code": category.code,
        "name": category.name,
        "name_zh": category.name_zh,
        "name_en": category.name_en,
        "description": category.description,
        "default_urgency": category.default_urgency,
        "workflow": category.workflow,
        "workflow_label": L.workflow_label(category.workflow),
        "active": category.active,
        "attributes": [
            {
                "code": attribute.get("code"),
                "datatype": attribute.get("datatype", "string"),
                "required": bool(attribute.get("required")),
                "order": attribute.get("order"),
                "description": attribute.get("description_en" if english else "description_zh"),
                "values": [{"key": str(v.get("key")), "name": v.get("name")} for v in attribute.get("values") or []],
            }
            for attribute in sorted(category.attributes or [], key=lambda a: a.get("order") or 0)
        ],
    }
