"""Timer actions on the case page: extension requests and decisions, urging, shelving."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.cases import services as cases
from app.core.errors import DomainError
from app.core.timeutil import parse_instant
from app.extensions import db
from app.sla import services

bp = Blueprint("sla", __name__)


def _load(ref: str):
    try:
        return cases.get_visible_case(current_user, ref)
    except DomainError:
        abort(404)


def _instant(name: str):
    value = (request.form.get(name) or "").strip()
    if not value:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _done(ref: str, message: str, action):
    try:
        action()
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(url_for("cases.show", ref=ref, _anchor="timer"))


@bp.route("/cases/<ref>/extension", methods=["POST"])
@login_required
def request_extension(ref: str):
    case = _load(ref)
    proposed = _instant("proposed_due_at")
    return _done(
        case.ref,
        _("Extension requested; a supervisor will decide."),
        lambda: services.request_extension(case, current_user, proposed, request.form.get("reason", "")),
    )


@bp.route("/cases/<ref>/extension/decide", methods=["POST"])
@login_required
def decide_extension(ref: str):
    case = _load(ref)
    approve = request.form.get("decision") == "approve"
    message = _("Extension approved.") if approve else _("Extension denied.")
    return _done(
        case.ref, message, lambda: services.decide_extension(case, current_user, approve, request.form.get("note"))
    )


@bp.route("/cases/<ref>/urge", methods=["POST"])
@login_required
def urge(ref: str):
    case = _load(ref)
    return _done(
        case.ref,
        _("Urged; the handler has been notified."),
        lambda: services.urge(case, current_user, request.form.get("note", "")),
    )


@bp.route("/cases/<ref>/shelve", methods=["POST"])
@login_required
def shelve(ref: str):
    case = _load(ref)
    review_at = _instant("review_at")
    return _done(
        case.ref,
        _("Case shelved; its clock is stopped until the review date."),
        lambda: services.shelve(case, current_user, request.form.get("reason", ""), review_at),
    )


@bp.route("/cases/<ref>/unshelve", methods=["POST"])
@login_required
def unshelve(ref: str):
    case = _load(ref)
    return _done(
        case.ref,
        _("Case taken off the shelf; its clock runs again."),
        lambda: services.unshelve(case, current_user, request.form.get("note")),
    )


@bp.app_context_processor
def _calendar_banner():
    def missing_years():
        if not (current_user and current_user.is_authenticated and current_user.role == "admin"):
            return []
        return services.missing_schedule_years()

    return {"missing_schedule_years": missing_years}
