"""The monthly bulletin (月度通报): figures per community and per firm with the month before, the overdue
cases, the yellow and red cards, and the firm ratings — as an Excel workbook, a CSV summary or a page.

Every number comes from :mod:`app.reports.indicators` and :mod:`app.reports.rating`; headers follow the
current language (Chinese by default, ``CLI_LOCALE=en`` or the English UI for English).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from app.auth import roles
from app.auth.models import User
from app.auth.permissions import scope_clause
from app.cases import labels as L
from app.cases.models import Case, Category
from app.core.errors import ValidationError
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.org.models import Community, Compound, PropertyFirm, Street
from app.reports import indicators, rating
from app.reports.indicators import FIGURES, Period, Report
from app.reports.models import ActionFact, StepFact

MAX_ROWS = 20_000
#: the page lists at most this many overdue cases and cards (the workbook lists them all, up to MAX_ROWS): a
#: street of a large city has hundreds of cards a month, and building and rendering every one of them made
#: the page grow with the city
PAGE_ROWS = 200
SUMMARY_FIGURES = (
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
    "yellow_cards",
    "red_cards",
)


@dataclass
class ScopeViewer:
    """A read-only viewer limited to a street or a community (the CLI's ``--scope``)."""

    street_id: int | None = None
    community_id: int | None = None
    label: str = ""
    role: str = roles.SUPERVISOR
    is_active: bool = True
    id: None = None
    grid_id: None = None
    firm_id: None = None
    branch_id: None = None
    station_id: None = None


def viewer_for_scope(text: str | None):
    """``street:CODE`` or ``community:CODE`` (codes or names) → a viewer; None/"" → the whole city.

    Raises :class:`ValidationError` for an unknown scope.
    """
    if not text:
        return ScopeViewer(label=_("All streets"), role=roles.ADMIN)
    kind, _sep, ref = text.partition(":")
    model = {"street": Street, "community": Community}.get(kind.strip())
    if model is None or not ref.strip():
        raise ValidationError(_("A scope is street:CODE or community:CODE."), field="scope")
    ref = ref.strip()
    obj = db.session.scalar(select(model).where((model.code == ref) | (model.name == ref)))
    if obj is None:
        raise ValidationError(_("No %(kind)s %(ref)s.", kind=kind, ref=ref), field="scope")
    if model is Street:
        return ScopeViewer(street_id=obj.id, label=obj.name)
    return ScopeViewer(community_id=obj.id, label=obj.name)


def scope_label(user) -> str:
    if isinstance(user, ScopeViewer):
        return user.label
    return getattr(user, "scope_label", "") or _("All streets")


@dataclass
class Bulletin:
    period: Period
    previous: Period
    scope: str
    generated_at: datetime
    communities: Report
    previous_communities: Report
    firms: Report
    previous_firms: Report
    overdue: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    ratings: list[dict[str, Any]] = field(default_factory=list)
    ratings_frozen: bool = False
    #: how many overdue cases and cards there are (the lists may hold only the first of them, see ``build``)
    overdue_total: int = 0
    cards_total: int = 0

    @property
    def title(self) -> str:
        return _("Key small matters: monthly bulletin %(month)s · %(scope)s", month=self.period.label, scope=self.scope)


def build(user, month: str | None, *, now: datetime | None = None, rows: int = MAX_ROWS) -> Bulletin:
    """The bulletin of ``month`` (YYYY-MM) over what ``user`` may see, its overdue cases and cards up to
    ``rows`` of each (the page asks for :data:`PAGE_ROWS`; their totals are counted all the same). Raises
    :class:`ValidationError`."""
    now = now or utcnow()
    period = indicators.parse_period(month, now)
    if period.kind != "month":
        raise ValidationError(_("A bulletin is for one month, such as 2026-11."), field="month")
    previous = indicators.previous_month(period)
    # the bulletin shows the average handling time, not the percentile
    quick = {"now": now, "with_backlog": False, "with_p90": False}
    communities = indicators.compute(user, period, "community", now=now, with_p90=False)
    previous_communities = indicators.compute(user, previous, "community", **quick)
    firms = indicators.compute(user, period, "firm", **quick)
    previous_firms = indicators.compute(user, previous, "firm", **quick)
    bulletin = Bulletin(
        period=period,
        previous=previous,
        scope=scope_label(user),
        generated_at=now,
        communities=communities,
        previous_communities=previous_communities,
        firms=firms,
        previous_firms=previous_firms,
    )
    bulletin.overdue, bulletin.overdue_total = _overdue(user, period, now, rows)
    bulletin.cards, bulletin.cards_total = _cards(user, period, rows)
    entries, frozen = rating.ratings_for(_rating_viewer(user), period.label, now=now)
    bulletin.ratings, bulletin.ratings_frozen = entries, frozen
    return bulletin


def _rating_viewer(user):
    return rating.SYSTEM_VIEWER if isinstance(user, ScopeViewer) else user


def _names(model, ids) -> dict[int, Any]:
    ids = {i for i in ids if i is not None}
    return {o.id: o for o in db.session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}


def _handler(fact, workers, firms) -> str:
    if fact.party == "firm":
        firm = firms.get(fact.firm_id)
        return firm.name if firm else "—"
    if fact.party == "branch":
        return _("Party branch")
    worker = workers.get(fact.grid_worker_id)
    return worker.display_name if worker else "—"


def _first(query, conditions, limit: int, counted) -> tuple[list, int]:
    """The first ``limit`` rows of ``query`` and how many rows ``conditions`` select (counted on
    ``counted`` only when the list is full)."""
    rows = db.session.execute(query.limit(limit)).all()
    if len(rows) < limit:
        return rows, len(rows)
    return rows, db.session.scalar(select(func.count()).select_from(counted).where(*conditions)) or 0


def _overdue(user, period: Period, now: datetime, limit: int = MAX_ROWS) -> tuple[list[dict[str, Any]], int]:
    """Steps open and past their deadline at the end of the month (or now), oldest deadline first (the first
    ``limit``), and how many there are."""
    as_of = period.as_of(now)
    s = StepFact
    conditions = (
        scope_clause(user, s),
        indicators.open_at(as_of, now),
        s.due_at.is_not(None),
        s.due_at < as_of,
        s.paused_since.is_(None),
    )
    query = (
        select(s, Case.ref, Case.category_id, Case.compound_id)
        .join(Case, Case.id == s.case_id)
        .where(*conditions)
        .order_by(s.due_at)
    )
    rows, total = _first(query, conditions, limit, s)
    workers = _names(User, [r[0].grid_worker_id for r in rows])
    firms = _names(PropertyFirm, [r[0].firm_id for r in rows])
    categories = _names(Category, [r[2] for r in rows])
    compounds = _names(Compound, [r[3] for r in rows])
    result = []
    for step, ref, category_id, compound_id in rows:
        late_hours = (as_of - step.due_at).total_seconds() / 3600
        result.append(
            {
                "ref": ref,
                "category": categories[category_id].name if category_id in categories else "—",
                "compound": compounds[compound_id].name if compound_id in compounds else "—",
                "step": L.state_label(step.state),
                "handler": _handler(step, workers, firms),
                "entered_at": to_local(step.entered_at).replace(tzinfo=None),
                "due_at": to_local(step.due_at).replace(tzinfo=None),
                "late_days": round(late_hours / 24, 1),
            }
        )
    return result, total


def _cards(user, period: Period, limit: int = MAX_ROWS) -> tuple[list[dict[str, Any]], int]:
    """The month's yellow and red cards in ``user``'s scope, oldest first (the first ``limit``), and how
    many there are."""
    a = ActionFact
    conditions = (scope_clause(user, a), a.kind.in_(("yellow", "red")), a.at >= period.start, a.at < period.end)
    query = select(a, Case.ref, Case.compound_id).join(Case, Case.id == a.case_id).where(*conditions)
    rows, total = _first(query.order_by(a.at, a.id), conditions, limit, a)
    workers = _names(User, [r[0].grid_worker_id for r in rows])
    firms = _names(PropertyFirm, [r[0].firm_id for r in rows])
    compounds = _names(Compound, [r[2] for r in rows])
    cards = [
        {
            "at": to_local(card.at).replace(tzinfo=None),
            "card": _("Red card") if card.kind == "red" else _("Yellow card"),
            "kind": card.kind,
            "ref": ref,
            "compound": compounds[compound_id].name if compound_id in compounds else "—",
            "step": L.state_label(card.state),
            "handler": _handler(card, workers, firms),
            "due_at": to_local(card.due_at).replace(tzinfo=None) if card.due_at else None,
        }
        for card, ref, compound_id in rows
    ]
    return cards, total


# ------------------------------------------------------------------------------------------ tables


def summary_columns() -> list[tuple[str, str | None]]:
    """(header, figure) of the summary table."""
    columns = [(_("Rank"), None), (_("Name"), None)]
    columns += [(str(FIGURES[f].label), f) for f in SUMMARY_FIGURES]
    columns += [(_("Composite, month before"), "composite_previous"), (_("Change"), "composite_change")]
    return columns


def summary_rows(report: Report, previous: Report) -> list[list[Any]]:
    """Rows ranked by composite rate, with the month before for comparison."""
    before = {row.key: row for row in previous.rows}
    rows = []
    for index, row in enumerate(report.ranked("composite"), start=1):
        composite = row.figure("composite", report.weights)
        old = before.get(row.key)
        old_composite = old.figure("composite", previous.weights) if old else None
        values: list[Any] = [index if composite is not None else None, row.name or row.code or "—"]
        for name in SUMMARY_FIGURES:
            value = row.figure(name, report.weights)
            values.append(int(value) if isinstance(value, float) and name in row.counts else value)
        change = round(composite - old_composite, 4) if composite is not None and old_composite is not None else None
        values += [old_composite, change]
        rows.append(values)
    return rows


def total_row(report: Report, previous: Report) -> list[Any]:
    values: list[Any] = [None, _("Total")]
    for name in SUMMARY_FIGURES:
        value = report.total.figure(name, report.weights)
        values.append(int(value) if isinstance(value, float) and name in report.total.counts else value)
    composite = report.total.figure("composite", report.weights)
    old = previous.total.figure("composite", previous.weights)
    values += [old, round(composite - old, 4) if composite is not None and old is not None else None]
    return values


def is_percent(figure: str | None) -> bool:
    if figure in ("composite_previous", "composite_change"):
        return True
    return bool(figure and figure in FIGURES and FIGURES[figure].percent)


def overdue_columns() -> list[str]:
    return [
        _("Reference"),
        _("Category"),
        _("Compound"),
        _("Step"),
        _("Handler"),
        _("Step started"),
        _("Deadline"),
        _("Days overdue"),
    ]


def card_columns() -> list[str]:
    return [_("Date"), _("Card"), _("Reference"), _("Compound"), _("Step"), _("Against"), _("Deadline")]


def rating_columns() -> list[str]:
    return [
        _("Rank"),
        _("Property firm"),
        _("Score"),
        _("Grade"),
        _("On-time acceptance"),
        _("On-time completion"),
        _("Satisfaction rate"),
        _("No send-back or reopen"),
        _("Yellow cards"),
        _("Red cards"),
        _("Adjustments"),
        _("Consequence"),
        _("Restricted until"),
    ]


def rating_rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for index, entry in enumerate(entries, start=1):
        rates = entry["components"].get("rates", {})
        counts = entry["components"].get("counts", {})
        adjustments = "; ".join(f"{a.points:+g} {a.reason} ({a.created_by_name})" for a in entry["adjustments"])
        grade = entry["grade"]
        rows.append(
            [
                index if entry["score"] is not None else None,
                entry["firm"].name,
                entry["score"],
                grade or _("not rated"),
                rates.get("acceptance"),
                rates.get("completion"),
                rates.get("satisfaction"),
                rates.get("reopen"),
                counts.get("yellow_cards", 0),
                counts.get("red_cards", 0),
                adjustments,
                str(rating.GRADE_CONSEQUENCES[grade]) if grade else "",
                entry["restricted_until"],
            ]
        )
    return rows


# ----------------------------------------------------------------------------------------- outputs


def to_csv(bulletin: Bulletin) -> str:
    """The summary table (communities, then firms) as CSV with a BOM, so Excel reads the Chinese."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    columns = summary_columns()
    writer.writerow([bulletin.title])
    for heading, report, previous in (
        (_("Communities"), bulletin.communities, bulletin.previous_communities),
        (_("Property firms"), bulletin.firms, bulletin.previous_firms),
    ):
        writer.writerow([])
        writer.writerow([heading])
        writer.writerow([c for c, _f in columns])
        for row in [*summary_rows(report, previous), total_row(report, previous)]:
            writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def to_xlsx(bulletin: Bulletin) -> bytes:
    """The workbook: summary, overdue cases, cards and firm ratings; numbers as numbers, percentages
    formatted, header rows frozen, widths fitted, printed landscape one page wide."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="F2DCDB")
    title_font = Font(bold=True, size=14)

    def setup(sheet, title: str, headers: list[str], header_row: int = 3):
        sheet["A1"] = title
        sheet["A1"].font = title_font
        sheet.cell(
            row=2, column=1, value=_("Generated %(at)s", at=to_local(bulletin.generated_at).strftime("%Y-%m-%d %H:%M"))
        )
        for index, text in enumerate(headers, start=1):
            cell = sheet.cell(row=header_row, column=index, value=text)
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
        sheet.print_title_rows = f"{header_row}:{header_row}"

    def write_row(sheet, row_index: int, values: list[Any], percents: list[bool] | None = None, bold_row=False):
        for col, value in enumerate(values, start=1):
            cell = sheet.cell(row=row_index, column=col, value=value)
            if percents and percents[col - 1] and isinstance(value, int | float):
                cell.number_format = "0.0%"
            elif hasattr(value, "hour"):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif hasattr(value, "year"):
                cell.number_format = "yyyy-mm-dd"
            if bold_row:
                cell.font = bold

    def fit(sheet):
        widths: dict[int, float] = {}
        for row in sheet.iter_rows(min_row=3):
            for cell in row:
                if cell.value is None:
                    continue
                text = cell.value.strftime("%Y-%m-%d %H:%M") if hasattr(cell.value, "strftime") else str(cell.value)
                width = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text) + 2
                widths[cell.column] = min(max(widths.get(cell.column, 6), width), 48)
        for column, width in widths.items():
            sheet.column_dimensions[get_column_letter(column)].width = width

    summary = book.active
    summary.title = _("Summary")[:31]
    columns = summary_columns()
    percents = [is_percent(f) for _c, f in columns]
    setup(summary, bulletin.title, [c for c, _f in columns])
    row_index = 4
    for heading, report, previous in (
        (_("Communities"), bulletin.communities, bulletin.previous_communities),
        (_("Property firms"), bulletin.firms, bulletin.previous_firms),
    ):
        summary.cell(row=row_index, column=1, value=heading).font = bold
        row_index += 1
        for values in summary_rows(report, previous):
            write_row(summary, row_index, values, percents)
            row_index += 1
        write_row(summary, row_index, total_row(report, previous), percents, bold_row=True)
        row_index += 2
    summary.cell(row=row_index, column=1, value=_("How the figures are computed")).font = bold
    for _c, figure in columns:
        if figure in FIGURES:
            row_index += 1
            summary.cell(row=row_index, column=1, value=str(FIGURES[figure].label))
            summary.cell(row=row_index, column=2, value=str(FIGURES[figure].how))
    fit(summary)

    overdue = book.create_sheet(_("Overdue cases")[:31])
    setup(overdue, _("Cases overdue at the end of %(month)s", month=bulletin.period.label), overdue_columns())
    for index, item in enumerate(bulletin.overdue, start=4):
        write_row(
            overdue,
            index,
            [
                item["ref"],
                item["category"],
                item["compound"],
                item["step"],
                item["handler"],
                item["entered_at"],
                item["due_at"],
                item["late_days"],
            ],
        )
    fit(overdue)

    cards = book.create_sheet(_("Cards")[:31])
    setup(cards, _("Yellow and red cards in %(month)s", month=bulletin.period.label), card_columns())
    for index, item in enumerate(bulletin.cards, start=4):
        write_row(
            cards,
            index,
            [item["at"], item["card"], item["ref"], item["compound"], item["step"], item["handler"], item["due_at"]],
        )
    fit(cards)

    ratings = book.create_sheet(_("Firm ratings")[:31])
    heading = _("Property-firm credit rating %(month)s", month=bulletin.period.label)
    if not bulletin.ratings_frozen:
        heading += " · " + _("provisional: the month is not rated yet")
    setup(ratings, heading, rating_columns())
    rating_percents = [False, False, False, False, True, True, True, True, False, False, False, False, False]
    for index, values in enumerate(rating_rows(bulletin.ratings), start=4):
        write_row(ratings, index, values, rating_percents)
    fit(ratings)

    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def filename(bulletin: Bulletin, extension: str) -> str:
    return f"bulletin-{bulletin.period.label}.{extension}"
