"""Residents' personal data: revealing a masked phone, exporting and anonymising what is held.

Every act is written to the audit log (without the phone number itself: it is masked there) and a
reveal is also written on the case's history, so the resident's case shows who called them and why.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import String, cast, select

from app.audit.services import record_audit
from app.auth.permissions import can_reveal_resident_phone
from app.cases.models import Case, CaseEvent, FollowUp
from app.core.errors import PermissionDenied, ValidationError
from app.core.timeutil import utcnow
from app.extensions import db

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
#: a mainland mobile number inside free text (description, notes)
MOBILE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d(?:[\s-]?\d){8}(?!\d)")
ANONYMOUS_NAME = "（已匿名）"


def mask(phone: str | None) -> str:
    """``138****5678``: what the audit log keeps of a phone number."""
    phone = phone or ""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def normalise_phone(raw: str | None) -> str:
    """A mobile number without spaces or dashes. Raises :class:`ValidationError` when malformed."""
    phone = re.sub(r"[\s-]", "", raw or "")
    if not MOBILE_RE.match(phone):
        raise ValidationError(_("A mobile number has 11 digits and starts with 1."), field="phone")
    return phone


def reveal_phone(actor, case: Case, reason: str) -> str:
    """Show a property-firm user the resident's full phone number, recording who, when and why.

    Writes an audit line (``phone.revealed``) and a ``phone_revealed`` event on the case; flushes.
    Raises :class:`PermissionDenied` when ``actor`` may not reveal it (see
    :func:`app.auth.permissions.can_reveal_resident_phone`) and :class:`ValidationError` for a missing
    or too short reason.
    """
    from app.cases.services import record_event

    reason = (reason or "").strip()
    if not can_reveal_resident_phone(actor, case):
        raise PermissionDenied(_("You cannot reveal this resident's phone number."))
    if len(reason) < 4 or len(reason) > 200:
        raise ValidationError(_("Say in 4 to 200 characters why you need to call the resident."), field="reason")
    record_event(case, actor, "phone_revealed", note=reason)
    record_audit(actor, "phone.revealed", target=case, details={"reason": reason})
    return case.resident_phone


def _cases_of(phone: str) -> list[Case]:
    return list(db.session.scalars(select(Case).where(Case.resident_phone == phone).order_by(Case.id)))


def _contact_events_of(phone: str) -> list[tuple[CaseEvent, str]]:
    """Notes recording this number as a further reporter of a case, with the case's reference.

    An administrator's rare request: the payload text is scanned (no index serves it).
    """
    return list(
        db.session.execute(
            select(CaseEvent, Case.ref)
            .join(Case, Case.id == CaseEvent.case_id)
            .where(CaseEvent.payload.is_not(None), cast(CaseEvent.payload, String).contains(phone))
            .order_by(CaseEvent.id)
        )
    )


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def export_resident(actor, raw_phone: str) -> dict[str, Any]:
    """Everything held about a phone number: its cases with their history and follow-ups, and the
    notes naming it as a further reporter. Audited (``resident.exported``); flushes.

    Raises :class:`ValidationError` for a malformed number.
    """
    phone = normalise_phone(raw_phone)
    cases = _cases_of(phone)
    case_ids = [case.id for case in cases]
    events = (
        db.session.scalars(select(CaseEvent).where(CaseEvent.case_id.in_(case_ids)).order_by(CaseEvent.id)).all()
        if case_ids
        else []
    )
    follow_ups = (
        db.session.scalars(select(FollowUp).where(FollowUp.case_id.in_(case_ids)).order_by(FollowUp.id)).all()
        if case_ids
        else []
    )
    by_case: dict[int, dict[str, Any]] = {}
    for case in cases:
        by_case[case.id] = {
            "ref": case.ref,
            "created_at": _iso(case.created_at),
            "category": case.category.code if case.category else None,
            "compound": case.compound.name if case.compound else None,
            "building": case.building.name if getattr(case, "building", None) else None,
            "unit": case.unit,
            "resident_name": case.resident_name,
            "resident_phone": case.resident_phone,
            "description": case.description,
            "state": case.state,
            "resolution": case.resolution,
            "history": [],
            "follow_ups": [],
        }
    for event in events:
        by_case[event.case_id]["history"].append(
            {
                "at": _iso(event.created_at),
                "kind": event.kind,
                "trigger": event.trigger,
                "by": event.actor_name,
                "note": event.note,
            }
        )
    for follow_up in follow_ups:
        by_case[follow_up.case_id]["follow_ups"].append(
            {
                "at": _iso(follow_up.created_at),
                "contacted": follow_up.contacted,
                "resolved": follow_up.resolved,
                "satisfaction": follow_up.satisfaction,
                "comment": follow_up.comment,
            }
        )
    also_reported = [
        {"case": ref, "at": _iso(event.created_at), "contact": (event.payload or {}).get("contact")}
        for event, ref in _contact_events_of(phone)
        if event.case_id not in by_case
    ]
    record_audit(
        actor,
        "resident.exported",
        target=mask(phone),
        details={"phone": mask(phone), "cases": len(cases), "also_reported": len(also_reported)},
    )
    return {
        "phone": phone,
        "exported_at": _iso(utcnow()),
        "cases": list(by_case.values()),
        "also_reported_on": also_reported,
    }


def anonymise_resident(actor, raw_phone: str) -> int:
    """Replace a resident's name, phone, unit and contact details in free text on every case
    registered with this number; the cases, their states and every figure stay. Audited
    (``resident.anonymised``); flushes. Returns how many cases were changed.

    The cases' history is append-only and keeps what was written in it (notes are staff's words);
    see ``docs/security.md``. Raises :class:`ValidationError` for a malformed number.
    """
    phone = normalise_phone(raw_phone)
    cases = _cases_of(phone)
    for case in cases:
        name = (case.resident_name or "").strip()
        text = case.description or ""
        text = MOBILE_IN_TEXT.sub("***", text)
        if len(name) >= 2:
            text = text.replace(name, "***")
        case.description = text
        case.resident_name = ANONYMOUS_NAME
        case.resident_phone = None
        case.resident_phone_last4 = None
        case.unit = None
    db.session.flush()
    record_audit(actor, "resident.anonymised", target=mask(phone), details={"phone": mask(phone), "cases": len(cases)})
    return len(cases)
