"""Administrators: export everything held about a phone number, and anonymise it on request."""

from __future__ import annotations

import json

from flask import Response, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from app.admin import SecureMixin
from app.core.errors import DomainError
from app.extensions import db
from app.privacy import services


class ResidentForm(FlaskForm):
    phone = StringField(_l("Resident's mobile number"), validators=[DataRequired(), Length(max=20)])
    confirm = BooleanField(_l("I have checked the request: replace this resident's personal data for good"))


def iso_local(text: str | None) -> str:
    """An exported ISO time (UTC) as the local time to the minute; text that is not a time unchanged."""
    from datetime import datetime

    from app.core.timeutil import to_local

    try:
        local = to_local(datetime.fromisoformat(text)) if text else None
    except (TypeError, ValueError):
        return text or ""
    return local.strftime("%Y-%m-%d %H:%M") if local else ""


class ResidentDataView(SecureMixin, BaseView):
    """One screen, two acts: export (a JSON file) and anonymisation (after an explicit confirmation)."""

    def render(self, template, **kwargs):
        """The preview shows local times and state labels, never ISO stamps or internal codes."""
        from app.cases.labels import state_label

        return super().render(template, state_label=state_label, iso_local=iso_local, **kwargs)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        form = ResidentForm()
        preview = None
        if request.method == "POST" and form.validate_on_submit():
            actor = current_user._get_current_object()
            try:
                if request.form.get("act") == "anonymise":
                    if not form.confirm.data:
                        form.confirm.errors.append(_("Tick the box to confirm the anonymisation."))
                        return self.render("admin/resident_data.html", form=form, preview=None), 422
                    count = services.anonymise_resident(actor, form.phone.data)
                    db.session.commit()
                    flash(_("%(count)d cases anonymised; their figures stay.", count=count), "success")
                    return redirect(url_for(".index"))
                data = services.export_resident(actor, form.phone.data)
            except DomainError as error:
                db.session.rollback()
                form.phone.errors.append(error.message)
                return self.render("admin/resident_data.html", form=form, preview=None), error.http_status
            db.session.commit()
            if request.form.get("act") == "export":
                body = json.dumps(data, ensure_ascii=False, indent=2)
                name = f"resident-{services.mask(data['phone']).replace('*', 'x')}.json"
                return Response(
                    body,
                    mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename={name}"},
                )
            preview = data
        elif request.method == "POST":
            return self.render("admin/resident_data.html", form=form, preview=None), 422
        return self.render("admin/resident_data.html", form=form, preview=preview)


def register(admin) -> None:
    admin.add_view(
        ResidentDataView(
            name=_l("Residents' data"), endpoint="residentdata", url="/admin/resident-data", category=_l("Users")
        )
    )
