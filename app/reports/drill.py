"""Drill-down: the cases behind a number on the dashboard or in the bulletin.

A figure link carries ``figure``, ``period`` and optionally ``slice`` + ``value``; the case list turns
them into "cases whose facts make up this number" with :func:`case_ids`, using the same conditions as
:mod:`app.reports.indicators` (scope, period, slice), so the list and the number agree.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select

from app.auth.permissions import scope_clause
from app.cases.models import FollowUp
from app.core.errors import ValidationError
from app.core.params import parse_id
from app.reports import indicators
from app.reports.indicators import FIGURES, Period, get_slice, open_at
from app.reports.models import ActionFact, StepFact
from workflows.definitions import AUTO_CLOSED

FOLLOW_UP_FIGURES = ("response_rate", "resolution_rate", "satisfaction_rate", "composite", "follow_ups")
CLOSURE_FIGURES = ("avg_handling_hours", "p90_handling_hours", "closed", "reopen_rate")


def link_args(figure: str, period: Period, slice_name: str | None = None, value: Any = None) -> dict[str, Any]:
    """Query-string arguments of the case list showing the cases behind a figure."""
    args: dict[str, Any] = {"figure": figure, "period": period.label}
    if slice_name and value is not None:
        args["slice"] = slice_name
        args["value"] = value
    return args


def case_ids(user, figure: str, period_text: str | None, slice_name: str | None = None, value: Any = None):
    """A ``select`` of the ids of the cases behind ``figure`` in the period (and slice value) that ``user``
    may see. Raises :class:`ValidationError` for an unknown figure, period, slice or value."""
    if figure not in FIGURES:
        raise ValidationError(_("Unknown figure %(name)s.", name=figure), field="figure")
    period = indicators.parse_period(period_text)

    def sliced(model):
        conditions = [scope_clause(user, model)]
        if slice_name:
            slice_ = get_slice(slice_name)
            column = getattr(model, slice_.column)
            if slice_.model is not None:
                number = parse_id(value)
                if number is None:
                    raise ValidationError(_("The slice value is not valid."), field="value")
                conditions.append(column == number)
            elif value in indicators.slice_values(slice_):
                conditions.append(column == value)
            else:
                raise ValidationError(_("The slice value is not valid."), field="value")
        return conditions

    s, a, f = StepFact, ActionFact, FollowUp
    party = get_slice(slice_name).party if slice_name else None
    if figure in FOLLOW_UP_FIGURES:
        query = select(f.case_id).where(
            *sliced(f), f.valid.is_(True), f.created_at >= period.start, f.created_at < period.end
        )
    elif figure in ("on_time_acceptance_rate", "on_time_completion_rate"):
        kind = "accept" if figure == "on_time_acceptance_rate" else "handle"
        query = select(s.case_id).where(
            *sliced(s), s.kind == kind, s.timed.is_(True), s.left_at >= period.start, s.left_at < period.end
        )
    elif figure == "send_back_rate":
        query = select(s.case_id).where(
            *sliced(s),
            s.state == "awaiting_signoff",
            s.left_trigger.in_(("signoff", "auto_close")),
            s.left_at >= period.start,
            s.left_at < period.end,
        )
    elif figure in CLOSURE_FIGURES or figure == "auto_closed":
        conditions = [*sliced(s), s.state == "closed", s.entered_at >= period.start, s.entered_at < period.end]
        if figure == "auto_closed":
            conditions.append(s.resolution == AUTO_CLOSED)
        query = select(s.case_id).where(*conditions)
    elif figure == "volume":
        volume = (
            and_(s.state == "firm_dispatched", s.entered_trigger.in_(("dispatch_to_firm", "branch_approve")))
            if party == "firm"
            else s.state == "registered"
        )
        query = select(s.case_id).where(*sliced(s), volume, s.entered_at >= period.start, s.entered_at < period.end)
    elif figure in ("yellow_cards", "red_cards", "urges"):
        kind = {"yellow_cards": "yellow", "red_cards": "red", "urges": "urge"}[figure]
        query = select(a.case_id).where(*sliced(a), a.kind == kind, a.at >= period.start, a.at < period.end)
    elif figure in ("backlog_open", "backlog_overdue"):
        as_of = period.as_of()
        conditions = [*sliced(s), open_at(as_of)]
        if figure == "backlog_overdue":
            conditions += [s.due_at.is_not(None), s.due_at < as_of, s.paused_since.is_(None)]
        query = select(s.case_id).where(*conditions)
    else:  # backlog_shelved
        as_of = period.as_of()
        query = select(a.case_id).where(
            *sliced(a), a.kind == "shelve", a.at <= as_of, or_(a.ended_at.is_(None), a.ended_at > as_of)
        )
    return query, period


def describe(figure: str, period: Period, slice_name: str | None, value: Any) -> str:
    """A sentence for the case list's banner: which number these cases are behind."""
    label = str(FIGURES[figure].label)
    if slice_name:
        slice_ = get_slice(slice_name)
        key = parse_id(value) if slice_.model is not None else value
        name = indicators.value_names(slice_, [key]).get(key, (None, str(value)))[1]
        return _(
            "%(figure)s · %(period)s · %(slice)s: %(name)s",
            figure=label,
            period=period.label,
            slice=str(slice_.label),
            name=name,
        )
    return _("%(figure)s · %(period)s", figure=label, period=period.label)
