"""Re-time open cases when the working calendar changes, and import a year's holiday schedule.

When an administrator enters a year's holidays (``flask calendar import``, the override screens), confirms a
year or changes the business hours, the deadlines already stored on open cases were computed on the old
calendar. :func:`retime_open_cases` recomputes them:

- each running clock keeps the budget it had under the old calendar, measured from its start (the step:
  when the case entered its state; the whole case: when it was registered) — the working time already used
  is re-measured on the new calendar, so no clock restarts and nothing is granted twice;
- working-day limits stay working days (the end of business of the N-th working day after the start day),
  working-minute limits stay business minutes; calendar-time limits (urgent cases) do not depend on the
  calendar and are left alone;
- the escalation level is kept (a warned or carded case is not warned or carded again by the next sweep);
  warning, deadline, red-card instants and the sweep's next check are recomputed;
- paused (on hold, shelved) and closed cases are untouched: their remaining time is re-applied on the
  calendar of the day they resume;
- every case whose deadline moved gets a ``deadline_moved`` event naming the change.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select

from app.cases.actors import SYSTEM_ACTOR
from app.cases.models import Case
from app.core.errors import ValidationError
from app.core.timeutil import app_tz, to_local, utcnow
from app.extensions import db
from app.sla import services as sla
from app.sla.calendar import WORKING_DAYS, WorkCalendar
from app.sla.models import WHOLE_CASE, CalendarYear, HolidayOverride

BATCH = 500
MAX_SCHEDULE_BYTES = 1_000_000


@dataclass
class RetimeResult:
    examined: int = 0
    moved: list[str] = field(default_factory=list)


def snapshot_calendar() -> WorkCalendar:
    """The working calendar as the database holds it now (not the request's cached copy)."""
    calendar = sla.load_calendar(fresh=True)
    return replace(calendar, overrides=dict(calendar.overrides), missing_years=set())


def _working_days_after(calendar: WorkCalendar, start: datetime, end: datetime) -> int:
    """Working days after the start day up to and including the end day (自次日起)."""
    first = to_local(start).date() + timedelta(days=1)
    return len(calendar.working_days(first, to_local(end).date()))


def _moved_deadline(
    deadline: datetime, start: datetime, before: WorkCalendar, after: WorkCalendar, by_days: bool
) -> datetime | None:
    """``deadline`` of a clock started at ``start`` re-measured on ``after``, or None when unchanged."""
    start = min(start, deadline)
    if by_days and to_local(deadline).date() > to_local(start).date():
        days = _working_days_after(before, start, deadline)
        local_due = to_local(deadline)
        if days > 0 and local_due == before.end_of_business(local_due.date()).astimezone(local_due.tzinfo):
            if _working_days_after(after, start, deadline) == days and after.is_working_day(local_due.date()):
                if after.end_of_business(local_due.date()) == before.end_of_business(local_due.date()):
                    return None
            return after.add_working_days(start, days)
    budget = before.business_minutes_between(start, deadline)
    if after.business_minutes_between(start, deadline) == budget:
        return None
    return after.add_business_minutes(start, budget)


def _is_by_days(state: str, urgency: str) -> bool:
    limit = sla.policy_limit(state, urgency)
    return limit is not None and limit.unit == WORKING_DAYS


def _window(days: tuple[date, date] | None):
    """Only cases whose clocks can reach the changed days (all open running cases without ``days``)."""
    running = and_(Case.state != "closed", Case.paused_at.is_(None))
    clocks = or_(
        and_(Case.due_at.is_not(None), Case.step_working.is_(True)),
        and_(Case.resolve_by.is_not(None), Case.case_working.is_(True), Case.case_overdue.is_(False)),
    )
    clause = and_(running, clocks)
    if days is not None:
        tz = app_tz()
        first = datetime.combine(days[0], time(0), tz)
        last = datetime.combine(days[1] + timedelta(days=1), time(0), tz)
        clause = and_(clause, Case.created_at < last, or_(Case.due_at >= first, Case.resolve_by >= first))
    return clause


def retime_open_cases(
    before: WorkCalendar,
    after: WorkCalendar,
    reason: str,
    *,
    days: tuple[date, date] | None = None,
    actor=SYSTEM_ACTOR,
    now: datetime | None = None,
) -> RetimeResult:
    """Recompute the deadlines of open, running cases after the calendar changed from ``before`` to
    ``after`` (``days``: the first and last changed day, None for a change of business hours).

    Flushes, does not commit. Each moved case gets a ``deadline_moved`` event with ``reason`` as its note.
    Raises nothing for a calendar without working time: such cases keep their deadlines.
    """
    from app.cases.services import record_event

    now = now or utcnow()
    result = RetimeResult()
    last_id = 0
    while True:
        query = select(Case).where(_window(days), Case.id > last_id).order_by(Case.id).limit(BATCH)
        if db.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=Case)
        cases = db.session.scalars(query).all()
        if not cases:
            break
        last_id = cases[-1].id
        restarts = _restarts([case.id for case in cases])
        for case in cases:
            result.examined += 1
            payload = _retime(case, before, after, restarts.get(case.id, {}))
            if payload:
                case.updated_at = now
                record_event(case, actor, "deadline_moved", now=now, note=reason, payload=payload)
                result.moved.append(case.ref)
        db.session.flush()
        if len(cases) < BATCH:
            break
    return result


def retime_after_change(before: WorkCalendar, reason: str, *, actor=SYSTEM_ACTOR, now=None) -> RetimeResult:
    """Compare ``before`` with the calendar the database holds now and re-time what the difference
    affects (changed days, or everything running when the business hours changed). Flushes."""
    db.session.flush()
    sla.forget_cached_settings()
    after = snapshot_calendar()
    if after.periods != before.periods or after.fallback_weekdays != before.fallback_weekdays:
        days = None
    else:
        changed = [
            day
            for day in set(before.overrides) | set(after.overrides)
            if before.is_working_day(day) != after.is_working_day(day)
        ]
        if not changed:
            return RetimeResult()
        days = (min(changed), max(changed))
    return retime_open_cases(before, after, reason, days=days, actor=actor, now=now)


def _restarts(case_ids: list[int]) -> dict[int, dict[str, datetime]]:
    """When each clock last (re)started, besides entering the state or registering: the last time the case
    came off the shelf (both clocks), and was resumed or reopened (the whole-case clock)."""
    from app.cases.models import CaseEvent

    found: dict[int, dict[str, datetime]] = {}
    rows = db.session.execute(
        select(CaseEvent.case_id, CaseEvent.kind, CaseEvent.trigger, func.max(CaseEvent.created_at))
        .where(
            CaseEvent.case_id.in_(case_ids),
            or_(CaseEvent.kind == "unshelve", CaseEvent.trigger.in_(("reopen", "resume"))),
        )
        .group_by(CaseEvent.case_id, CaseEvent.kind, CaseEvent.trigger)
    )
    for case_id, kind, _trigger, at in rows:
        marks = found.setdefault(case_id, {})
        keys = ("step", "case") if kind == "unshelve" else ("case",)
        for key in keys:
            if key not in marks or at > marks[key]:
                marks[key] = at
    return found


def _retime(case: Case, before: WorkCalendar, after: WorkCalendar, restarts: dict[str, datetime]) -> dict:
    from app.sla.calendar import CalendarError

    payload: dict = {}
    step_start = max(case.state_entered_at, restarts.get("step", case.state_entered_at))
    case_start = max(case.created_at, restarts.get("case", case.created_at))
    try:
        if case.due_at is not None and case.step_working:
            due = _moved_deadline(case.due_at, step_start, before, after, _is_by_days(case.state, case.urgency))
            if due is not None and due != case.due_at:
                payload["previous_due_at"] = case.due_at.isoformat()
                payload["due_at"] = due.isoformat()
                sla._set_thresholds(case, after, due)
        if case.resolve_by is not None and case.case_working and not case.case_overdue:
            resolve_by = _moved_deadline(
                case.resolve_by, case_start, before, after, _is_by_days(WHOLE_CASE, case.urgency)
            )
            if resolve_by is not None and resolve_by != case.resolve_by:
                payload["previous_resolve_by"] = case.resolve_by.isoformat()
                payload["resolve_by"] = resolve_by.isoformat()
                case.resolve_by = resolve_by
    except CalendarError:
        return {}
    if payload:
        sla._refresh_next_check(case)
    return payload


# ------------------------------------------------------------------------------ schedule import


@dataclass
class ScheduleDay:
    day: date
    is_working: bool
    name: str


@dataclass
class ImportResult:
    year: int
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    confirmed: bool = False
    retimed: RetimeResult = field(default_factory=RetimeResult)


def parse_schedule(data: bytes, filename: str = "") -> tuple[int, list[ScheduleDay]]:
    """Read a year's schedule: ``holiday-cn`` JSON or CSV rows ``date,off|work,name``.

    Returns (year, days). Raises :class:`ValidationError` naming the line or entry that is wrong, when the
    days span more than one year, or when the file is empty.
    """
    if len(data) > MAX_SCHEDULE_BYTES:
        raise ValidationError(_("The schedule file is larger than 1 MB."))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise ValidationError(_("The schedule file is neither UTF-8 nor GB18030 text.")) from None
    stripped = text.lstrip()
    days: list[ScheduleDay] = []
    declared_year = None
    if stripped.startswith("{") or filename.lower().endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValidationError(_("The schedule is not valid JSON: %(error)s", error=str(error))) from None
        if not isinstance(document, dict) or not isinstance(document.get("days"), list):
            raise ValidationError(_('The JSON schedule needs a "days" list (holiday-cn format).'))
        declared_year = document.get("year")
        for index, entry in enumerate(document["days"], start=1):
            if not isinstance(entry, dict) or not isinstance(entry.get("isOffDay"), bool):
                raise ValidationError(_('Entry %(n)d needs "date" and "isOffDay" (true or false).', n=index))
            days.append(
                ScheduleDay(_date(entry.get("date"), index), not entry["isOffDay"], str(entry.get("name") or ""))
            )
    else:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                continue
            if number == 1 and row[0].strip().lower() in ("date", "日期"):
                continue
            if len(row) < 2:
                raise ValidationError(_("Line %(n)d: give date, off or work, and a name.", n=number))
            kind = row[1].strip().lower()
            if kind in ("off", "holiday", "休", "休息", "放假"):
                working = False
            elif kind in ("work", "working", "班", "上班", "补班"):
                working = True
            else:
                raise ValidationError(_("Line %(n)d: the second column is off or work.", n=number))
            days.append(ScheduleDay(_date(row[0], number), working, (row[2] if len(row) > 2 else "").strip()))
    if not days:
        raise ValidationError(_("The schedule lists no days."))
    years = {d.day.year for d in days}
    if len(years) > 1 and declared_year in years:
        # holiday-cn files may list a holiday running into the next year; keep them all under the declared year
        years = {declared_year}
    if len(years) != 1:
        raise ValidationError(_("A schedule file covers one year; this one covers %(years)s.", years=sorted(years)))
    year = years.pop()
    if declared_year is not None and declared_year != year:
        raise ValidationError(_("The file says year %(a)s but its days are in %(b)d.", a=declared_year, b=year))
    seen: dict[date, bool] = {}
    for item in days:
        if seen.get(item.day, item.is_working) != item.is_working:
            raise ValidationError(_("%(day)s is listed both as a holiday and as a working day.", day=item.day))
        seen[item.day] = item.is_working
    return year, days


def _date(value, where: int) -> date:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(_("Line %(n)d: %(value)s is not a date like 2027-02-06.", n=where, value=value)) from None


def import_schedule(data: bytes, filename: str, actor, *, now: datetime | None = None) -> ImportResult:
    """Write a year's schedule as overrides, confirm the year and re-time the open cases it affects.

    Flushes, does not commit. Raises :class:`ValidationError` for a file that cannot be read.
    """
    now = now or utcnow()
    year, days = parse_schedule(data, filename)
    before = snapshot_calendar()
    result = ImportResult(year=year)
    existing = {
        o.day: o
        for o in db.session.scalars(select(HolidayOverride).where(HolidayOverride.day.in_([d.day for d in days])))
    }
    for item in days:
        note = (item.name or (_("working day") if item.is_working else _("holiday")))[:200]
        row = existing.get(item.day)
        if row is None:
            db.session.add(
                HolidayOverride(
                    day=item.day, is_working=item.is_working, note=note, created_by_id=getattr(actor, "id", None)
                )
            )
            result.added += 1
        elif row.is_working != item.is_working:
            row.is_working, row.note = item.is_working, note
            result.changed += 1
        else:
            result.unchanged += 1
    if not before.year_published(year) and db.session.get(CalendarYear, year) is None:
        db.session.add(
            CalendarYear(
                year=year,
                note=_("Imported from %(file)s", file=filename)[:200],
                confirmed_by_id=getattr(actor, "id", None),
                confirmed_at=now,
            )
        )
        result.confirmed = True
    result.retimed = retime_after_change(
        before, _("The %(year)d holiday schedule was imported.", year=year), actor=actor, now=now
    )
    return result
