"""One definition of every figure (DESIGN §5), for the dashboard, the bulletin, the rating and the API.

Every figure is an aggregate over the fact rows of :mod:`app.reports.models` (and follow-ups) in a
period, grouped by a slice, limited by :func:`app.auth.permissions.scope_clause` to what the user may
see — the same condition as every case list. A figure is attributed to the party responsible when the
fact happened (a firm is judged on its own steps; see :mod:`app.reports.facts`). The definitions are
written out in ``docs/figures.md`` and in :data:`FIGURES`, which the pages show next to each number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy import case as sql_case

from app.auth.models import User
from app.auth.permissions import scope_clause
from app.cases.labels import CHANNEL_LABELS, URGENCY_LABELS
from app.cases.models import CHANNELS, URGENCIES, Category, FollowUp
from app.core.errors import ValidationError
from app.core.timeutil import app_tz, as_utc, to_local, utcnow
from app.extensions import db
from app.org.models import Community, Compound, Grid, PropertyFirm, Street
from app.reports.models import COUNTERS, FLOAT_COUNTERS, TIMED_STEPS, ActionFact, StepFact, fact_rollup
from workflows.definitions import AUTO_CLOSED

DEFAULT_WEIGHTS = {"response": 0.1, "resolution": 0.5, "satisfaction": 0.4}
BASIC_SATISFACTION_WEIGHT = 0.9

# ------------------------------------------------------------------------------------------ periods


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of instants with its name (``2026-11``, ``2026-Q4`` …)."""

    label: str
    start: datetime
    end: datetime
    kind: str = "month"

    @property
    def is_past(self) -> bool:
        return self.end <= utcnow()

    def as_of(self, now: datetime | None = None) -> datetime:
        """The instant the period's end-of-period figures (backlog) are taken at: its end, or now."""
        now = now or utcnow()
        return min(self.end, now)


MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
QUARTER_RE = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
YEAR_RE = re.compile(r"^(\d{4})$")
RANGE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*(?:\.\.|/|~|to)\s*(\d{4}-\d{2}-\d{2})$")


def cutoff_day() -> int | None:
    """The reporting month's cut-off day (``RATES_CUTOFF_DAY``), None for calendar months."""
    day = current_app.config.get("RATES_CUTOFF_DAY") if has_app_context() else None
    return int(day) if day else None


def _local_midnight(day: date) -> datetime:
    return as_utc(datetime.combine(day, time(0, 0), tzinfo=app_tz()))


def _month_bounds(year: int, month: int, cutoff: int | None) -> tuple[date, date]:
    """First day and the day after the last day of reporting month ``year-month``."""
    if cutoff:
        previous = date(year - 1, 12, 1) if month == 1 else date(year, month - 1, 1)
        first = date(previous.year, previous.month, min(cutoff, 28)) + timedelta(days=1)
        after = date(year, month, min(cutoff, 28)) + timedelta(days=1)
    else:
        first = date(year, month, 1)
        after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first, after


def month_period(year: int, month: int, cutoff: int | None = None) -> Period:
    """Reporting month ``year-month``: the calendar month or, with cut-off day ``d``, from the day after
    ``d`` of the previous month to the end of day ``d`` (e.g. 26 Oct – 25 Nov)."""
    first, after = _month_bounds(year, month, cutoff)
    return Period(f"{year:04d}-{month:02d}", _local_midnight(first), _local_midnight(after), "month")


def quarter_period(year: int, quarter: int, cutoff: int | None = None) -> Period:
    first, _after = _month_bounds(year, 3 * quarter - 2, cutoff)
    _first, after = _month_bounds(year, 3 * quarter, cutoff)
    return Period(f"{year:04d}-Q{quarter}", _local_midnight(first), _local_midnight(after), "quarter")


def year_period(year: int, cutoff: int | None = None) -> Period:
    first, _after = _month_bounds(year, 1, cutoff)
    _first, after = _month_bounds(year, 12, cutoff)
    return Period(f"{year:04d}", _local_midnight(first), _local_midnight(after), "year")


def parse_period(text: str | None, now: datetime | None = None) -> Period:
    """A period from ``YYYY-MM`` (reporting month), ``YYYY-Qn``, ``YYYY`` or ``YYYY-MM-DD..YYYY-MM-DD``
    (both days included); default the current reporting month. Raises :class:`ValidationError`."""
    cutoff = cutoff_day()
    text = (text or "").strip()
    if not text:
        return current_month(now)
    bad = ValidationError(
        _("A period is a month (2026-11), a quarter (2026-Q4), a year (2026) or two days (2026-11-01..2026-11-15)."),
        field="period",
    )
    if match := MONTH_RE.match(text):
        year, month = int(match.group(1)), int(match.group(2))
        if not (2000 <= year <= 2999 and 1 <= month <= 12):
            raise bad
        return month_period(year, month, cutoff)
    if match := QUARTER_RE.match(text):
        year = int(match.group(1))
        if not 2000 <= year <= 2999:
            raise bad
        return quarter_period(year, int(match.group(2)), cutoff)
    if match := YEAR_RE.match(text):
        year = int(match.group(1))
        if not 2000 <= year <= 2999:
            raise bad
        return year_period(year, cutoff)
    if match := RANGE_RE.match(text):
        try:
            first, last = date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
        except ValueError:
            raise bad from None
        if last < first or first.year < 2000 or last.year > 2999:
            raise ValidationError(_("The period's last day comes before its first day."), field="period")
        if (last - first).days > 3 * 366:
            raise ValidationError(_("A custom period is at most three years long."), field="period")
        return Period(
            f"{first.isoformat()}..{last.isoformat()}",
            _local_midnight(first),
            _local_midnight(last + timedelta(days=1)),
            "range",
        )
    raise bad


def month_of(instant: datetime) -> tuple[int, int]:
    """The reporting month (year, month) an instant falls in, with the cut-off day."""
    local = to_local(instant)
    cutoff = cutoff_day()
    year, month = local.year, local.month
    if cutoff and local.day > min(cutoff, 28):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return year, month


def current_month(now: datetime | None = None) -> Period:
    year, month = month_of(now or utcnow())
    return month_period(year, month, cutoff_day())


def previous_month(period: Period) -> Period:
    """The reporting month before the one ``period`` starts in."""
    year, month = month_of(period.start)
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return month_period(year, month, cutoff_day())


def months_back(period: Period, count: int) -> list[Period]:
    """``count`` reporting months ending with the one ``period`` ends in (oldest first)."""
    year, month = month_of(period.end - timedelta(seconds=1))
    months = []
    for _i in range(count):
        months.append(month_period(year, month, cutoff_day()))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(months))


# ------------------------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class Slice:
    name: str
    column: str
    model: Any  # the model naming the values, or None for codes (channel, urgency)
    label: Any
    #: a party slice: facts carry this column only where that party was responsible
    party: str | None = None


SLICES: dict[str, Slice] = {
    s.name: s
    for s in (
        Slice("street", "street_id", Street, _l("Street")),
        Slice("community", "community_id", Community, _l("Community")),
        Slice("compound", "compound_id", Compound, _l("Compound")),
        Slice("grid", "grid_id", Grid, _l("Grid")),
        Slice("grid_worker", "grid_worker_id", User, _l("Grid worker")),
        Slice("firm", "firm_id", PropertyFirm, _l("Property firm"), party="firm"),
        Slice("category", "category_id", Category, _l("Category")),
        Slice("channel", "intake_channel", None, _l("Channel")),
        Slice("urgency", "urgency", None, _l("Urgency")),
    )
}


def get_slice(name: str | None) -> Slice:
    """Raises :class:`ValidationError` for an unknown slice."""
    found = SLICES.get((name or "community").strip())
    if found is None:
        raise ValidationError(_("Group the figures by one of %(groups)s.", groups=", ".join(SLICES)), field="group")
    return found


def value_names(slice_: Slice, values: Iterable) -> dict[Any, tuple[str | None, str]]:
    """``value → (code, display name)`` for the group values of a slice."""
    values = [v for v in values if v is not None]
    if slice_.model is None:
        labels = CHANNEL_LABELS if slice_.name == "channel" else URGENCY_LABELS  # the case pages' labels
        return {v: (v, str(labels.get(v, v))) for v in values}
    if not values:
        return {}
    model = slice_.model
    names = {}
    for obj in db.session.scalars(select(model).where(model.id.in_(values))):
        if model is User:
            names[obj.id] = (obj.username, obj.display_name)
        elif model is Category:
            names[obj.id] = (obj.code, obj.name)
        else:
            names[obj.id] = (obj.code, obj.name)
    return names


def slice_values(slice_: Slice) -> list[Any]:
    """Known codes of a code slice (channel, urgency)."""
    return list(CHANNELS) if slice_.name == "channel" else list(URGENCIES) if slice_.name == "urgency" else []


# ------------------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Figure:
    """A figure's name, label and the sentence that says how it is computed."""

    name: str
    label: Any
    how: Any
    percent: bool = True


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure(
            "response_rate",
            _l("Response rate"),
            _l("Follow-ups in which the resident says they were contacted ÷ valid follow-ups recorded in the period."),
        ),
        Figure(
            "resolution_rate",
            _l("Resolution rate"),
            _l("Follow-ups in which the resident says the matter is resolved ÷ valid follow-ups in the period."),
        ),
        Figure(
            "satisfaction_rate",
            _l("Satisfaction rate"),
            _l(
                "(satisfied + 0.9 × basically satisfied) ÷ valid follow-ups in the period. Auto-closed cases have "
                "no follow-up and never count as satisfied; follow-ups marked invalid by a supervisor do not count."
            ),
        ),
        Figure(
            "composite",
            _l("Composite rate"),
            _l("0.1 × response + 0.5 × resolution + 0.4 × satisfaction (weights configurable: RATE_WEIGHTS)."),
        ),
        Figure(
            "on_time_acceptance_rate",
            _l("On-time acceptance"),
            _l(
                "Acceptance steps (grid worker signs for a case, firm accepts a work order) ended in the period "
                "within their time limit ÷ acceptance steps ended in the period. A step counts when its handler "
                "ended it, or when it was already late whatever ended it (e.g. a reassignment)."
            ),
        ),
        Figure(
            "on_time_completion_rate",
            _l("On-time completion"),
            _l(
                "Handling steps (grid worker's handling, branch deliberation, firm's processing) ended in the "
                "period within their time limit ÷ handling steps ended in the period; time on hold or shelved "
                "does not count, approved extensions move the limit."
            ),
        ),
        Figure(
            "avg_handling_hours",
            _l("Average handling time"),
            _l(
                "Working hours from registration (or reopening) to closing of the cases closed in the period, "
                "without time on hold or shelved and without the time waiting for the resident's sign-off."
            ),
            percent=False,
        ),
        Figure(
            "p90_handling_hours",
            _l("Handling time, 90th percentile"),
            _l("Nine in ten of the cases closed in the period were handled within this many working hours."),
            percent=False,
        ),
        Figure(
            "send_back_rate",
            _l("Resident send-back rate"),
            _l(
                "Sign-offs in which the resident sent the case back (not resolved or not satisfied) ÷ sign-off "
                "steps ended in the period (answered or auto-closed)."
            ),
        ),
        Figure(
            "reopen_rate",
            _l("Supervisor reopen rate"),
            _l("Closed cases reopened by a supervisor in the period ÷ cases closed in the period."),
        ),
        Figure("yellow_cards", _l("Yellow cards"), _l("Steps that passed their deadline in the period."), False),
        Figure(
            "red_cards",
            _l("Red cards"),
            _l("Steps overdue by as long as their own limit in the period."),
            False,
        ),
        Figure("urges", _l("Urges"), _l("Supervisors' urges (催办) in the period."), False),
        Figure(
            "volume",
            _l("New cases"),
            _l("Cases registered in the period; for a property firm, work orders dispatched to it."),
            False,
        ),
        Figure("closed", _l("Closed"), _l("Cases closed in the period (any resolution)."), False),
        Figure("auto_closed", _l("Auto-closed"), _l("Cases closed without the resident's answer."), False),
        Figure(
            "follow_ups",
            _l("Valid follow-ups"),
            _l("Sign-offs recorded in the period and not marked invalid."),
            False,
        ),
        Figure(
            "backlog_open",
            _l("Open at period end"),
            _l("Cases open at the end of the period (or now, for a period not over yet)."),
            False,
        ),
        Figure(
            "backlog_overdue",
            _l("Overdue at period end"),
            _l("Of the open cases at the end of the period, those past their step's deadline."),
            False,
        ),
        Figure(
            "backlog_shelved",
            _l("Shelved at period end"),
            _l("Cases shelved (挂账) at the end of the period."),
            False,
        ),
    )
}


def weights() -> dict[str, float]:
    configured = current_app.config.get("RATE_WEIGHTS") if has_app_context() else None
    return {**DEFAULT_WEIGHTS, **(configured or {})}


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


@dataclass
class Row:
    """The counts of one group and every figure derived from them (a rate is None when its base is 0)."""

    key: Any
    code: str | None = None
    name: str | None = None
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    p90_minutes: float | None = None

    def add(self, other: Row) -> None:
        for name in COUNTERS:
            self.counts[name] += other.counts[name]

    def __getattr__(self, name: str):
        counts = self.__dict__.get("counts")
        if counts is not None and name in counts:
            return counts[name]
        raise AttributeError(name)

    @property
    def response_rate(self) -> float | None:
        return _ratio(self.counts["contacted"], self.counts["follow_ups"])

    @property
    def resolution_rate(self) -> float | None:
        return _ratio(self.counts["resolved"], self.counts["follow_ups"])

    @property
    def satisfaction_rate(self) -> float | None:
        c = self.counts
        return _ratio(c["satisfied"] + BASIC_SATISFACTION_WEIGHT * c["basic"], c["follow_ups"])

    def composite_with(self, weighting: dict[str, float]) -> float | None:
        c = self.counts
        if not c["follow_ups"]:
            return None
        value = (
            weighting["response"] * c["contacted"]
            + weighting["resolution"] * c["resolved"]
            + weighting["satisfaction"] * (c["satisfied"] + BASIC_SATISFACTION_WEIGHT * c["basic"])
        ) / c["follow_ups"]
        return round(value, 4)

    @property
    def on_time_acceptance_rate(self) -> float | None:
        return _ratio(self.counts["accept_on_time"], self.counts["accept_steps"])

    @property
    def on_time_completion_rate(self) -> float | None:
        return _ratio(self.counts["handle_on_time"], self.counts["handle_steps"])

    @property
    def avg_handling_hours(self) -> float | None:
        c = self.counts
        return round(c["handling_minutes_sum"] / c["handling_count"] / 60, 2) if c["handling_count"] else None

    @property
    def p90_handling_hours(self) -> float | None:
        return round(self.p90_minutes / 60, 2) if self.p90_minutes is not None else None

    @property
    def send_back_rate(self) -> float | None:
        return _ratio(self.counts["sent_back"], self.counts["signoff_steps"])

    @property
    def reopen_rate(self) -> float | None:
        return _ratio(self.counts["reopens"], self.counts["closed"])

    def figure(self, name: str, weighting: dict[str, float] | None = None):
        if name == "composite":
            return self.composite_with(weighting or weights())
        return getattr(self, name)

    def as_dict(self, weighting: dict[str, float]) -> dict[str, Any]:
        data = {"key": self.key, "code": self.code, "name": self.name}
        for name in FIGURES:
            value = self.figure(name, weighting)
            data[name] = int(value) if isinstance(value, float) and name in self.counts else value
        data["counts"] = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.counts.items()}
        return data


@dataclass
class Report:
    period: Period
    slice: Slice
    weights: dict[str, float]
    as_of: datetime
    rows: list[Row] = field(default_factory=list)
    total: Row = field(default_factory=lambda: Row(None))
    #: when the rollup serving a month still running was refreshed (None: counted live, or final)
    rollup_at: datetime | None = None

    def ranked(self, figure: str = "composite") -> list[Row]:
        """Rows ordered by a figure, best first; rows without the figure last."""
        reverse_bad = figure in ("send_back_rate", "reopen_rate", "avg_handling_hours", "p90_handling_hours")

        def key(row: Row):
            value = row.figure(figure, self.weights)
            if value is None:
                return (1, 0)
            return (0, value if reverse_bad else -value)

        return sorted(self.rows, key=key)


def _count_if(condition):
    return func.coalesce(func.sum(sql_case((condition, 1), else_=0)), 0)


def _p90(values: list[float]) -> float | None:
    """The 90th percentile with linear interpolation (as PostgreSQL's ``percentile_cont(0.9)``)."""
    if not values:
        return None
    ordered = sorted(values)
    position = 0.9 * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -------------------------------------------------------------------------------- the counts, once
#
# Every figure is a ratio or a sum of the additive counts in ``COUNTERS``. Each count is defined here
# once, as a per-row expression over one fact table; the live computation sums them per period and
# slice value, and the monthly rollup (app.reports.rollup) sums the very same expressions per month and
# combination of slice values.


def _flag(condition):
    return sql_case((condition, 1), else_=0)


@dataclass(frozen=True)
class Source:
    """One fact table, the time column that places a row in a period, and the counts it gives."""

    name: str
    table: Any  # a mapped class or a Table's columns (``.c``)
    time: str
    counts: dict[str, Any]
    where: tuple = ()


def sources() -> list[Source]:
    """The fact sources of the period figures (the backlog is an end-of-period figure, see below)."""
    f, s, a = FollowUp, StepFact, ActionFact
    valid = f.valid.is_(True)
    timed_accept = and_(s.kind == "accept", s.timed.is_(True))
    timed_handle = and_(s.kind == "handle", s.timed.is_(True))
    is_closed = s.state == "closed"
    per_step = {}
    for state in TIMED_STEPS:
        timed_here = and_(s.state == state, s.kind.is_not(None), s.timed.is_(True))
        per_step[f"steps_{state}"] = _flag(timed_here)
        per_step[f"on_time_{state}"] = _flag(and_(timed_here, s.on_time.is_(True)))
    return [
        Source(
            "follow_up",
            f,
            "created_at",
            {
                "follow_ups": _flag(valid),
                "contacted": _flag(and_(valid, f.contacted.is_(True))),
                "resolved": _flag(and_(valid, f.resolved.is_(True))),
                "satisfied": _flag(and_(valid, f.satisfaction == "satisfied")),
                "basic": _flag(and_(valid, f.satisfaction == "basic")),
                "unsatisfied": _flag(and_(valid, f.satisfaction == "unsatisfied")),
                "invalid_follow_ups": _flag(f.valid.is_(False)),
            },
        ),
        Source(
            "step_left",
            s,
            "left_at",
            {
                "accept_steps": _flag(timed_accept),
                "accept_on_time": _flag(and_(timed_accept, s.on_time.is_(True))),
                "handle_steps": _flag(timed_handle),
                "handle_on_time": _flag(and_(timed_handle, s.on_time.is_(True))),
                "signoff_steps": _flag(
                    and_(s.state == "awaiting_signoff", s.left_trigger.in_(("signoff", "auto_close")))
                ),
                "sent_back": _flag(and_(s.state == "awaiting_signoff", s.sent_back.is_(True))),
                "reopens": _flag(and_(is_closed, s.left_trigger == "reopen")),
                **per_step,
            },
        ),
        Source(
            "step_entered",
            s,
            "entered_at",
            {
                "volume": _flag(s.state == "registered"),
                "firm_orders": _flag(
                    and_(
                        s.state == "firm_dispatched",
                        s.entered_trigger.in_(("dispatch_to_firm", "branch_approve")),
                    )
                ),
                "closed": _flag(is_closed),
                "auto_closed": _flag(and_(is_closed, s.resolution == AUTO_CLOSED)),
                "handling_count": _flag(and_(is_closed, s.handling_minutes.is_not(None))),
                "handling_minutes_sum": sql_case((is_closed, func.coalesce(s.handling_minutes, 0.0)), else_=0.0),
            },
            (s.state.in_(("registered", "closed", "firm_dispatched")),),
        ),
        Source(
            "action",
            a,
            "at",
            {
                "yellow_cards": _flag(a.kind == "yellow"),
                "red_cards": _flag(a.kind == "red"),
                "urges": _flag(a.kind == "urge"),
            },
            (a.kind.in_(("yellow", "red", "urge")),),
        ),
    ]


def backlog_sources(as_of: datetime, now: datetime | None = None) -> list[Source]:
    """The end-of-period counts: steps open at ``as_of`` (overdue ones too) and shelvings in force."""
    s, a = StepFact, ActionFact
    return [
        Source(
            "open_steps",
            s,
            "",
            {
                "backlog_open": literal(1),
                "backlog_overdue": _flag(and_(s.due_at.is_not(None), s.due_at < as_of, s.paused_since.is_(None))),
            },
            (open_at(as_of, now),),
        ),
        Source(
            "shelvings",
            a,
            "",
            {"backlog_shelved": literal(1)},
            (a.kind == "shelve", a.at <= as_of, or_(a.ended_at.is_(None), a.ended_at > as_of)),
        ),
    ]


def open_at(instant: datetime, now: datetime | None = None):
    """The condition "this step was the case's step at ``instant``" (closed steps excluded)."""
    s = StepFact
    if instant >= (now or utcnow()):
        return and_(s.left_at.is_(None), s.state != "closed")
    return and_(s.state != "closed", s.entered_at <= instant, or_(s.left_at.is_(None), s.left_at > instant))


def _sum(expression, name: str):
    return func.coalesce(func.sum(expression), 0.0 if name in FLOAT_COUNTERS else 0)


def _store(counts: dict[str, float], names, values) -> None:
    for name, value in zip(names, values, strict=True):
        counts[name] += float(value or 0) if name in FLOAT_COUNTERS else int(value or 0)


def compute(
    user,
    period: Period,
    slice_name: str | None = "community",
    *,
    only: Any = None,
    now: datetime | None = None,
    with_backlog: bool = True,
    with_p90: bool = True,
    live: bool = False,
) -> Report:
    """Every figure of ``period`` per value of the slice, over the facts ``user`` may see.

    ``only`` limits the report to one value of the slice (e.g. one firm). A handful of aggregate queries,
    whatever the number of cases: over the monthly rollup where it is up to date, else over the facts
    (``live`` forces the facts). Raises :class:`ValidationError` for an unknown slice.
    """
    return compute_series(
        user, [period], slice_name, only=only, now=now, with_backlog=with_backlog, with_p90=with_p90, live=live
    )[0]


def compute_series(
    user,
    periods: list[Period],
    slice_name: str | None = "community",
    *,
    only: Any = None,
    now: datetime | None = None,
    with_backlog: bool = False,
    with_p90: bool = False,
    live: bool = False,
) -> list[Report]:
    """:func:`compute` for several periods (e.g. the last 12 months) with the same few queries: each
    aggregate is grouped by period and slice value. The backlog (an end-of-period figure) and the 90th
    percentile only when asked for."""
    from app.reports import rollup

    slice_ = get_slice(slice_name)
    now = now or utcnow()
    reports = [Report(period=p, slice=slice_, weights=weights(), as_of=p.as_of(now)) for p in periods]
    rows: dict[tuple[int, Any], Row] = {}

    def row(bucket, key) -> Row:
        if (bucket, key) not in rows:
            rows[(bucket, key)] = Row(key)
        return rows[(bucket, key)]

    def scoped(table, *conditions):
        clauses = [scope_clause(user, table), *conditions]
        column = getattr(table, slice_.column)
        if only is not None:
            clauses.append(column == only)
        elif slice_.party:
            clauses.append(column.is_not(None))
        return and_(*clauses)

    # which periods the rollup answers (whole reporting months, refreshed and not stale)
    served: dict[int, list[str]] = {} if live else rollup.months_for(periods, now)
    live_periods = [i for i in range(len(periods)) if i not in served]

    if served:
        r = fact_rollup.c
        month_index: dict[str, list[int]] = {}
        for index, months in served.items():
            for month in months:
                month_index.setdefault(month, []).append(index)
        names = [n for n in COUNTERS if not n.startswith("backlog_")]
        query = (
            select(r.month, getattr(r, slice_.column).label("g"), *(_sum(getattr(r, n), n) for n in names))
            .where(scoped(r, r.month.in_(list(month_index))))
            .group_by(r.month, getattr(r, slice_.column))
        )
        for month, key, *values in db.session.execute(query):
            for index in month_index[month]:
                _store(row(index, key).counts, names, values)
        for index in served:
            reports[index].rollup_at = rollup.refreshed_at(served[index])

    if live_periods:
        chosen = [periods[i] for i in live_periods]
        first, last = min(p.start for p in chosen), max(p.end for p in chosen)
        for source in sources():
            table = source.table
            time_column = getattr(table, source.time)
            if len(chosen) == 1:
                bucket = literal(live_periods[0])
            else:
                bucket = sql_case(
                    *((and_(time_column >= periods[i].start, time_column < periods[i].end), i) for i in live_periods),
                    else_=None,
                )
            names = list(source.counts)
            query = (
                select(
                    bucket.label("b"),
                    getattr(table, slice_.column).label("g"),
                    *(_sum(source.counts[n], n) for n in names),
                )
                .where(scoped(table, time_column >= first, time_column < last, *source.where))
                .group_by(bucket, getattr(table, slice_.column))
            )
            for b, key, *values in db.session.execute(query):
                if b is not None:
                    _store(row(int(b), key).counts, names, values)

    if with_backlog and len(periods) == 1:
        as_of = reports[0].as_of
        final = served.get(0) and rollup.has_final_backlog(served[0], periods[0], now)
        if final:
            r = fact_rollup.c
            names = ["backlog_open", "backlog_overdue", "backlog_shelved"]
            for key, *values in db.session.execute(
                select(getattr(r, slice_.column), *(_sum(getattr(r, n), n) for n in names))
                .where(scoped(r, r.month.in_(served[0])))
                .group_by(getattr(r, slice_.column))
            ):
                _store(row(0, key).counts, names, values)
        else:
            for source in backlog_sources(as_of, now):
                names = list(source.counts)
                table = source.table
                for key, *values in db.session.execute(
                    select(getattr(table, slice_.column), *(_sum(source.counts[n], n) for n in names))
                    .where(scoped(table, *source.where))
                    .group_by(getattr(table, slice_.column))
                ):
                    _store(row(0, key).counts, names, values)

    if with_p90:
        _percentiles(periods, slice_, scoped, row, reports)

    if slice_.party == "firm":  # a firm's new work is what was dispatched to it
        for item in rows.values():
            item.counts["volume"] = item.counts["firm_orders"]
    names = value_names(slice_, {key for _b, key in rows})
    for (b, key), item in rows.items():
        item.code, item.name = names.get(key, (None, None))
        if key is None:
            item.name = _("(not placed)")
        reports[b].rows.append(item)
        reports[b].total.add(item)
    for report in reports:
        report.rows.sort(key=lambda r: (r.key is None, r.code or "", str(r.key)))
    return reports


def _percentiles(periods, slice_, scoped, row, reports) -> None:
    """The 90th percentile of handling time per period and slice value, and per period overall."""
    s = StepFact
    first, last = periods[0].start, periods[-1].end
    if len(periods) == 1:
        bucket = literal(0)
    else:
        bucket = sql_case(*((s.entered_at < p.end, i) for i, p in enumerate(periods)), else_=len(periods) - 1)
    bucket = bucket.label("b")
    handling = scoped(
        s, s.state == "closed", s.handling_minutes.is_not(None), s.entered_at >= first, s.entered_at < last
    )
    column = getattr(s, slice_.column)
    if db.session.get_bind().dialect.name == "postgresql":
        percentile = func.percentile_cont(0.9).within_group(s.handling_minutes)
        for b, key, value in db.session.execute(
            select(bucket, column.label("g"), percentile).where(handling).group_by(bucket, column)
        ):
            row(int(b), key).p90_minutes = float(value) if value is not None else None
        for b, value in db.session.execute(select(bucket, percentile).where(handling).group_by(bucket)):
            reports[int(b)].total.p90_minutes = float(value) if value is not None else None
        return
    values: dict[tuple[int, Any], list[float]] = {}
    for b, key, minutes in db.session.execute(select(bucket, column.label("g"), s.handling_minutes).where(handling)):
        values.setdefault((int(b), key), []).append(float(minutes))
    for (b, key), found in values.items():
        row(b, key).p90_minutes = _p90(found)
    for index, report in enumerate(reports):
        report.total.p90_minutes = _p90([v for (b, _k), found in values.items() if b == index for v in found])


def on_time_by_step(user, period: Period) -> list[dict[str, Any]]:
    """The on-time figures (acceptance or completion, as :data:`FIGURES` defines them) per step."""
    report = compute_series(user, [period], "street")[0]
    result = []
    for state in TIMED_STEPS:
        total = int(report.total.counts[f"steps_{state}"])
        on_time = int(report.total.counts[f"on_time_{state}"])
        result.append({"state": state, "steps": total, "on_time": on_time, "rate": _ratio(on_time, total)})
    return result
