"""The three rates (三率) in the shape of ``GET /api/v1/rates`` — a view of :mod:`app.reports.indicators`.

The figures themselves are defined once, in :mod:`app.reports.indicators`; this module keeps the
original rates report (rows with the follow-up counts and the response, resolution, satisfaction and
composite rates) for the integrations that read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from app.core.errors import ValidationError
from app.reports import indicators
from app.reports.indicators import BASIC_SATISFACTION_WEIGHT, DEFAULT_WEIGHTS, Period, month_period  # noqa: F401

#: the groupings of the original report
GROUPS: dict[str, str] = {name: name for name in ("community", "compound", "grid", "firm", "category")}


def parse_period(text: str | None, now=None) -> Period:
    """A reporting month ``YYYY-MM`` (default: the current one). Raises :class:`ValidationError`."""
    period = indicators.parse_period(text, now)
    if period.kind != "month":
        raise ValidationError(_("A period is a month such as 2026-11."), field="period")
    return period


@dataclass
class RateRow:
    """Counts of one group and the rates derived from them (None when there is no valid follow-up)."""

    row: indicators.Row

    @property
    def id(self):
        return self.row.key

    @property
    def code(self):
        return self.row.code

    @property
    def name(self):
        return self.row.name

    @property
    def valid(self) -> int:
        return int(self.row.counts["follow_ups"])

    def __getattr__(self, name: str):
        if name in ("contacted", "resolved", "satisfied", "basic", "unsatisfied"):
            return int(self.row.counts[name])
        if name in ("response_rate", "resolution_rate", "satisfaction_rate"):
            return getattr(self.row, name)
        raise AttributeError(name)

    def composite(self, weighting: dict[str, float]) -> float | None:
        return self.row.composite_with(weighting)

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
    total: RateRow | None = None


def three_rates(user, period: Period, group_by: str = "community") -> RatesReport:
    """The three rates of ``period`` per ``group_by`` over the follow-ups of cases ``user`` may see.

    Raises :class:`ValidationError` for an unknown grouping.
    """
    if group_by not in GROUPS:
        raise ValidationError(_("Group the rates by one of %(groups)s.", groups=", ".join(GROUPS)), field="group_by")
    report = indicators.compute(user, period, group_by)
    rows = [RateRow(r) for r in report.rows if r.counts["follow_ups"]]
    return RatesReport(period=period, group_by=group_by, weights=report.weights, rows=rows, total=RateRow(report.total))
