"""The reveal page: property-firm staff see a resident's masked phone in full after giving a reason."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from app.auth.permissions import can_reveal_resident_phone, can_see_resident_phone
from app.core.errors import DomainError
from app.extensions import db
from app.privacy import services

bp = Blueprint("privacy", __name__)


class RevealForm(FlaskForm):
    reason = StringField(
        _l("Why do you need to call the resident?"),
        validators=[DataRequired(), Length(min=4, max=200)],
        description=_l("For example: to arrange a visit to repair the pipe. Written on the case and in the audit log."),
    )
    submit = SubmitField(_l("Show the phone number"))


@bp.route("/cases/<ref>/phone", methods=["GET", "POST"])
@login_required
def reveal_phone(ref: str):
    """GET: the form asking why; POST: the number, recorded on the case and in the audit log."""
    from app.cases.services import get_visible_case

    try:
        case = get_visible_case(current_user, ref)
    except DomainError:
        abort(404)
    if can_see_resident_phone(current_user, case):
        return redirect(url_for("cases.show", ref=case.ref))  # nothing is hidden from this user
    if not can_reveal_resident_phone(current_user, case):
        abort(403)
    form = RevealForm()
    phone, status = None, 200
    if form.validate_on_submit():
        try:
            phone = services.reveal_phone(current_user, case, form.reason.data)
        except DomainError as error:
            db.session.rollback()
            form.reason.errors.append(error.message)
            status = error.http_status
        else:
            db.session.commit()
    elif form.is_submitted():
        status = 422
    return render_template("privacy/reveal.html", case=case, form=form, phone=phone), status
