"""The supervisors' dashboard as tables: each chart is drawn from one of these tables, shown under it,
and downloadable as CSV; every number carries the link to the cases behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import url_for
from flask_babel import gettext as _

from app.cases import labels as L
from app.reports import indicators
from app.reports.drill import link_args
from app.reports.indicators import FIGURES, Period, Report

RATE_FIGURES = ("response_rate", "resolution_rate", "satisfaction_rate", "composite")
#: the detail table: every figure counted over the period
TABLE_FIGURES = (
    "volume",
    "closed",
    "follow_ups",
    "response_rate",
    "resolution_rate",
    "satisfaction_rate",
    "composite",
    "on_time_acceptance_rate",
    "on_time_completion_rate",
    "avg_handling_hours",
    "p90_handling_hours",
    "send_back_rate",
    "reopen_rate",
    "yellow_cards",
    "red_cards",
    "urges",
)
#: the headline cards: the same figures (without the plain counts of answers and urges) and the backlog
KPI_FIGURES = tuple(f for f in TABLE_FIGURES if f not in ("follow_ups", "urges")) + (
    "backlog_open",
    "backlog_overdue",
    "backlog_shelved",
)
HEAT_MONTHS = 6
TREND_MONTHS = 12


@dataclass
class Cell:
    value: Any
    percent: bool = False
    link: str | None = None

    @property
    def text(self) -> str:
        return format_value(self.value, self.percent)


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    #: names of the figures in the columns (for the "how is this computed" notes)
    figures: list[str | None] = field(default_factory=list)

    def csv_rows(self) -> list[list[Any]]:
        out = [self.columns]
        for row in self.rows:
            out.append([c.value if c.value is not None else "" for c in row])
        return out


def format_value(value: Any, percent: bool) -> str:
    if value is None:
        return "—"
    if percent:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}" if value != int(value) else f"{int(value)}"
    return str(value)


def _link(figure: str, period: Period, slice_name: str | None = None, value: Any = None) -> str:
    return url_for("cases.index", **link_args(figure, period, slice_name, value))


def figure_cell(row: indicators.Row, name: str, report: Report, slice_name: str | None, value: Any) -> Cell:
    figure = FIGURES[name]
    number = row.figure(name, report.weights)
    if isinstance(number, float) and not figure.percent and name in row.counts:
        number = int(number)
    return Cell(number, figure.percent, _link(name, report.period, slice_name, value))


def figures_table(report: Report, name: str, title: str, figures=TABLE_FIGURES, rank_by: str | None = None) -> Table:
    """One row per slice value (ranked by ``rank_by`` when given), a column per figure, and the total."""
    slice_ = report.slice
    table = Table(name, title, [str(slice_.label)] + [str(FIGURES[f].label) for f in figures], figures=[None, *figures])
    rows = report.ranked(rank_by) if rank_by else report.rows
    if rank_by:
        table.columns.insert(0, _("Rank"))
        table.figures.insert(0, None)
    for index, row in enumerate(rows, start=1):
        cells = [Cell(row.name or row.code or "—")]
        if rank_by:
            cells.insert(0, Cell(index if row.figure(rank_by, report.weights) is not None else None))
        cells += [figure_cell(row, f, report, slice_.name, row.key) for f in figures]
        table.rows.append(cells)
    if not rank_by:
        total = [Cell(_("Total"))] + [figure_cell(report.total, f, report, None, None) for f in figures]
        table.rows.append(total)
    return table


def build(user, period: Period, group: str = "community") -> dict[str, Any]:
    """Every table of the dashboard for ``user`` in ``period``; ``group`` is the slice of the detail table.

    Raises :class:`app.core.errors.ValidationError` for an unknown group.
    """
    indicators.get_slice(group)
    communities = indicators.compute(user, period, "community")
    # the rankings and the mix show no handling-time percentile and no backlog: not computed for them
    firms = indicators.compute(user, period, "firm", with_backlog=False, with_p90=group == "firm")
    categories = indicators.compute(user, period, "category", with_backlog=False, with_p90=group == "category")
    detail = {"community": communities, "firm": firms, "category": categories}.get(group) or indicators.compute(
        user, period, group, with_backlog=False
    )
    total = communities.total

    kpis = [
        {
            "name": name,
            "label": str(FIGURES[name].label),
            "how": str(FIGURES[name].how),
            "cell": figure_cell(total, name, communities, None, None),
        }
        for name in KPI_FIGURES
    ]

    months = indicators.months_back(period, TREND_MONTHS)
    series = indicators.compute_series(user, months, "street")
    trend = Table(
        "trend",
        _("Month by month"),
        [_("Month")] + [str(FIGURES[f].label) for f in ("volume", *RATE_FIGURES)],
        figures=[None, "volume", *RATE_FIGURES],
    )
    for report in series:
        trend.rows.append(
            [Cell(report.period.label)]
            + [figure_cell(report.total, f, report, None, None) for f in ("volume", *RATE_FIGURES)]
        )

    rank_figures = ("composite", "satisfaction_rate", "resolution_rate", "response_rate", "follow_ups")
    rank_communities = figures_table(
        communities, "rank_community", _("Communities by composite rate"), rank_figures, "composite"
    )
    rank_firms = figures_table(
        firms,
        "rank_firm",
        _("Property firms by composite rate"),
        ("composite", "satisfaction_rate", "on_time_acceptance_rate", "on_time_completion_rate", "follow_ups"),
        "composite",
    )
    category_mix = Table(
        "category", _("Category mix"), [_("Category"), str(FIGURES["volume"].label)], figures=[None, "volume"]
    )
    for row in sorted(categories.rows, key=lambda r: -r.volume):
        if row.volume:
            category_mix.rows.append(
                [Cell(row.name or "—"), figure_cell(row, "volume", categories, "category", row.key)]
            )

    heat_months = months[-HEAT_MONTHS:]
    heat_reports = indicators.compute_series(user, heat_months, "compound")
    compounds: dict[Any, str] = {}
    for report in heat_reports:
        for row in report.rows:
            compounds.setdefault(row.key, row.name or "—")
    heat = Table(
        "heat",
        _("Satisfaction by compound and month"),
        [_("Compound")] + [r.period.label for r in heat_reports],
        figures=[None] + ["satisfaction_rate"] * len(heat_reports),
    )
    for key, name in sorted(compounds.items(), key=lambda item: item[1]):
        cells = [Cell(name)]
        for report in heat_reports:
            row = next((r for r in report.rows if r.key == key), None)
            cells.append(figure_cell(row, "satisfaction_rate", report, "compound", key) if row else Cell(None, True))
        heat.rows.append(cells)

    steps = Table(
        "steps",
        _("On time by step"),
        [_("Step"), _("Steps ended"), _("On time"), _("On-time rate")],
        figures=[None, None, None, "on_time_completion_rate"],
    )
    for item in indicators.on_time_by_step(user, period):
        figure = (
            "on_time_acceptance_rate"
            if item["state"] in ("grid_assigned", "firm_dispatched")
            else "on_time_completion_rate"
        )
        steps.rows.append(
            [
                Cell(L.state_label(item["state"])),
                Cell(item["steps"]),
                Cell(item["on_time"]),
                Cell(item["rate"], True, _link(figure, period)),
            ]
        )

    detail_table = figures_table(detail, "detail", _("All figures by %(group)s", group=str(detail.slice.label)))
    tables = {t.name: t for t in (trend, rank_communities, rank_firms, category_mix, heat, steps, detail_table)}
    return {
        "period": period,
        "kpis": kpis,
        "tables": tables,
        "group": group,
        "weights": communities.weights,
        "rollup_at": communities.rollup_at,
    }


def chart_data(tables: dict[str, Table]) -> dict[str, Any]:
    """What the charts draw (labels, series and the drill-down links), taken from the tables."""

    def column(table: Table, index: int):
        return [row[index].value for row in table.rows]

    def links(table: Table, index: int):
        return [row[index].link for row in table.rows]

    trend = tables["trend"]
    data: dict[str, Any] = {
        "trend": {
            "labels": column(trend, 0),
            "bars": {"name": trend.columns[1], "values": column(trend, 1), "links": links(trend, 1)},
            "lines": [
                {"name": trend.columns[i], "values": column(trend, i), "links": links(trend, i)} for i in range(2, 6)
            ],
        }
    }
    for name in ("rank_community", "rank_firm"):
        table = tables[name]
        ranked = [row for row in table.rows if row[2].value is not None]  # groups without answers: table only
        data[name] = {
            "labels": [row[1].value for row in ranked],
            "name": table.columns[2],
            "values": [row[2].value for row in ranked],
            "links": [row[2].link for row in ranked],
        }
    category = tables["category"]
    data["category"] = {
        "items": [{"name": row[0].value, "value": row[1].value, "link": row[1].link} for row in category.rows]
    }
    steps = tables["steps"]
    data["steps"] = {
        "labels": column(steps, 0),
        "values": column(steps, 3),
        "links": links(steps, 3),
        "name": steps.columns[3],
    }
    return data


def heat_class(value: float | None) -> str:
    """A CSS class for a heat-table cell (no inline styles: the pages run under a strict CSP)."""
    if value is None:
        return "heat-none"
    return f"heat-{min(9, max(0, int(value * 10)))}"
