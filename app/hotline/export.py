"""The return sheet (回复单) the 12345 platform expects for the work orders it handed out."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from flask_babel import gettext as _
from sqlalchemy import select, true

from app.auth.permissions import scope_clause
from app.cases import labels as L
from app.cases.models import Case, CaseEvent, FollowUp
from app.core.timeutil import app_tz, to_local
from app.extensions import db
from app.hotline.importer import EXTERNAL_PREFIX
from app.org.models import Community, Grid, PropertyFirm

HEADERS = ("工单编号", "办理结果", "回复内容", "办结时间", "是否解决", "是否满意", "承办单位")
REPLY_TRIGGERS = ("firm_complete", "resolve_on_site", "branch_decline", "close_invalid", "signoff", "auto_close")
SATISFACTION = {"satisfied": "满意", "basic": "基本满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
MAX_DAYS = 366
BATCH = 1000


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """UTC-aware bounds of the local days ``start`` to ``end`` inclusive. Raises ValueError for a bad range."""
    if end < start:
        raise ValueError(_("The end date is before the start date."))
    if (end - start).days >= MAX_DAYS:
        raise ValueError(_("Export at most one year at a time."))
    tz = app_tz()
    return datetime.combine(start, time(0), tz), datetime.combine(end + timedelta(days=1), time(0), tz)


def return_rows(actor, start: date, end: date) -> Iterator[tuple]:
    """One row per case imported from 12345 and registered from ``start`` to ``end`` (local days), in
    ``actor``'s scope (``None``: every case, for the CLI). Raises ValueError for a bad range."""
    first, last = period_bounds(start, end)
    query = (
        select(Case)
        .where(
            Case.external_ref.like(EXTERNAL_PREFIX + "%"),
            Case.created_at >= first,
            Case.created_at < last,
            scope_clause(actor, Case) if actor is not None else true(),
        )
        .order_by(Case.id)
    )
    firms = dict(db.session.execute(select(PropertyFirm.id, PropertyFirm.name)).all())
    grids = dict(db.session.execute(select(Grid.id, Grid.name)).all())
    communities = dict(db.session.execute(select(Community.id, Community.name)).all())
    last_id = 0
    while True:
        cases = db.session.scalars(query.where(Case.id > last_id).limit(BATCH)).all()
        if not cases:
            return
        last_id = cases[-1].id
        ids = [c.id for c in cases]
        replies: dict[int, str] = {}
        for case_id, note in db.session.execute(
            select(CaseEvent.case_id, CaseEvent.note)
            .where(CaseEvent.case_id.in_(ids), CaseEvent.trigger.in_(REPLY_TRIGGERS[:4]), CaseEvent.note.is_not(None))
            .order_by(CaseEvent.id)
        ):
            replies[case_id] = note  # the latest reply wins
        follow_ups: dict[int, FollowUp] = {}
        for follow_up in db.session.scalars(
            select(FollowUp).where(FollowUp.case_id.in_(ids), FollowUp.valid.is_(True)).order_by(FollowUp.id)
        ):
            follow_ups[follow_up.case_id] = follow_up
        for case in cases:
            follow_up = follow_ups.get(case.id)
            if case.state == "closed":
                result = L.resolution_label(case.resolution) or L.state_label(case.state)
            else:
                result = _("In progress: %(state)s", state=L.state_label(case.state))
            unit = firms.get(case.firm_id) or grids.get(case.grid_id) or communities.get(case.community_id) or ""
            yield (
                case.external_ref[len(EXTERNAL_PREFIX) :],
                result,
                replies.get(case.id, ""),
                to_local(case.closed_at).strftime("%Y-%m-%d %H:%M:%S") if case.closed_at else "",
                ("是" if follow_up.resolved else "否") if follow_up else "",
                SATISFACTION.get(follow_up.satisfaction, follow_up.satisfaction) if follow_up else "",
                unit,
            )


def write_return_sheet(actor, start: date, end: date) -> tuple[bytes, int]:
    """The return sheet as XLSX bytes and its number of rows. Raises ValueError for a bad range."""
    from openpyxl import Workbook

    period_bounds(start, end)  # refuse a bad range before the workbook is started
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("回复单")
    sheet.append(list(HEADERS))
    count = 0
    for row in return_rows(actor, start, end):
        sheet.append(list(row))
        count += 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), count
