"""Time limits on cases: deadlines per step, pauses, extensions, urging, shelving, and the escalation sweep.

Deadlines are stored on the case (``warn_at`` at 80 % of the limit, ``due_at``, ``red_at`` when the
breach is as old as the limit itself, the whole-case ``resolve_by``) together with ``next_check_at``,
the earliest instant the sweep has work for the case. The sweep reads only cases whose
``next_check_at`` has passed (a range scan on a partial index), escalates them in set-based batches and
moves ``next_check_at`` on, so running it again finds nothing; two sweeps at once claim disjoint rows
with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import g, has_app_context
from flask_babel import gettext as _
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy import text as sql_text

from app.auth import roles
from app.auth.models import User
from app.auth.permissions import in_scope
from app.cases import labels as L
from app.cases.actors import SYSTEM_ACTOR
from app.cases.models import Case, CaseEvent, Category
from app.core import settings_cache
from app.core.bulk import insert_rows
from app.core.errors import Conflict, PermissionDenied, ValidationError
from app.core.timeutil import app_tz, to_local, utcnow
from app.extensions import db
from app.notify import services as notify
from app.org import lookups
from app.reports import facts
from app.reports.models import ActionFact
from app.sla.calendar import DEFAULT_PERIODS, CalendarError, Limit, WorkCalendar, parse_periods
from app.sla.models import WHOLE_CASE, BusinessHours, CalendarYear, ExtensionRequest, HolidayOverride, TimeLimitPolicy
from workflows import definitions as d

log = logging.getLogger("ksm.sla")

WARN_FRACTION = 0.8
#: DESIGN §4 defaults, plus a limit for routing a case that found no grid worker
DEFAULT_POLICIES: dict[tuple[str, str], str] = {
    ("registered", "normal"): "4wh",
    ("registered", "urgent"): "1h",
    ("grid_assigned", "normal"): "2wh",
    ("grid_assigned", "urgent"): "30m",
    ("grid_handling", "normal"): "1wd",
    ("grid_handling", "urgent"): "2h",
    ("branch_review", "normal"): "5wd",
    ("branch_review", "urgent"): "1wd",
    ("firm_dispatched", "normal"): "4wh",
    ("firm_dispatched", "urgent"): "1h",
    ("firm_processing", "normal"): "3wd",
    ("firm_processing", "urgent"): "24h",
    ("awaiting_signoff", "normal"): "3wd",
    ("awaiting_signoff", "urgent"): "3wd",
    (WHOLE_CASE, "normal"): "10wd",
    (WHOLE_CASE, "urgent"): "2d",
}
HANDLER_ROLE = {
    "grid_assigned": roles.GRID_WORKER,
    "grid_handling": roles.GRID_WORKER,
    "branch_review": roles.BRANCH_SECRETARY,
    "firm_dispatched": roles.PROPERTY_MANAGER,
    "firm_processing": roles.PROPERTY_MANAGER,
    "on_hold": roles.PROPERTY_MANAGER,
}
MAX_EXTENSION_DAYS = 60
CARDS = {1: "warning", 2: "yellow", 3: "red"}
LEVEL_COUNTERS = {1: "warned", 2: "yellow", 3: "red"}


# ------------------------------------------------------------------------------------------ settings


def ensure_default_settings() -> int:
    """Create the default time limits and business hours that are missing. Returns rows added."""
    added = 0
    existing = {(p.state, p.urgency) for p in db.session.scalars(select(TimeLimitPolicy))}
    for (state, urgency), text in DEFAULT_POLICIES.items():
        if (state, urgency) not in existing:
            limit = Limit.parse(text)
            db.session.add(TimeLimitPolicy(state=state, urgency=urgency, amount=limit.amount, unit=limit.unit))
            added += 1
    if db.session.scalar(select(BusinessHours.id).limit(1)) is None:
        db.session.add(BusinessHours(id=1, periods="08:30-12:00, 14:00-17:30"))
        added += 1
    db.session.flush()
    return added


def load_calendar(fresh: bool = False) -> WorkCalendar:
    """The working calendar from the settings tables, cached for the current app context and, across
    requests, per process (:mod:`app.core.settings_cache`, invalidated when the tables change)."""
    if has_app_context() and not fresh and "ksm_calendar" in g:
        return g.ksm_calendar
    if fresh:
        settings_cache.clear()
    # a fresh copy per app context (``missing_years`` is filled while computing) that shares the per-process
    # calendar's answers about days
    calendar = settings_cache.get("calendar", _read_calendar).sharing_answers()
    if has_app_context():
        g.ksm_calendar = calendar
    return calendar


def _read_calendar(session) -> WorkCalendar:
    hours = session.scalar(select(BusinessHours).limit(1))
    try:
        periods = parse_periods(hours.periods) if hours else DEFAULT_PERIODS
    except CalendarError:
        log.error("business hours %r are invalid; using the defaults", hours.periods)
        periods = DEFAULT_PERIODS
    overrides = {o.day: o.is_working for o in session.scalars(select(HolidayOverride))}
    confirmed = frozenset(session.scalars(select(CalendarYear.year)))
    return WorkCalendar(tz=app_tz(), periods=periods, overrides=overrides, confirmed_years=confirmed)


def policy_limit(state: str, urgency: str) -> Limit | None:
    """The time limit of a (state, urgency), or None when the step has none (cached per process)."""
    policies = settings_cache.get(
        "policies", lambda session: {(p.state, p.urgency): p.limit for p in session.scalars(select(TimeLimitPolicy))}
    )
    return policies.get((state, urgency))


def forget_cached_settings() -> None:
    """Call after changing policies, business hours or overrides within the same app context."""
    settings_cache.clear()
    if has_app_context():
        g.pop("ksm_calendar", None)
        g.pop("ksm_policies", None)


def missing_schedule_years(today: date | None = None, horizon_days: int = 60) -> list[int]:
    """Years within the coming ``horizon_days`` that have no published or confirmed holiday schedule."""
    today = today or to_local(utcnow()).date()
    calendar = load_calendar()
    years = sorted({today.year, (today + timedelta(days=horizon_days)).year})
    return [year for year in years if not calendar.year_known(year)]


# ------------------------------------------------------------------------------------------- timers


def _refresh_next_check(case: Case) -> None:
    candidates = []
    if case.state != "closed" and case.paused_at is None:
        threshold = {0: case.warn_at, 1: case.due_at, 2: case.red_at}.get(case.escalation_level)
        if threshold is not None:
            candidates.append(threshold)
        if case.resolve_by is not None and not case.case_overdue:
            candidates.append(case.resolve_by)
    if case.shelved and case.shelve_review_at is not None and not case.shelve_review_notified:
        candidates.append(case.shelve_review_at)
    case.next_check_at = min(candidates) if candidates else None


def _set_thresholds(case: Case, calendar: WorkCalendar, due: datetime) -> None:
    minutes = case.step_limit_minutes or 0
    case.due_at = due
    case.warn_at = calendar.shift(due, -(1 - WARN_FRACTION) * minutes, case.step_working)
    case.red_at = calendar.shift(due, minutes, case.step_working)


def start_step(case: Case, now: datetime) -> None:
    """Start the time limit of the case's current state (or clear the timers when it has none)."""
    limit = policy_limit(case.state, case.urgency)
    case.escalation_level = 0
    case.paused_at = case.paused_step_minutes = None
    if limit is None:
        case.due_at = case.warn_at = case.red_at = case.step_limit_minutes = None
    else:
        calendar = load_calendar()
        due = calendar.deadline(now, limit)
        case.step_working = limit.is_working
        case.step_limit_minutes = calendar.span(now, due, limit.is_working)
        _set_thresholds(case, calendar, due)
    _refresh_next_check(case)


def start_case_clock(case: Case, now: datetime) -> None:
    limit = policy_limit(WHOLE_CASE, case.urgency)
    case.case_overdue = False
    case.paused_case_minutes = None
    if limit is None:
        case.resolve_by = None
    else:
        case.case_working = limit.is_working
        case.resolve_by = load_calendar().deadline(now, limit)


def pause(case: Case, now: datetime) -> None:
    """Stop the clocks (on hold, shelved): remember what was left of the step and of the case."""
    if case.paused_at is not None:
        return
    calendar = load_calendar()
    case.paused_at = now
    case.paused_step_minutes = calendar.span(now, case.due_at, case.step_working) if case.due_at else None
    case.paused_case_minutes = (
        calendar.span(now, case.resolve_by, case.case_working)
        if case.resolve_by is not None and not case.case_overdue
        else None
    )
    case.due_at = case.warn_at = case.red_at = None
    _refresh_next_check(case)


def resume(case: Case, now: datetime) -> None:
    """Restart the clocks: the remaining time is re-applied from ``now`` (it may still be overdue)."""
    if case.paused_at is None:
        return
    calendar = load_calendar()
    if case.paused_step_minutes is not None and case.step_limit_minutes:
        _set_thresholds(case, calendar, calendar.shift(now, case.paused_step_minutes, case.step_working))
    if case.paused_case_minutes is not None:
        case.resolve_by = calendar.shift(now, case.paused_case_minutes, case.case_working)
    case.paused_at = case.paused_step_minutes = case.paused_case_minutes = None
    _refresh_next_check(case)


# ------------------------------------------------------------------------------ workflow hooks


def on_registered(case: Case, now: datetime) -> None:
    """A new case: start the whole-case clock and the routing step."""
    start_case_clock(case, now)
    start_step(case, now)


def leaving_step(case: Case, source: str, dest: str, now: datetime) -> dict:
    """Facts recorded on the transition event: was the step (and, when closing, the case) on time."""
    facts: dict = {}
    if case.due_at is not None and case.paused_at is None:
        facts["step_due_at"] = case.due_at.isoformat()
        facts["on_time"] = now <= case.due_at
    elif case.paused_at is not None and case.paused_step_minutes is not None:
        facts["on_time"] = case.paused_step_minutes >= 0  # stopped (shelved) with time left, or already late
    if case.shelved and dest != source:
        facts["unshelved"] = True
    if dest == "closed" and case.resolve_by is not None:
        facts["case_on_time"] = not case.case_overdue and (case.paused_at is not None or now <= case.resolve_by)
    return facts


def enter_state(case: Case, source: str, now: datetime) -> None:
    """Set the timers of the state the case has just been given (before the change is flushed)."""
    dest = case.state
    if dest != source and source in HANDLER_ROLE:
        # an extension asked for the step just left no longer applies (only handled steps have them)
        db.session.execute(
            update(ExtensionRequest)
            .where(ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending")
            .values(status="withdrawn", decided_at=now)
        )
    if case.shelved and dest != source:
        # acting on a shelved case takes it off the shelf; the transition event records it
        case.shelved = False
        case.shelve_review_at = None
        case.shelve_review_notified = False
        if source != "on_hold":
            resume(case, now)
    if dest == "closed":
        case.due_at = case.warn_at = case.red_at = None
        case.paused_at = case.paused_step_minutes = case.paused_case_minutes = None
        case.escalation_level = 0
        _refresh_next_check(case)
    elif dest == "on_hold":
        pause(case, now)
    elif source == "on_hold" and dest == "firm_processing":
        resume(case, now)
    else:
        if source == "closed":
            start_case_clock(case, now)
        start_step(case, now)


def on_reassigned(case: Case, event: CaseEvent, now: datetime) -> None:
    """A new handler gets the full time of the step; the whole-case clock runs on."""
    changes = event.payload or {}
    grid_change = "grid_worker" in changes and case.state in ("grid_assigned", "grid_handling")
    firm_change = "firm" in changes and case.state == "firm_dispatched"
    if (grid_change or firm_change) and case.paused_at is None:
        start_step(case, now)
    if grid_change or firm_change or "compound" in changes:
        ref = case.ref

        def render():
            return (_("Case %(ref)s was assigned to you", ref=ref), _("Reason: %(note)s", note=event.note or ""))

        notify.notify(notify.handlers_for(case), "assigned", render, case_id=case.id, now=now)


# ----------------------------------------------------------------------------------- notifications


def notify_transition(case: Case, event: CaseEvent) -> None:
    """Tell whoever must act now (new work, a return, a resident's send-back, a branch decline)."""
    trigger, ref, note = event.trigger, case.ref, event.note or ""
    # from the cache, not case.category: an intake notifies before its case is written (its rows go out together)
    found = lookups.get(Category, case.category_id)
    category = found.name_zh if found is not None else ""

    def new_work():
        return (
            _("New case %(ref)s: %(category)s", ref=ref, category=category),
            _("%(action)s — %(note)s", action=L.trigger_label(trigger), note=note or case.description[:200]),
        )

    if trigger in ("firm_complete", "resolve_on_site"):
        from app.notify import resident

        resident.work_done(case, event.created_at)  # "please confirm", with the sign-off link and code
    if trigger in ("route", "dispatch_to_firm", "branch_approve", "refer_to_branch"):
        notify.notify(notify.handlers_for(case), "new_work", new_work, case_id=case.id, now=event.created_at)
    elif trigger == "firm_return":

        def returned():
            return (_("Case %(ref)s was returned by the property firm", ref=ref), _("Reason: %(note)s", note=note))

        notify.notify(notify.grid_workers_for(case), "returned", returned, case_id=case.id, now=event.created_at)
    elif trigger == "signoff" and case.state != "closed":

        def sent_back():
            return (
                _("Case %(ref)s was sent back by the resident", ref=ref),
                _("The resident is not satisfied: %(comment)s", comment=(event.payload or {}).get("comment", "")),
            )

        notify.notify(notify.handlers_for(case), "sent_back", sent_back, case_id=case.id, now=event.created_at)
    elif trigger == "reopen":

        def reopened():
            return (_("Case %(ref)s was reopened", ref=ref), _("Reason: %(note)s", note=note))

        notify.notify(notify.handlers_for(case), "reopened", reopened, case_id=case.id, now=event.created_at)
    elif trigger == "branch_decline":

        def declined():
            return (_("Case %(ref)s was declined by the party branch", ref=ref), note)

        notify.notify(notify.grid_workers_for(case), "declined", declined, case_id=case.id, now=event.created_at)


# ------------------------------------------------------------------------------ supervisor actions


def _is_supervisor_of(actor, case: Case) -> bool:
    return getattr(actor, "role", None) in (roles.SUPERVISOR, roles.ADMIN) and in_scope(actor, case)


def _lock(case: Case) -> Case:
    from app.cases.services import lock_case

    return lock_case(case.id)


def _record(case: Case, actor, kind: str, now: datetime, note: str | None = None, payload: dict | None = None):
    from app.cases.services import record_event

    case.updated_at = now
    return record_event(case, actor, kind, now=now, note=note, payload=payload)


def urge(case: Case, actor, note: str, *, now: datetime | None = None) -> CaseEvent:
    """催办: a supervisor's note to whoever handles the case now. Raises PermissionDenied,
    ValidationError or Conflict."""
    now = now or utcnow()
    if not _is_supervisor_of(actor, case):
        raise PermissionDenied(_("Only supervisors of this area can urge a case."))
    note = (note or "").strip()
    if not note:
        raise ValidationError(_("Write what you urge."), field="note")
    case = _lock(case)
    if case.state == "closed":
        raise Conflict(_("Case %(ref)s is closed.", ref=case.ref))
    event = _record(case, actor, "urge", now, note=note[:2000])
    facts.record_action(case, "urge", now, actor_id=actor.id)
    ref, who = case.ref, actor.display_name

    def render():
        return (_("%(who)s urges case %(ref)s", who=who, ref=ref), note)

    notify.notify(notify.handlers_for(case), "urge", render, case_id=case.id, now=now)
    return event


def shelve(case: Case, actor, reason: str, review_at: datetime, *, now: datetime | None = None) -> CaseEvent:
    """挂账: stop the clocks of a long-running case until a review date. Supervisors only."""
    now = now or utcnow()
    if not _is_supervisor_of(actor, case):
        raise PermissionDenied(_("Only supervisors of this area can shelve a case."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Say why the case is shelved."), field="reason")
    if review_at is None or review_at <= now:
        raise ValidationError(_("The review date must be in the future."), field="review_at")
    case = _lock(case)
    if case.state == "closed" or case.shelved:
        raise Conflict(_("Case %(ref)s is closed or already shelved.", ref=case.ref))
    case.shelved, case.shelved_at, case.shelve_review_at = True, now, review_at
    case.shelve_reason, case.shelve_review_notified = reason[:2000], False
    pause(case, now)
    _refresh_next_check(case)
    facts.record_action(case, "shelve", now, actor_id=actor.id)
    facts.pause_step(case, now)
    return _record(case, actor, "shelve", now, note=reason, payload={"review_at": review_at.isoformat()})


def _unshelve(case: Case, actor, now: datetime, note: str | None = None) -> CaseEvent:
    case.shelved = False
    case.shelve_review_at = None
    case.shelve_review_notified = False
    if case.state != "on_hold":
        resume(case, now)
        facts.resume_step(case, now)
    _refresh_next_check(case)
    facts.end_shelving(case, now)
    return _record(case, actor, "unshelve", now, note=note)


def unshelve(case: Case, actor, note: str | None = None, *, now: datetime | None = None) -> CaseEvent:
    """Take a case off the shelf: its clocks run again with the time that was left."""
    now = now or utcnow()
    if not _is_supervisor_of(actor, case):
        raise PermissionDenied(_("Only supervisors of this area can unshelve a case."))
    case = _lock(case)
    if not case.shelved:
        raise Conflict(_("Case %(ref)s is not shelved.", ref=case.ref))
    return _unshelve(case, actor, now, note=(note or "").strip() or None)


def can_request_extension(actor, case: Case) -> bool:
    return (
        HANDLER_ROLE.get(case.state) == getattr(actor, "role", None)
        and in_scope(actor, case)
        and case.due_at is not None
        and case.paused_at is None
    )


def request_extension(
    case: Case, actor, proposed_due_at: datetime, reason: str, *, now: datetime | None = None
) -> ExtensionRequest:
    """延期申请 by the current handler, before the deadline. Raises PermissionDenied, ValidationError
    or Conflict (deadline passed, a request already pending)."""
    now = now or utcnow()
    case = _lock(case)
    if not can_request_extension(actor, case):
        raise PermissionDenied(_("Only the current handler of a running step can ask for more time."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Say why more time is needed."), field="reason")
    if now >= case.due_at:
        raise Conflict(_("The deadline has passed: an extension must be asked for before it."))
    if proposed_due_at is None or proposed_due_at <= case.due_at:
        raise ValidationError(
            _(
                "The new deadline must be later than the current one (%(due)s).",
                due=to_local(case.due_at).strftime("%Y-%m-%d %H:%M"),
            ),
            field="proposed_due_at",
        )
    if proposed_due_at > case.due_at + timedelta(days=MAX_EXTENSION_DAYS):
        raise ValidationError(
            _(
                "At most %(days)d days more; for longer matters ask a supervisor to shelve the case.",
                days=MAX_EXTENSION_DAYS,
            ),
            field="proposed_due_at",
        )
    pending = db.session.scalar(
        select(ExtensionRequest.id).where(ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending")
    )
    if pending:
        raise Conflict(_("An extension request for this case is already waiting for a decision."))
    request = ExtensionRequest(
        case_id=case.id,
        state=case.state,
        current_due_at=case.due_at,
        proposed_due_at=proposed_due_at,
        reason=reason[:2000],
        status="pending",
        requested_by_id=actor.id,
        requested_at=now,
    )
    db.session.add(request)
    db.session.flush()
    _record(
        case,
        actor,
        "extension_request",
        now,
        note=reason,
        payload={
            "request_id": request.id,
            "current_due_at": case.due_at.isoformat(),
            "proposed_due_at": proposed_due_at.isoformat(),
        },
    )
    ref, who = case.ref, actor.display_name
    new_due = to_local(proposed_due_at).strftime("%Y-%m-%d %H:%M")

    def render():
        return (
            _("%(who)s asks for more time on case %(ref)s", who=who, ref=ref),
            _("New deadline %(due)s. Reason: %(reason)s", due=new_due, reason=reason),
        )

    notify.notify(notify.community_supervisors_for(case), "extension_request", render, case_id=case.id, now=now)
    return request


def pending_extension(case: Case) -> ExtensionRequest | None:
    return db.session.scalar(
        select(ExtensionRequest).where(ExtensionRequest.case_id == case.id, ExtensionRequest.status == "pending")
    )


def decide_extension(
    case: Case, actor, approve: bool, note: str | None = None, *, now: datetime | None = None
) -> ExtensionRequest:
    """A supervisor of the case's area approves or denies the pending extension request."""
    now = now or utcnow()
    if not _is_supervisor_of(actor, case):
        raise PermissionDenied(_("Only supervisors of this area decide extension requests."))
    case = _lock(case)
    request = pending_extension(case)
    if request is None:
        raise Conflict(_("No extension request is waiting for a decision."))
    note = (note or "").strip() or None
    if approve and not note:
        note = None
    if not approve and not note:
        raise ValidationError(_("Say why the extension is denied."), field="note")
    if case.state != request.state or case.due_at is None:
        request.status, request.decided_at, request.decided_by_id = "withdrawn", now, actor.id
        raise Conflict(_("The case has moved on to another step; the request no longer applies."))
    if approve and request.proposed_due_at <= now:
        raise Conflict(_("The proposed deadline has already passed; ask for a new one."))
    request.status = "approved" if approve else "denied"
    request.decided_by_id, request.decided_at, request.decision_note = actor.id, now, note
    payload = {"request_id": request.id, "approved": approve}
    if approve:
        calendar = load_calendar()
        _set_thresholds(case, calendar, request.proposed_due_at)
        case.escalation_level = 0 if now < case.warn_at else 1
        _refresh_next_check(case)
        payload["due_at"] = case.due_at.isoformat()
    _record(case, actor, "extension_decision", now, note=note, payload=payload)
    ref = case.ref

    def render():
        title = (
            _("Extension for case %(ref)s approved", ref=ref)
            if approve
            else _("Extension for case %(ref)s denied", ref=ref)
        )
        return title, note or ""

    notify.notify([request.requested_by], "extension_decision", render, case_id=case.id, now=now)
    db.session.flush()
    return request


# --------------------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    warned: int = 0
    yellow: int = 0
    red: int = 0
    auto_closed: int = 0
    case_overdue: int = 0
    shelve_reviews: int = 0
    notifications: int = 0
    examined: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: SweepResult) -> None:
        for name in (
            "warned",
            "yellow",
            "red",
            "auto_closed",
            "case_overdue",
            "shelve_reviews",
            "notifications",
            "examined",
            "batches",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


SWEEP_COLUMNS = (
    Case.id,
    Case.ref,
    Case.state,
    Case.urgency,
    Case.category_id,
    Case.escalation_level,
    Case.warn_at,
    Case.due_at,
    Case.red_at,
    Case.resolve_by,
    Case.case_overdue,
    Case.paused_at,
    Case.shelved,
    Case.shelve_review_at,
    Case.shelve_review_notified,
    Case.community_id,
    Case.street_id,
    Case.compound_id,
    Case.grid_id,
    Case.firm_id,
    Case.branch_id,
    Case.assigned_grid_worker_id,
    Case.channel,
)


class _Recipients:
    """All people the sweep may notify for a batch, loaded with one query."""

    def __init__(self, rows):
        grids = {r.grid_id for r in rows if r.grid_id}
        firms = {r.firm_id for r in rows if r.firm_id}
        branches = {r.branch_id for r in rows if r.branch_id}
        communities = {r.community_id for r in rows if r.community_id}
        streets = {r.street_id for r in rows if r.street_id}
        assignees = {r.assigned_grid_worker_id for r in rows if r.assigned_grid_worker_id}
        people = db.session.scalars(
            select(User).where(
                User.active.is_(True),
                or_(
                    User.id.in_(assignees),
                    User.grid_id.in_(grids),
                    User.firm_id.in_(firms),
                    User.branch_id.in_(branches),
                    User.community_id.in_(communities),
                    User.street_id.in_(streets),
                ),
            )
        ).all()
        self.by_id = {u.id: u for u in people}
        self.index: dict[tuple[str, int], list[User]] = {}
        for user in people:
            for kind in ("grid", "firm", "branch", "community", "street"):
                value = getattr(user, f"{kind}_id")
                if value is not None:
                    self.index.setdefault((f"{user.role}:{kind}", value), []).append(user)

    def _of(self, role: str, kind: str, value) -> list[User]:
        return self.index.get((f"{role}:{kind}", value), []) if value else []

    def handlers(self, row) -> list[User]:
        if row.state in ("grid_assigned", "grid_handling", "awaiting_signoff"):
            assignee = self.by_id.get(row.assigned_grid_worker_id)
            return [assignee] if assignee else self._of(roles.GRID_WORKER, "grid", row.grid_id)
        if row.state == "branch_review":
            return self._of(roles.BRANCH_SECRETARY, "branch", row.branch_id)
        if row.state in ("firm_dispatched", "firm_processing", "on_hold"):
            return self._of(roles.PROPERTY_MANAGER, "firm", row.firm_id)
        return self.community(row)

    def community(self, row) -> list[User]:
        return self._of(roles.SUPERVISOR, "community", row.community_id) or self.street(row)

    def street(self, row) -> list[User]:
        return self._of(roles.SUPERVISOR, "street", row.street_id)


def _escalation_message(level: int, ref: str, state: str, due: datetime | None):
    due_text = to_local(due).strftime("%Y-%m-%d %H:%M") if due else ""

    def render():
        step = L.state_label(state)
        if level == 1:
            return (
                _("Case %(ref)s is near its deadline", ref=ref),
                _("Step “%(step)s” is due at %(due)s.", step=step, due=due_text),
            )
        if level == 2:
            return (
                _("Yellow card: case %(ref)s is overdue", ref=ref),
                _("Step “%(step)s” was due at %(due)s.", step=step, due=due_text),
            )
        return (
            _("Red card: case %(ref)s is long overdue", ref=ref),
            _(
                "Step “%(step)s” was due at %(due)s and is now overdue by as long as its limit.",
                step=step,
                due=due_text,
            ),
        )

    return render


UNNEST_UPDATE = sql_text(
    'UPDATE "case" SET escalation_level = v.level, case_overdue = v.overdue, shelve_review_notified = v.reviewed, '
    "next_check_at = v.next_check FROM unnest(CAST(:ids AS integer[]), CAST(:levels AS integer[]), "
    "CAST(:overdue AS boolean[]), CAST(:reviewed AS boolean[]), CAST(:next_checks AS timestamptz[])) "
    'AS v(id, level, overdue, reviewed, next_check) WHERE "case".id = v.id'
)


def _write_levels(updates: list[dict]) -> None:
    """Write the new levels and next checks: one statement on PostgreSQL, executemany elsewhere."""
    if not updates:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            UNNEST_UPDATE,
            {
                "ids": [u["b_id"] for u in updates],
                "levels": [u["b_level"] for u in updates],
                "overdue": [u["b_overdue"] for u in updates],
                "reviewed": [u["b_reviewed"] for u in updates],
                "next_checks": [u["b_next"] for u in updates],
            },
        )
        return
    db.session.execute(
        update(Case.__table__)
        .where(Case.__table__.c.id == bindparam("b_id"))
        .values(
            escalation_level=bindparam("b_level"),
            case_overdue=bindparam("b_overdue"),
            shelve_review_notified=bindparam("b_reviewed"),
            next_check_at=bindparam("b_next"),
        ),
        updates,
    )


def _system_event(row, now: datetime, kind: str, payload: dict) -> dict:
    """A case event row written by the sweep (the system acts; no state change)."""
    return {
        "case_id": row.id,
        "created_at": now,
        "kind": kind,
        "actor_id": None,
        "actor_role": d.SYSTEM,
        "actor_name": "system",
        "trigger": None,
        "from_state": row.state,
        "to_state": None,
        "note": None,
        "payload": payload,
    }


def sweep_batch(now: datetime | None = None, limit: int = 1000) -> SweepResult:
    """Escalate up to ``limit`` cases whose next check has come, in one unit of work (flushed, not
    committed). Returns what was done; ``examined < limit`` means nothing more is due."""
    now = now or utcnow()
    result = SweepResult(batches=1)
    query = select(*SWEEP_COLUMNS).where(Case.next_check_at <= now).order_by(Case.next_check_at).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Case, skip_locked=True)
    rows = db.session.execute(query).all()
    result.examined = len(rows)
    if not rows:
        return result
    recipients = _Recipients(rows)
    bulk = notify.Bulk()
    events, updates, to_auto_close, cards, raised = [], [], [], [], {}
    for row in rows:
        level, overdue, reviewed = row.escalation_level, row.case_overdue, row.shelve_review_notified
        running = row.paused_at is None and row.state != "closed"
        if running and row.state == "awaiting_signoff" and row.due_at is not None and row.due_at <= now:
            to_auto_close.append(row.id)
            continue
        if running:
            for target, at in ((1, row.warn_at), (2, row.due_at), (3, row.red_at)):
                if level < target and at is not None and at <= now:
                    level = target
                    raised[row.id] = target
                    if target >= 2:
                        cards.append(facts.card_rows(row, target, now))
                    events.append(
                        _system_event(
                            row,
                            now,
                            "escalation",
                            {
                                "level": target,
                                "card": CARDS[target],
                                "threshold_at": at.isoformat(),
                                "due_at": row.due_at.isoformat() if row.due_at else None,
                            },
                        )
                    )
                    people = list(recipients.handlers(row))
                    if target >= 2:
                        people += recipients.community(row)
                    if target == 3:
                        people += recipients.street(row)
                    bulk.add(
                        people,
                        f"escalation_{target}",
                        _escalation_message(target, row.ref, row.state, row.due_at),
                        row.id,
                    )
                    counter = LEVEL_COUNTERS[target]
                    setattr(result, counter, getattr(result, counter) + 1)
            if row.resolve_by is not None and not overdue and row.resolve_by <= now:
                overdue = True
                result.case_overdue += 1
                events.append(
                    _system_event(
                        row, now, "escalation", {"case_overdue": True, "resolve_by": row.resolve_by.isoformat()}
                    )
                )
                ref = row.ref

                def case_late(ref=ref):
                    return (_("Case %(ref)s has exceeded its overall time limit", ref=ref), "")

                bulk.add(recipients.community(row), "case_overdue", case_late, row.id)
        if row.shelved and row.shelve_review_at is not None and not reviewed and row.shelve_review_at <= now:
            reviewed = True
            result.shelve_reviews += 1
            events.append(_system_event(row, now, "shelve_review", {"review_at": row.shelve_review_at.isoformat()}))
            ref = row.ref

            def review(ref=ref):
                return (_("Shelved case %(ref)s is due for review", ref=ref), "")

            bulk.add(recipients.community(row), "shelve_review", review, row.id)
        thresholds = {0: row.warn_at, 1: row.due_at, 2: row.red_at}
        candidates = []
        if running:
            if thresholds.get(level) is not None:
                candidates.append(thresholds[level])
            if row.resolve_by is not None and not overdue:
                candidates.append(row.resolve_by)
        if row.shelved and row.shelve_review_at is not None and not reviewed:
            candidates.append(row.shelve_review_at)
        updates.append(
            {
                "b_id": row.id,
                "b_level": level,
                "b_overdue": overdue,
                "b_reviewed": reviewed,
                "b_next": min(candidates) if candidates else None,
            }
        )
    _write_levels(updates)
    insert_rows(CaseEvent, events)
    insert_rows(ActionFact, cards)
    facts.raise_step_levels(raised)
    result.notifications = bulk.flush(now)
    if to_auto_close:
        from app.cases.services import fire

        for case in db.session.scalars(select(Case).where(Case.id.in_(to_auto_close)).order_by(Case.id)):
            fire(case, "auto_close", SYSTEM_ACTOR, now=now, lock=False)
            result.auto_closed += 1
    db.session.flush()
    return result


def run_sweep(now: datetime | None = None, batch: int = 1000, max_batches: int = 10_000) -> SweepResult:
    """Sweep until nothing is due, committing after every batch (the edge of the scheduler and CLI).

    A batch that fails is rolled back and reported; the next run will try it again.
    """
    total = SweepResult()
    for _i in range(max_batches):
        try:
            result = sweep_batch(now, batch)
            db.session.commit()
        except Exception as error:  # noqa: BLE001 - report, roll back, let the next run retry
            db.session.rollback()
            log.exception("escalation sweep batch failed")
            total.errors.append(str(error))
            break
        total.add(result)
        if result.examined < batch:
            break
    return total


# ------------------------------------------------------------------------------------------- display


def humanize(minutes: float) -> str:
    """A duration in days, hours and minutes for people (e.g. "2 d 3 h", "45 min")."""
    minutes = int(round(abs(minutes)))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return _("%(d)d d %(h)d h", d=days, h=hours) if hours else _("%(d)d d", d=days)
    if hours:
        return _("%(h)d h %(m)d min", h=hours, m=mins) if mins else _("%(h)d h", h=hours)
    return _("%(m)d min", m=mins)


def timer_view(case: Case, user, now: datetime | None = None) -> dict:
    """What the case page shows about time: deadline, level, pause, shelf, extension, allowed actions."""
    now = now or utcnow()
    view: dict = {"level": case.escalation_level, "card": CARDS.get(case.escalation_level), "now": now}
    if case.due_at is not None:
        view["due_at"] = case.due_at
        view["overdue"] = now > case.due_at
        view["left"] = humanize((case.due_at - now).total_seconds() / 60)
    if case.paused_at is not None:
        view["paused_at"] = case.paused_at
        if case.paused_step_minutes is not None:
            view["paused_left"] = humanize(case.paused_step_minutes)
            view["paused_overdue"] = case.paused_step_minutes < 0
    view["resolve_by"] = case.resolve_by
    view["case_overdue"] = case.case_overdue
    view["pending"] = pending_extension(case) if case.state != "closed" else None
    is_supervisor = _is_supervisor_of(user, case) and case.state != "closed"
    view["can_urge"] = is_supervisor
    view["can_shelve"] = is_supervisor and not case.shelved
    view["can_unshelve"] = is_supervisor and case.shelved
    view["can_decide"] = is_supervisor and view["pending"] is not None
    view["can_request"] = (
        can_request_extension(user, case) and view["pending"] is None and case.due_at is not None and now < case.due_at
    )
    return view
