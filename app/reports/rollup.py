"""The monthly rollup: the counts of :mod:`app.reports.indicators` per reporting month and combination of
slice values, so a dashboard or a bulletin sums a few hundred rows instead of millions of facts.

The rollup sums exactly the expressions :func:`app.reports.indicators.sources` defines, so a figure read
from it equals the figure computed from the facts (tested). A month's rows are replaced as a whole by
:func:`refresh`; the scheduler refreshes the running month every few minutes and a month once more after
it ends, when its counts — and its end-of-month backlog — become final. A month is read from the rollup
only while its rows are up to date: refreshed with the cut-off day in force, not marked dirty (a follow-up
of the month marked invalid), and — for the running month — refreshed less than ``ROLLUP_MAX_AGE_MINUTES``
ago. Otherwise the figures are computed from the facts, as they always can be.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import delete, func, insert, literal, select, union_all

from app.core.timeutil import utcnow
from app.extensions import db
from app.reports import indicators
from app.reports.facts import SLICE_NAMES
from app.reports.indicators import Period
from app.reports.models import COUNTERS, RollupMonth, StepFact, fact_rollup

SLICE_COLUMNS = SLICE_NAMES  # one row per combination of these


def max_age() -> timedelta:
    minutes = current_app.config.get("ROLLUP_MAX_AGE_MINUTES", 10) if has_app_context() else 10
    return timedelta(minutes=int(minutes))


def month_labels(period: Period) -> list[str] | None:
    """The reporting months a period is made of (None for a custom range)."""
    if period.kind == "month":
        return [period.label]
    if period.kind not in ("quarter", "year"):
        return None
    labels = []
    year, month = indicators.month_of(period.start)
    while True:
        month_period = indicators.month_period(year, month, indicators.cutoff_day())
        if month_period.start >= period.end:
            return labels
        labels.append(month_period.label)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _states(labels) -> dict[str, RollupMonth]:
    labels = list(set(labels))
    if not labels:
        return {}
    return {m.month: m for m in db.session.scalars(select(RollupMonth).where(RollupMonth.month.in_(labels)))}


def _usable(state: RollupMonth | None, now: datetime) -> bool:
    if state is None or state.dirty or state.cutoff_day != (indicators.cutoff_day() or 0):
        return False
    return state.complete or state.refreshed_at >= now - max_age()


def months_for(periods: list[Period], now: datetime) -> dict[int, list[str]]:
    """For each period the rollup can answer, the months to read (index → labels)."""
    wanted = {index: month_labels(period) for index, period in enumerate(periods)}
    states = _states(label for labels in wanted.values() if labels for label in labels)
    return {
        index: labels
        for index, labels in wanted.items()
        if labels and all(_usable(states.get(label), now) for label in labels)
    }


def refreshed_at(labels: list[str]) -> datetime | None:
    """When the running month among ``labels`` was last refreshed (None when all are final)."""
    running = [m for m in _states(labels).values() if not m.complete]
    return min((m.refreshed_at for m in running), default=None)


def has_final_backlog(labels: list[str], period: Period, now: datetime) -> bool:
    """Whether the rollup holds the backlog at the end of ``period`` (a single month, refreshed after it ended)."""
    if labels != [period.label] or period.end > now:
        return False
    state = _states(labels).get(period.label)
    return state is not None and state.complete


def _source_select(source: indicators.Source, start: datetime | None, end: datetime | None):
    table = source.table
    columns = [getattr(table, name).label(name) for name in SLICE_COLUMNS]
    counts = [(source.counts[name] if name in source.counts else literal(0)).label(name) for name in COUNTERS]
    conditions = list(source.where)
    if start is not None:
        time_column = getattr(table, source.time)
        conditions += [time_column >= start, time_column < end]
    return select(*columns, *counts).where(*conditions)


def refresh(label: str, now: datetime | None = None) -> int:
    """Replace the rollup rows of reporting month ``label`` from the facts; returns the rows written.

    Raises :class:`app.core.errors.ValidationError` for a bad month.
    """
    now = now or utcnow()
    period = indicators.parse_period(label)
    complete = period.end <= now
    selects = [_source_select(source, period.start, period.end) for source in indicators.sources()]
    if complete:
        selects += [_source_select(source, None, None) for source in indicators.backlog_sources(period.end, now)]
    union = union_all(*selects).subquery()
    grouped = select(
        literal(period.label).label("month"),
        *(union.c[name] for name in SLICE_COLUMNS),
        *(func.sum(union.c[name]) for name in COUNTERS),
    ).group_by(*(union.c[name] for name in SLICE_COLUMNS))
    db.session.execute(delete(fact_rollup).where(fact_rollup.c.month == period.label))
    db.session.execute(insert(fact_rollup).from_select(["month", *SLICE_COLUMNS, *COUNTERS], grouped))
    rows = db.session.scalar(select(func.count()).select_from(fact_rollup).where(fact_rollup.c.month == period.label))
    state = db.session.get(RollupMonth, period.label) or RollupMonth(month=period.label)
    state.cutoff_day = indicators.cutoff_day() or 0
    state.refreshed_at = now
    state.complete = complete
    state.dirty = False
    state.rows = rows
    db.session.add(state)
    db.session.flush()
    return rows


def mark_dirty(instant: datetime) -> None:
    """A fact of the month of ``instant`` changed after the fact: read that month live until refreshed."""
    year, month = indicators.month_of(instant)
    state = db.session.get(RollupMonth, f"{year:04d}-{month:02d}")
    if state is not None:
        state.dirty = True


def first_fact_month() -> tuple[int, int] | None:
    first = db.session.scalar(select(func.min(StepFact.entered_at)))
    return indicators.month_of(first) if first is not None else None


def due_months(now: datetime | None = None, limit: int = 3) -> list[str]:
    """The months the scheduler should refresh now: the running one, those that ended since their last
    refresh, dirty ones, and (a few per run) older months never rolled up or rolled up with another
    cut-off day."""
    now = now or utcnow()
    current = indicators.current_month(now)
    wanted = [current.label]
    cutoff = indicators.cutoff_day() or 0
    states = {m.month: m for m in db.session.scalars(select(RollupMonth))}
    for label, state in sorted(states.items()):
        if label != current.label and (state.dirty or not state.complete or state.cutoff_day != cutoff):
            wanted.append(label)
    first = first_fact_month()
    if first is not None:
        year, month = first
        backlog = []
        while (year, month) < indicators.month_of(current.start):
            label = f"{year:04d}-{month:02d}"
            if label not in states:
                backlog.append(label)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        wanted += list(reversed(backlog))[:limit]  # newest first: they are looked at most
    return list(dict.fromkeys(wanted))


def refresh_due(now: datetime | None = None) -> dict[str, Any]:
    """The scheduler's job: refresh the months due (see :func:`due_months`); returns what was done."""
    now = now or utcnow()
    done = {}
    for label in due_months(now):
        done[label] = refresh(label, now)
    return done
