"""Supervisors' pages: the overdue board, the dashboard, the monthly bulletin and the firm ratings."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.audit.services import record_audit
from app.auth import roles
from app.auth.permissions import role_required
from app.cases.queries import QueueCounts
from app.core.errors import DomainError
from app.core.params import parse_id
from app.core.replica import reading_from_replica, reads_from_replica
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.org.models import PropertyFirm
from app.reports import board as board_service
from app.reports import bulletin as bulletin_service
from app.reports import dashboard as dashboard_service
from app.reports import indicators, rating
from app.reports.followups import set_follow_up_validity

bp = Blueprint("reports", __name__)

SUPERVISORS = (roles.SUPERVISOR, roles.ADMIN)


# ----------------------------------------------------------------------------------------- board


@bp.route("/board")
@role_required(*SUPERVISORS)
def board(status: int = 200, note: str = "", checked: frozenset = frozenset()):
    data = board_service.build(current_user)
    return render_template(
        "reports/board.html", board=data, note=note, checked=checked, fmt=dashboard_service.format_value
    ), status


@bp.route("/board/urge", methods=["POST"])
@role_required(*SUPERVISORS)
def bulk_urge():
    refs = request.form.getlist("refs")
    note = request.form.get("note", "")
    try:
        result = board_service.bulk_urge(current_user, refs, note)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
        return board(status=error.http_status, note=note, checked=frozenset(refs))
    db.session.commit()
    if result.urged:
        flash(
            _(
                "Urged %(n)d cases: %(refs)s. Their handlers have been notified.",
                n=len(result.urged),
                refs=", ".join(result.urged),
            ),
            "success",
        )
    for ref, reason in result.skipped:
        flash(_("%(ref)s not urged: %(reason)s", ref=ref, reason=reason), "warning")
    return redirect(url_for("reports.board"))


# ------------------------------------------------------------------------------------- dashboard


def _period_arg(name: str = "period"):
    try:
        return indicators.parse_period(request.args.get(name))
    except DomainError as error:
        flash(error.message, "danger")
        return None


@bp.route("/reports")
@role_required(*SUPERVISORS)
def reports_home():
    return redirect(url_for("reports.dashboard"))


@bp.route("/reports/dashboard")
@role_required(*SUPERVISORS)
@reads_from_replica  # figures from the read replica when configured (issue 12)
def dashboard():
    period = _period_arg()
    group = (request.args.get("group") or "community").strip()
    if period is None or group not in indicators.SLICES:
        if group not in indicators.SLICES:
            flash(_("Group the figures by one of %(groups)s.", groups=", ".join(indicators.SLICES)), "danger")
        return redirect(url_for("reports.dashboard"))
    data = dashboard_service.build(current_user, period, group)
    charts = dashboard_service.chart_data(data["tables"])
    return render_template(
        "reports/dashboard.html",
        data=data,
        period=period,
        group=group,
        slices=indicators.SLICES,
        figures=indicators.FIGURES,
        chart_json=json.dumps(charts, ensure_ascii=False, default=str),
        heat_class=dashboard_service.heat_class,
        previous=indicators.previous_month(period) if period.kind == "month" else None,
        current_month=indicators.current_month().label,
    )


@bp.route("/reports/dashboard.csv")
@role_required(*SUPERVISORS)
def dashboard_csv():
    out = io.StringIO()
    with reading_from_replica():  # the figures from the read replica when configured (issue 12)
        try:
            period = indicators.parse_period(request.args.get("period"))
            group = (request.args.get("group") or "community").strip()
            data = dashboard_service.build(current_user, period, group)
        except DomainError as error:
            abort(400, error.message)
        table = data["tables"].get(request.args.get("table", "detail"))
        if table is None:
            abort(404)
        out.write("\ufeff")
        csv.writer(out).writerows(table.csv_rows())
    # the audit line on the primary, after the replica's session is put back
    record_audit(current_user, "data.exported", target=f"{table.title} {period.label}", details={"format": "csv"})
    db.session.commit()
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={table.name}-{period.label}.csv"},
    )


# -------------------------------------------------------------------------------------- bulletin


def _bulletin(rows: int = bulletin_service.MAX_ROWS):
    month = request.args.get("month") or indicators.previous_month(indicators.current_month()).label
    return bulletin_service.build(current_user, month, rows=rows)


@bp.route("/reports/bulletin")
@role_required(*SUPERVISORS)
@reads_from_replica  # figures from the read replica when configured (issue 12)
def bulletin():
    try:
        data = _bulletin(rows=bulletin_service.PAGE_ROWS)
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(url_for("reports.bulletin"))
    return render_template(
        "reports/bulletin.html",
        b=data,
        columns=bulletin_service.summary_columns(),
        summary_rows=bulletin_service.summary_rows,
        total_row=bulletin_service.total_row,
        is_percent=bulletin_service.is_percent,
        rating_columns=bulletin_service.rating_columns(),
        rating_rows=bulletin_service.rating_rows(data.ratings),
        fmt=dashboard_service.format_value,
        figures=indicators.FIGURES,
    )


@bp.route("/reports/bulletin.<ext>")
@role_required(*SUPERVISORS)
def bulletin_download(ext: str):
    if ext not in ("xlsx", "csv"):
        abort(404)
    with reading_from_replica():  # the figures from the read replica when configured (issue 12)
        try:
            data = _bulletin()
        except DomainError as error:
            abort(400, error.message)
        if ext == "csv":
            body, mimetype = bulletin_service.to_csv(data), "text/csv"
        else:
            body = bulletin_service.to_xlsx(data)
            mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    # the audit line on the primary, after the replica's session is put back
    record_audit(current_user, "data.exported", target=data.title, details={"format": ext, "month": data.period.label})
    db.session.commit()
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f"attachment; filename={bulletin_service.filename(data, ext)}"},
    )


# --------------------------------------------------------------------------------------- ratings


@bp.route("/reports/ratings")
@role_required(roles.SUPERVISOR, roles.ADMIN, roles.PROPERTY_MANAGER)
def ratings(status: int = 200, form: dict | None = None):
    month = request.args.get("month") or request.form.get("month") or rating.previous_complete_month()
    try:
        entries, frozen = rating.ratings_for(current_user, month)
        period = indicators.parse_period(month)
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(url_for("reports.ratings"))
    return render_template(
        "reports/ratings.html",
        entries=entries,
        frozen=frozen,
        month=period.label,
        month_over=period.end <= utcnow(),
        can_manage=rating.can_manage(current_user),
        settings=rating.settings(),
        consequences=rating.GRADE_CONSEQUENCES,
        component_labels=rating.COMPONENT_LABELS,
        form=form or {},
        previous=indicators.previous_month(period).label,
        fmt=dashboard_service.format_value,
    ), status


def _rating_action(action, success: str):
    month = request.form.get("month", "")
    try:
        action(month)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
        return ratings(status=error.http_status, form=request.form.to_dict())
    db.session.commit()
    flash(success, "success")
    as_of = g.pop("rating_figures_as_of", None)  # set when a computation read the read replica
    if as_of is not None:
        when = to_local(as_of).strftime("%Y-%m-%d %H:%M:%S")
        flash(_("Figures as of %(time)s (served from the read replica).", time=when), "info")
    return redirect(url_for("reports.ratings", month=month))


@bp.route("/reports/ratings/compute", methods=["POST"])
@role_required(*SUPERVISORS)
def compute_ratings():
    recompute = request.form.get("recompute") == "1"
    return _rating_action(
        lambda month: rating.compute_month(month, current_user, recompute=recompute, reason=request.form.get("reason")),
        _("Ratings recomputed; the change is logged.") if recompute else _("Ratings computed and frozen."),
    )


@bp.route("/reports/ratings/adjust", methods=["POST"])
@role_required(*SUPERVISORS)
def adjust_rating():
    return _rating_action(
        lambda month: rating.adjust(
            month, request.form.get("firm"), request.form.get("points"), request.form.get("reason", ""), current_user
        ),
        _("Adjustment recorded."),
    )


@bp.route("/reports/ratings/<code>")
@role_required(roles.SUPERVISOR, roles.ADMIN, roles.PROPERTY_MANAGER)
def firm_history(code: str):
    firm = db.session.scalar(db.select(PropertyFirm).where(PropertyFirm.code == code))
    if firm is None:
        abort(404)
    try:
        rows = rating.history(current_user, firm)
    except DomainError:
        abort(404)
    chart = {
        "labels": [r.month for r in reversed(rows)],
        "values": [r.score for r in reversed(rows)],
        "name": _("Score"),
    }
    return render_template(
        "reports/firm_history.html",
        firm=firm,
        rows=rows,
        chart_json=json.dumps({"history": chart}, ensure_ascii=False),
        consequences=rating.GRADE_CONSEQUENCES,
        component_labels=rating.COMPONENT_LABELS,
        fmt=dashboard_service.format_value,
    )


# ------------------------------------------------------------------------------------- follow-ups


@bp.route("/follow-ups/<int:follow_up_id>/validity", methods=["POST"])
@role_required(*SUPERVISORS)
def follow_up_validity(follow_up_id: int):
    valid = request.form.get("valid") == "1"
    ref = request.form.get("ref", "")
    try:
        follow_up = set_follow_up_validity(parse_id(follow_up_id), current_user, valid, request.form.get("reason"))
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
        return redirect(url_for("cases.show", ref=ref, _anchor="follow-ups") if ref else url_for("reports.board"))
    db.session.commit()
    flash(
        _("Follow-up marked valid again.") if valid else _("Follow-up marked invalid; it no longer counts."), "success"
    )
    from app.cases.models import Case

    case = db.session.get(Case, follow_up.case_id)
    return redirect(url_for("cases.show", ref=case.ref, _anchor="follow-ups"))


@bp.app_context_processor
def _nav_counts():
    def overdue_badge():
        if not (current_user and current_user.is_authenticated and board_service.can_see_board(current_user)):
            return ""
        count = board_service.overdue_count(current_user)
        return QueueCounts.show(count) if count else ""  # "99+" beyond the cap

    return {"overdue_badge": overdue_badge}
