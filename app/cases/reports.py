"""One case, many callers: a second caller's report linked to the open case (DESIGN §5).

Each linked caller gets a reference, receipt, tracking and sign-off of their own; the matter is handled
once, as the main case. A caller's sign-off is a follow-up of its own (it does not move the case). A
supervisor may undo a link: the report then becomes a case of its own, with the same reference and code.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from app.auth import roles
from app.cases import services
from app.cases.actors import ResidentActor
from app.cases.models import CHANNELS, Case, CaseReport, FollowUp
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.timeutil import utcnow
from app.extensions import db
from app.reports import facts
from workflows import definitions as d
from workflows.engine import InputInvalid, clean_inputs

LINK_ROLES = (roles.CLERK, roles.GRID_WORKER, roles.SUPERVISOR, roles.ADMIN)
UNLINK_ROLES = (roles.SUPERVISOR, roles.ADMIN)
#: a linked caller may answer while the case awaits sign-off or once it is closed as done
SIGNOFF_STATES = ("awaiting_signoff", "closed")
DONE_RESOLUTIONS = (d.RESOLVED_SATISFIED, d.RESOLVED_BASIC, d.RESOLVED_UNSATISFIED_FINAL, d.AUTO_CLOSED)


def link_report(
    case: Case,
    actor,
    *,
    resident_name: str,
    resident_phone: str,
    description: str,
    channel: str = "window",
    unit: str | None = None,
    now: datetime | None = None,
) -> CaseReport:
    """Link another caller's report to an open case; the caller gets their own reference and code.

    Raises :class:`PermissionDenied` (role or scope), :class:`Conflict` (the case is closed) and
    :class:`services.FieldErrors` (missing name, bad mobile, short description, unknown channel).
    """
    if getattr(actor, "role", None) not in LINK_ROLES or not services.can_view(actor, case):
        raise PermissionDenied(_("You cannot add a caller's report to this case."))
    if not case.is_open:
        raise Conflict(_("Case %(ref)s is closed: register the report as a new case.", ref=case.ref))
    errors = {}
    name = (resident_name or "").strip()
    phone = re.sub(r"[\s-]", "", resident_phone or "")
    text = (description or "").strip()
    if not name:
        errors["resident_name"] = _("Enter the caller's name.")
    if not services.MOBILE_RE.match(phone):
        errors["resident_phone"] = _("A mobile number has 11 digits and starts with 1.")
    if len(text) < 5:
        errors["description"] = _("Describe the matter in at least 5 characters.")
    elif len(text) > services.MAX_DESCRIPTION:
        errors["description"] = _("The description is longer than %(max)d characters.", max=services.MAX_DESCRIPTION)
    if channel not in CHANNELS:
        errors["channel"] = _("Unknown channel; use one of %(channels)s.", channels=", ".join(CHANNELS))
    if errors:
        raise services.FieldErrors(errors)
    now = now or utcnow()
    report = CaseReport(
        case_id=case.id,
        ref=services.next_ref(now),
        signoff_token=services.unique_signoff_code(),
        channel=channel,
        description=text,
        unit=(unit or "").strip()[:50] or None,
        resident_name=name[:50],
        resident_phone=phone,
        resident_phone_last4=phone[-4:],
        station_id=getattr(actor, "station_id", None) if actor.role == roles.CLERK else None,
        created_by_id=actor.id,
        created_at=now,
    )
    db.session.add(report)
    db.session.flush()
    services.record_event(
        case,
        actor,
        "link",
        now=now,
        note=text,
        payload={"report": report.ref, "contact": {"name": report.resident_name, "phone": report.resident_phone}},
    )
    return report


def link_duplicate(case: Case, original: Case, actor, *, now: datetime | None = None) -> CaseReport:
    """The caller of ``case``, just closed as a duplicate of ``original``, becomes a linked report of it.

    The caller keeps their reference and sign-off code: tracking shows the original's handling and their
    sign-off is a follow-up of its own. Callers already linked to ``case`` move to the original too. A
    report of the same reference left by an earlier undone link is linked again. Raises nothing of its
    own (the caller checked the original).
    """
    now = now or utcnow()
    report = db.session.scalar(select(CaseReport).where(CaseReport.ref == case.ref))
    if report is None:
        report = CaseReport(ref=case.ref, created_at=case.created_at)
        db.session.add(report)
    report.case_id = original.id
    report.signoff_token = case.signoff_token
    report.channel = case.channel
    report.description = case.description
    report.unit = case.unit
    report.resident_name = case.resident_name
    report.resident_phone = case.resident_phone
    report.resident_phone_last4 = case.resident_phone_last4
    report.station_id = case.station_id
    report.created_by_id = case.created_by_id
    report.unlinked_at = None
    report.split_case_id = None
    # callers already linked to the duplicate follow the original with it
    moved = [r for r in reports_of(case) if r.id != report.id]
    for other in moved:
        other.case_id = original.id
    db.session.flush()
    for linked in (report, *moved):
        services.record_event(
            original,
            actor,
            "link",
            now=now,
            note=linked.description,
            payload={
                "report": linked.ref,
                "duplicate": case.ref,
                "contact": {"name": linked.resident_name, "phone": linked.resident_phone},
            },
        )
    return report


def linked_report_of(case: Case) -> CaseReport | None:
    """The linked report a case closed as a duplicate lives on as (same reference), if any."""
    if case.duplicate_of_id is None:
        return None
    return db.session.scalar(select(CaseReport).where(CaseReport.ref == case.ref, CaseReport.unlinked_at.is_(None)))


def reports_of(case: Case, *, active_only: bool = True) -> list[CaseReport]:
    query = select(CaseReport).where(CaseReport.case_id == case.id).order_by(CaseReport.id)
    if active_only:
        query = query.where(CaseReport.unlinked_at.is_(None))
    return list(db.session.scalars(query))


def get_report(case: Case, ref: str) -> CaseReport:
    """An active report of ``case`` by its reference. Raises :class:`NotFound`."""
    report = db.session.scalar(
        select(CaseReport).where(
            CaseReport.case_id == case.id,
            CaseReport.ref == (ref or "").strip().upper(),
            CaseReport.unlinked_at.is_(None),
        )
    )
    if report is None:
        raise NotFound(_("No such report on this case."))
    return report


def unlink_report(report: CaseReport, actor, note: str, *, now: datetime | None = None) -> Case:
    """Undo a link: the report becomes a case of its own (same reference and sign-off code), registered in
    the main case's compound and category; a report from a case closed as a duplicate reopens that case.

    Raises :class:`PermissionDenied`, :class:`Conflict`, :class:`ValidationError`, and
    :class:`services.WorkflowRefused` when the duplicate cannot be reopened (reopen window, role).
    """
    case = report.case
    if getattr(actor, "role", None) not in UNLINK_ROLES or not services.can_view(actor, case):
        raise PermissionDenied(_("Only a supervisor of the area can undo a link."))
    if not report.active:
        raise Conflict(_("This report is no longer linked."))
    note = (note or "").strip()
    if not note:
        raise ValidationError(_("Say why the link is undone."), field="note")
    now = now or utcnow()
    source = db.session.scalar(select(Case).where(Case.ref == report.ref))
    if source is not None:  # the report came from a case closed as a duplicate: that case is reopened
        report.unlinked_at = now
        report.split_case_id = source.id
        db.session.flush()
        services.fire(source, "reopen", actor, inputs={"reason": note}, now=now)
        source = db.session.get(Case, source.id)
        source.duplicate_of_id = None
        services.record_event(case, actor, "unlink", now=now, note=note, payload={"report": report.ref})
        return source
    intake = services.Intake(
        category=case.category.code,
        description=report.description,
        channel=report.channel if report.channel in services.STAFF_CHANNELS else "window",
        compound=case.compound_id,
        building=case.building_id,
        unit=report.unit,
        urgency=case.urgency,
        resident_name=report.resident_name,
        resident_phone=report.resident_phone,
    )
    report.unlinked_at = now
    db.session.flush()
    new_case = services.register_case(intake, actor, now=now, ref=report.ref, signoff_token=report.signoff_token)
    report.split_case_id = new_case.id
    services.record_event(case, actor, "unlink", now=now, note=note, payload={"report": report.ref})
    return new_case


def find_report_by_token(token: str) -> CaseReport | None:
    token = (token or "").strip()[:64]
    if not token:
        return None
    code = services.normalize_signoff_code(token)
    return db.session.scalar(
        select(CaseReport).where(CaseReport.signoff_token.in_({token, code}), CaseReport.unlinked_at.is_(None))
    )


def find_report_for_resident(ref: str, last4: str) -> CaseReport | None:
    report = db.session.scalar(
        select(CaseReport).where(CaseReport.ref == (ref or "").strip().upper(), CaseReport.unlinked_at.is_(None))
    )
    if report is None or not last4 or report.resident_phone_last4 != last4.strip():
        return None
    return report


def report_follow_up(report: CaseReport) -> FollowUp | None:
    return db.session.scalar(select(FollowUp).where(FollowUp.report_id == report.id).limit(1))


def can_sign_off(report: CaseReport) -> bool:
    case = report.case
    if report_follow_up(report) is not None:
        return False
    return case.state == "awaiting_signoff" or (case.state == "closed" and case.resolution in DONE_RESOLUTIONS)


def report_signoff(report: CaseReport, inputs, *, now: datetime | None = None) -> FollowUp:
    """The linked caller's own sign-off: a follow-up of its own; the case does not move.

    Raises :class:`Conflict` (not done yet, or already answered) and :class:`services.WorkflowRefused` with
    field messages (labels only) for missing or bad answers.
    """
    case = report.case
    if report_follow_up(report) is not None:
        raise Conflict(_("You have already answered for this report. Thank you."))
    if not can_sign_off(report):
        raise Conflict(_("The work is still in progress. You can confirm and rate it here once it is reported done."))
    spec = d.TRIGGERS["signoff"]
    try:
        answers = clean_inputs(spec, inputs)
    except InputInvalid as error:
        raise services.explain(error, case) from None
    now = now or utcnow()
    event = services.record_event(
        case,
        ResidentActor(case.id),
        "report_signoff",
        now=now,
        note=answers.get("comment"),
        payload={"report": report.ref, **{k: v for k, v in answers.items() if k != "comment"}},
    )
    follow_up = FollowUp(
        case_id=case.id,
        event_id=event.id,
        report_id=report.id,
        contacted=answers["contacted"],
        resolved=answers["resolved"],
        satisfaction=answers["satisfaction"],
        comment=answers.get("comment"),
        channel="resident",
        valid=True,
        created_at=now,
        **facts.follow_up_slice(case),  # the caller judges the same work: same attribution as the case's
    )
    db.session.add(follow_up)
    db.session.flush()
    return follow_up


def reports_for_events(case: Case) -> dict[str, CaseReport]:
    return {r.ref: r for r in reports_of(case, active_only=False)}
