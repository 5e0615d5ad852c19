"""Labels of workflow vocabulary (states, triggers, inputs, resolutions, channels) in the current language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.auth.roles import ROLE_LABELS
from app.core.i18n import is_english
from workflows import definitions as d

CHANNEL_LABELS = {
    "window": _l("Service window"),
    "phone": _l("Phone"),
    "grid": _l("Grid worker visit"),
    "online": _l("Online"),
    "hotline": _l("12345 hotline"),
    "api": _l("Integration (API)"),
    "open311": _l("Open311 client"),
}
URGENCY_LABELS = {"normal": _l("Normal"), "urgent": _l("Urgent")}
EXTRA_ROLE_LABELS = {d.RESIDENT: _l("Resident"), d.SYSTEM: _l("System")}
EVENT_KIND_LABELS = {
    "created": _l("Registered"),
    "transition": _l("Action"),
    "note": _l("Note"),
    "reassign": _l("Reassigned"),
    "attachment": _l("Attachment"),
    "urge": _l("Urged"),
    "escalation": _l("Escalation"),
    "extension_request": _l("Extension requested"),
    "extension_decision": _l("Extension decided"),
    "shelve": _l("Shelved"),
    "unshelve": _l("Unshelved"),
    "link": _l("Another caller's report linked"),
    "unlink": _l("Link undone"),
    "report_signoff": _l("Linked caller's sign-off"),
    "shelve_review": _l("Shelf review due"),
    "follow_up_invalid": _l("Follow-up marked invalid"),
    "follow_up_valid": _l("Follow-up marked valid again"),
    "deadline_moved": _l("Deadline moved (calendar changed)"),
    "phone_revealed": _l("Resident's phone revealed"),
}


def lang() -> str:
    return "en" if is_english() else "zh"


def state_label(state: str | None) -> str:
    spec = d.STATES.get(state or "")
    return spec.label(lang()) if spec else (state or "")


def trigger_label(trigger: str | None) -> str:
    spec = d.TRIGGERS.get(trigger or "")
    return spec.label(lang()) if spec else (trigger or "")


def resolution_label(resolution: str | None) -> str:
    labels = d.CLOSING_RESOLUTIONS.get(resolution or "")
    return labels[lang()] if labels else (resolution or "")


def workflow_label(workflow: str | None) -> str:
    spec = d.WORKFLOWS.get(workflow or "")
    return spec.label(lang()) if spec else (workflow or "")


def role_label(role: str | None) -> str:
    label = ROLE_LABELS.get(role or "") or EXTRA_ROLE_LABELS.get(role or "")
    return str(label) if label else (role or "")


def input_label(trigger: str, name: str) -> str:
    spec = d.TRIGGERS.get(trigger)
    field = spec.input(name) if spec else None
    return field.label(lang()) if field else name


def choice_label(trigger: str, name: str, value) -> str:
    spec = d.TRIGGERS.get(trigger)
    field = spec.input(name) if spec else None
    if field is None:
        return str(value)
    if field.kind == "bool":
        return str(_l("Yes")) if value else str(_l("No"))
    if field.kind == "choice":
        return field.choice_label(value, lang())
    return str(value)


PAYLOAD_LABELS = {
    "report": _l("Caller's reference"),
    "resolution": _l("Resolution"),
    "duplicate_of": _l("Original case"),
    "duplicate": _l("Closed as a duplicate of this case"),
    "possible_duplicates": _l("Possible duplicates"),
    "channel": _l("Channel"),
    "category": _l("Category"),
    "urgency": _l("Urgency"),
    "grid_worker": _l("Grid worker"),
    "grid": _l("Grid"),
    "firm": _l("Property firm"),
    "compound": _l("Compound"),
    "files": _l("Files"),
    "step_due_at": _l("Step deadline"),
    "on_time": _l("Step on time"),
    "case_on_time": _l("Case on time"),
    "level": _l("Level"),
    "threshold_at": _l("Reached at"),
    "due_at": _l("Deadline"),
    "resolve_by": _l("Whole-case deadline"),
    "case_overdue": _l("Whole-case limit"),
    "review_at": _l("Review on"),
    "current_due_at": _l("Current deadline"),
    "proposed_due_at": _l("Proposed deadline"),
    "approved": _l("Decision"),
    "previous_due_at": _l("Previous deadline"),
    "previous_resolve_by": _l("Previous whole-case deadline"),
}
HIDDEN_PAYLOAD = {"firm_id", "assigned_from", "extra", "card", "request_id", "follow_up_id"}
TIME_KEYS = {"step_due_at", "threshold_at", "due_at", "resolve_by", "review_at", "current_due_at", "proposed_due_at"}
TIME_KEYS |= {"previous_due_at", "previous_resolve_by"}
LEVEL_LABELS = {1: _l("Warning: near the deadline"), 2: _l("Yellow card: overdue"), 3: _l("Red card: long overdue")}


def describe_payload(event, show_contact: bool = True) -> list[tuple[str, str]]:
    """Readable (label, value) pairs of an event's payload for the history (``show_contact``: whether
    another reporter's name and phone may be shown — not to property firms)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (event.payload or {}).items():
        if key in HIDDEN_PAYLOAD or value in (None, "", []):
            continue
        if key == "contact":
            if show_contact and isinstance(value, dict):
                pairs.append((str(_l("Also reported by")), f"{value.get('name', '')} {value.get('phone', '')}".strip()))
            continue
        trigger = event.trigger or ("signoff" if event.kind == "report_signoff" else None)
        if trigger and d.TRIGGERS.get(trigger) and d.TRIGGERS[trigger].input(key):
            pairs.append((input_label(trigger, key), choice_label(trigger, key, value)))
        elif key == "resolution":
            pairs.append((str(PAYLOAD_LABELS[key]), resolution_label(value)))
        elif key in TIME_KEYS:
            pairs.append((str(PAYLOAD_LABELS[key]), _local_time(value)))
        elif key in ("on_time", "case_on_time"):
            pairs.append((str(PAYLOAD_LABELS[key]), str(_l("Yes")) if value else str(_l("No, late"))))
        elif key == "level":
            pairs.append((str(PAYLOAD_LABELS[key]), str(LEVEL_LABELS.get(value, value))))
        elif key == "case_overdue":
            pairs.append((str(PAYLOAD_LABELS[key]), str(_l("exceeded"))))
        elif key == "approved":
            pairs.append((str(PAYLOAD_LABELS[key]), str(_l("Approved")) if value else str(_l("Denied"))))
        elif key == "channel":
            pairs.append((str(PAYLOAD_LABELS[key]), str(CHANNEL_LABELS.get(value, value))))
        elif key == "category":
            pairs.append((str(PAYLOAD_LABELS[key]), _category_name(value)))
        elif key == "urgency":
            pairs.append((str(PAYLOAD_LABELS[key]), str(URGENCY_LABELS.get(value, value))))
        elif key in ("grid_worker", "grid", "firm", "compound") and isinstance(value, list):
            pairs.append((str(PAYLOAD_LABELS[key]), _name_change(key, value)))
        elif isinstance(value, list):
            pairs.append((str(PAYLOAD_LABELS.get(key, key)), ", ".join(str(v) for v in value)))
        else:
            pairs.append((str(PAYLOAD_LABELS.get(key, key)), str(value)))
    return pairs


def _name_change(kind: str, ids: list) -> str:
    from app.auth.models import User
    from app.extensions import db
    from app.org.models import Compound, Grid, PropertyFirm

    model = {"grid_worker": User, "grid": Grid, "firm": PropertyFirm, "compound": Compound}[kind]
    names = []
    for value in ids:
        obj = db.session.get(model, value) if value else None
        names.append(getattr(obj, "display_name", None) or getattr(obj, "name", None) or "—")
    return " → ".join(names)


def _category_name(code: str) -> str:
    from app.cases.models import Category
    from app.org import lookups

    category = lookups.find(Category, code, by_name=False)  # the per-process cache
    return category.name if category else code


def _local_time(value) -> str:
    from datetime import datetime

    from app.core.timeutil import to_local

    try:
        return to_local(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value)
