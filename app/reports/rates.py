"""The three rates (三率, DESIGN §5) over valid follow-ups in a period.

- response rate 响应率 = contacted / valid follow-ups;
- resolution rate 解决率 = resolved / valid follow-ups;
- satisfaction rate 满意率 = (satisfied + 0.9 × basically satisfied) / valid follow-ups;
- composite = 0.1 × response + 0.5 × resolution + 0.4 × satisfaction (``RATE_WEIGHTS`` overrides).

A follow-up belongs to the period in which it was recorded (local time); the rates are grouped by the
case's community, compound, grid, firm or category and limited to the cases the user may see — the
same scope as every case list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import case as sql_case
from sqlalchemy import func, select

from app.auth.permissions import scope_clause
from app.cases.models import Case, Category, FollowUp
from app.core.errors import ValidationError
from app.core.timeutil import app_tz, as_utc, to_local, utcnow
from app.extensions import db
from app.org.models import Community, Compound, Grid, PropertyFirm

DEFAULT_WEIGHTS = {"response": 0.1, "resolution": 0.5, "satisfaction": 0.4}
BASIC_SATISFACTION_WEIGHT = 0.9
GROUPS: dict[str, tuple[Any, Any]] = {
    "community": (Case.community_id, Community),
    "compound": (Case.compound_id, Compound),
    "grid": (Case.grid_id, Grid),
    "firm": (Case.firm_id, PropertyFirm),
    "category": (Case.category_id, Category),
}
PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of instants, named like ``2026-11``."""

    label: str
    start: datetime
    end: datetime


def _cutoff_day() -> int | None:
    day = current_app.config.get("RATES_CUTOFF_DAY") if has_app_context() else None
    return int(day) if day else None


def month_period(year: int, month: int, cutoff_day: int | None = None) -> Period:
    """The reporting month ``year-month``: the calendar month, or — with a cut-off day ``d`` — from the
    day after ``d`` of the previous month to the end of day ``d`` (e.g. 26 Oct – 25 Nov)."""
    tz = app_tz()
    if cutoff_day:
        previous = date(year - 1, 12, 1) if month == 1 else date(year, month - 1, 1)
        first = date(previous.year, previous.month, min(cutoff_day, 28)) + timedelta(days=1)
        last = date(year, month, min(cutoff_day, 28)) + timedelta(days=1)
    else:
        first = date(year, month, 1)
        last = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    start = as_utc(datetime.combine(first, time(0, 0), tzinfo=tz))
    end = as_utc(datetime.combine(last, time(0, 0), tzinfo=tz))
    return Period(f"{year:04d}-{month:02d}", start, end)


def parse_period(text: str | None, now: datetime | None = None) -> Period:
    """A period from ``YYYY-MM`` (default: the current month). Raises :class:`ValidationError`."""
    if not text:
        local = to_local(now or utcnow())
        return month_period(local.year, local.month, _cutoff_day())
    match = PERIOD_RE.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2999:
        raise ValidationError(_("A period is a month such as 2026-11."), field="period")
    return month_period(int(match.group(1)), int(match.group(2)), _cutoff_day())


def weights() -> dict[str, float]:
    configured = current_app.config.get("RATE_WEIGHTS") if has_app_context() else None
    return {**DEFAULT_WEIGHTS, **(configured or {})}


@dataclass
class RateRow:
    """Counts of one group and the rates derived from them (None when there is no valid follow-up)."""

    id: int | None
    code: str | None
    name: str | None
    valid: int = 0
    contacted: int = 0
    resolved: int = 0
    satisfied: int = 0
    basic: int = 0
    unsatisfied: int = 0

    def _ratio(self, value: float) -> float | None:
        return round(value / self.valid, 4) if self.valid else None

    @property
    def response_rate(self) -> float | None:
        return self._ratio(self.contacted)

    @property
    def resolution_rate(self) -> float | None:
        return self._ratio(self.resolved)

    @property
    def satisfaction_rate(self) -> float | None:
        return self._ratio(self.satisfied + BASIC_SATISFACTION_WEIGHT * self.basic)

    def composite(self, weighting: dict[str, float]) -> float | None:
        if not self.valid:
            return None
        value = (
            weighting["response"] * self.contacted
            + weighting["resolution"] * self.resolved
            + weighting["satisfaction"] * (self.satisfied + BASIC_SATISFACTION_WEIGHT * self.basic)
        ) / self.valid
        return round(value, 4)

    def add(self, other: RateRow) -> None:
        for name in ("valid", "contacted", "resolved", "satisfied", "basic", "unsatisfied"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self, weighting: dict[str, float]) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "valid_follow_ups": self.valid,
            "contacted": self.contacted,
            "resolved": self.resolved,
            "satisfied": self.satisfied,
            "basically_satisfied": self.basic,
            "unsatisfied": self.unsatisfied,
            "response_rate": self.response_rate,
            "resolution_rate": self.resolution_rate,
            "satisfaction_rate": self.satisfaction_rate,
            "composite": self.composite(weighting),
        }


@dataclass
class RatesReport:
    period: Period
    group_by: str
    weights: dict[str, float]
    rows: list[RateRow] = field(default_factory=list)
    total: RateRow = field(default_factory=lambda: RateRow(None, None, None))


def three_rates(user, period: Period, group_by: str = "community") -> RatesReport:
    """The three rates of ``period`` per ``group_by`` over the follow-ups of cases ``user`` may see.

    One aggregate query plus one for the group names, whatever the number of follow-ups. Raises
    :class:`ValidationError` for an unknown grouping.
    """
    if group_by not in GROUPS:
        raise ValidationError(_("Group the rates by one of %(groups)s.", groups=", ".join(GROUPS)), field="group_by")
    column, model = GROUPS[group_by]

    def count_if(condition):
        return func.coalesce(func.sum(sql_case((condition, 1), else_=0)), 0)

    query = (
        select(
            column.label("group_id"),
            func.count(FollowUp.id),
            count_if(FollowUp.contacted.is_(True)),
            count_if(FollowUp.resolved.is_(True)),
            count_if(FollowUp.satisfaction == "satisfied"),
            count_if(FollowUp.satisfaction == "basic"),
            count_if(FollowUp.satisfaction == "unsatisfied"),
        )
        .select_from(FollowUp)
        .join(Case, Case.id == FollowUp.case_id)
        .where(
            FollowUp.valid.is_(True),
            FollowUp.created_at >= period.start,
            FollowUp.created_at < period.end,
            scope_clause(user, Case),
        )
        .group_by(column)
    )
    counts = db.session.execute(query).all()
    ids = [row[0] for row in counts if row[0] is not None]
    names = {obj.id: obj for obj in db.session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}
    report = RatesReport(period=period, group_by=group_by, weights=weights())
    for group_id, valid, contacted, resolved, satisfied, basic, unsatisfied in counts:
        obj = names.get(group_id)
        row = RateRow(
            id=group_id,
            code=getattr(obj, "code", None),
            name=getattr(obj, "name", None),
            valid=int(valid),
            contacted=int(contacted),
            resolved=int(resolved),
            satisfied=int(satisfied),
            basic=int(basic),
            unsatisfied=int(unsatisfied),
        )
        report.rows.append(row)
        report.total.add(row)
    report.rows.sort(key=lambda r: (r.code is None, r.code or ""))
    return report
