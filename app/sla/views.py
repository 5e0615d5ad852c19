"""Timer actions on the case page: extension requests and decisions, urging, shelving.

On a refusal the case page is shown again with the message and what the user typed.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.cases import services as cases
from app.core.errors import DomainError, ValidationError
from app.core.params import reasonable_instant
from app.core.timeutil import parse_instant
from app.extensions import db
from app.sla import services

bp = Blueprint("sla", __name__)


def _load(ref: str):
    try:
        return cases.get_visible_case(current_user, ref)
    except DomainError:
        abort(404)


def _instant(name: str, label: str):
    """The form's date-time field ``name``; None when empty. Raises :class:`ValidationError` when unreadable."""
    value = (request.form.get(name) or "").strip()
    if not value:
        return None
    try:
        instant = parse_instant(value)
        if not reasonable_instant(instant):
            raise ValueError
        return instant
    except ValueError:
        raise ValidationError(
            _("%(field)s: enter a date and time, e.g. 2026-12-01 17:30.", field=label), field=name
        ) from None


def _do(ref: str, form: str, message: str, action):
    """Run ``action``; on success commit and go back to the timer, else show the form again as typed."""
    case = _load(ref)
    try:
        action(case)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
        from app.cases.views import render_case

        values = {f"{form}:{k}": v for k, v in request.form.items() if k != "csrf_token"}
        values["_timer_form"] = form
        return render_case(_load(ref), values=values, status=error.http_status)
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("cases.show", ref=case.ref, _anchor="timer"))


@bp.route("/cases/<ref>/extension", methods=["POST"])
@login_required
def request_extension(ref: str):
    def action(case):
        proposed = _instant("proposed_due_at", _("New deadline"))
        services.request_extension(case, current_user, proposed, request.form.get("reason", ""))

    return _do(ref, "extension", _("Extension requested; a supervisor will decide."), action)


@bp.route("/cases/<ref>/extension/decide", methods=["POST"])
@login_required
def decide_extension(ref: str):
    approve = request.form.get("decision") == "approve"
    message = _("Extension approved.") if approve else _("Extension denied.")
    return _do(
        ref,
        "decide",
        message,
        lambda case: services.decide_extension(case, current_user, approve, request.form.get("note")),
    )


@bp.route("/cases/<ref>/urge", methods=["POST"])
@login_required
def urge(ref: str):
    return _do(
        ref,
        "urge",
        _("Urged; the handler has been notified."),
        lambda case: services.urge(case, current_user, request.form.get("note", "")),
    )


@bp.route("/cases/<ref>/shelve", methods=["POST"])
@login_required
def shelve(ref: str):
    def action(case):
        review_at = _instant("review_at", _("Review on"))
        services.shelve(case, current_user, request.form.get("reason", ""), review_at)

    return _do(ref, "shelve", _("Case shelved; its clock is stopped until the review date."), action)


@bp.route("/cases/<ref>/unshelve", methods=["POST"])
@login_required
def unshelve(ref: str):
    return _do(
        ref,
        "unshelve",
        _("Case taken off the shelf; its clock runs again."),
        lambda case: services.unshelve(case, current_user, request.form.get("note")),
    )


@bp.app_context_processor
def _calendar_banner():
    def missing_years():
        if not (current_user and current_user.is_authenticated and current_user.role == "admin"):
            return []
        return services.missing_schedule_years()

    return {"missing_schedule_years": missing_years}
