"""Administration screens (Flask-Admin), restricted to administrators.

Each feature contributes its views in its own ``admin.py`` (``register(admin)``); this module holds
the shared secure base view and builds the ``Admin`` object for an application.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask import abort, flash, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.model import typefmt
from flask_admin.theme import Bootstrap4Theme
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from jinja2 import pass_context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms.validators import ValidationError

from app.auth import roles

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def is_admin_user() -> bool:
    return current_user.is_authenticated and current_user.role == roles.ADMIN


class SecureMixin:
    """Only administrators; anyone else signed in gets 403, anonymous users go to the login page."""

    def is_accessible(self):
        return is_admin_user()

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return redirect(url_for("auth.login", next=request.full_path))


class SecureIndexView(SecureMixin, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render("admin/app_index.html")


class AdminForm(FlaskForm):
    """A CSRF-protected admin form that remembers the edited object.

    Flask-Admin's ``Unique`` validator compares the row it finds with ``form._obj``; plain ``FlaskForm``
    does not keep it, so every edit of a row with a unique column (a user's username, a category's
    code) was refused with "already exists".
    """

    def __init__(self, *args, **kwargs):
        self._obj = kwargs.get("obj", args[1] if len(args) > 1 else None)
        super().__init__(*args, **kwargs)


#: columns never shown, exported or searched on an administration screen (hashes, secrets, stamps)
SENSITIVE_COLUMNS = ("password_hash", "token_hash", "key_hash", "session_stamp", "secret", "token")
#: the highest list page anyone can mean (page × page size must stay a sane OFFSET)
MAX_PAGE = 100_000
MAX_PAGE_SIZE = 500


def local_time(_view, value, _name) -> str:
    """A stored UTC time as the local time people read elsewhere in the app, to the minute."""
    from app.core.timeutil import to_local

    local = to_local(value)
    return local.strftime("%Y-%m-%d %H:%M") if local else ""


def _with_local_times(formatters):
    return {**formatters, datetime: local_time}


def code_labels() -> dict:
    """Columns holding internal codes, shown with their labels on every screen (list and details)."""
    from app.auth import roles as role_codes
    from app.cases import labels

    return {
        "urgency": labels.URGENCY_LABELS,
        "default_urgency": labels.URGENCY_LABELS,
        "role": role_codes.ROLE_LABELS,
    }


def is_sensitive(name) -> bool:
    name = str(name)
    return name in SENSITIVE_COLUMNS or name.endswith("_hash")


class SecureModelView(SecureMixin, ModelView):
    """A CSRF-protected model screen: friendly integrity messages, odd parameters answered 4xx,
    hashes never shown, complete CSV exports written to the audit log."""

    form_base_class = AdminForm
    page_size = 50
    can_view_details = True
    can_export = True
    export_types = ["csv"]
    create_modal = False
    edit_modal = False
    column_type_formatters = _with_local_times(typefmt.BASE_FORMATTERS)
    column_type_formatters_detail = _with_local_times(typefmt.DETAIL_FORMATTERS)
    column_type_formatters_export = _with_local_times(typefmt.EXPORT_FORMATTERS)

    def _code_label(self, model, name):
        labels = code_labels().get(str(name))
        if labels is None or name in (self.column_formatters or {}):
            return None
        value = getattr(model, str(name), None)
        if not isinstance(value, str):
            return None
        return str(labels.get(value, value))

    @pass_context
    def get_list_value(self, context, model, name):
        label = self._code_label(model, name)
        return label if label is not None else super().get_list_value(context, model, name)

    @pass_context
    def get_detail_value(self, context, model, name):
        label = self._code_label(model, name)
        return label if label is not None else super().get_detail_value(context, model, name)

    def _handle_view(self, name, **kwargs):
        response = super()._handle_view(name, **kwargs)
        if response is None:
            self._check_parameters()
        return response

    def _int_pk(self) -> bool:
        from sqlalchemy import inspect as sa_inspect

        columns = sa_inspect(self.model).primary_key
        try:
            return len(columns) == 1 and columns[0].type.python_type is int
        except NotImplementedError:
            return False

    def _check_parameters(self) -> None:
        """Refuse list and record parameters Flask-Admin would pass to the database unchecked.

        Raises ``werkzeug.exceptions.BadRequest`` (a page number or size out of range) and ``NotFound``
        (a record id that cannot exist: not a number, or beyond the id column's range).
        """
        from app.core.params import parse_id

        for name, low, high in (("page", 0, MAX_PAGE), ("page_size", 0, MAX_PAGE_SIZE), ("sort", 0, 1000)):
            raw = request.args.get(name)
            if raw in (None, ""):
                continue
            if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
                abort(
                    400,
                    description=_(
                        "The parameter %(name)s must be a whole number from %(low)d to %(high)d.",
                        name=name,
                        low=low,
                        high=high,
                    ),
                )
        if request.endpoint and request.endpoint.endswith(".ajax_update") and not request.form.get("list_form_pk"):
            abort(400)  # Flask-Admin would read the missing key and answer 500
        ids = request.args.getlist("id") + (request.form.getlist("id") if request.method == "POST" else [])
        if self._int_pk() and any(parse_id(value) is None for value in ids if value != ""):
            abort(404)

    def get_column_names(self, only_columns, excluded_columns):
        names = super().get_column_names(only_columns, excluded_columns)
        return [(name, label) for name, label in names if not is_sensitive(name)]

    def _export_csv(self, return_url):
        """The whole CSV built inside the request (Flask-Admin streams it after the database session
        has closed, and a lazy load cut the body off), and an audit line for the export."""
        import csv
        import io

        from flask import Response
        from werkzeug.utils import secure_filename

        from app.audit.services import record_audit
        from app.core.replica import reading_from_replica
        from app.extensions import db

        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([str(label) for _name, label in self._export_columns])
        rows = 0
        with reading_from_replica():  # a large export: from the read replica when configured (issue 12)
            _count, data = self._export_data()
            for row in data:
                values = (self.get_export_value(row, c) for c, _l in self._export_columns)
                writer.writerow(["" if v is None else str(v) for v in values])
                rows += 1
        # the audit line on the primary, after the replica's session is put back
        record_audit(
            current_user._get_current_object(),
            "data.exported",
            target=self.model.__tablename__,
            details={"table": self.model.__tablename__, "rows": rows, "filters": request.query_string.decode()[:300]},
        )
        db.session.commit()
        filename = secure_filename(self.get_export_name(export_type="csv"))
        return Response(
            "\ufeff" + out.getvalue(),  # BOM: Excel opens UTF-8 Chinese text correctly
            headers={"Content-Disposition": f"attachment;filename={filename}"},
            mimetype="text/csv",
        )

    def _on_model_change(self, form, model, is_created):
        """Run the view's own checks, then write the change to the audit log (same transaction)."""
        changes = {} if is_created else _changed_fields(model)
        super()._on_model_change(form, model, is_created)
        from app.audit.services import record_audit
        from app.extensions import db

        if is_created:
            db.session.flush()
        record_audit(
            current_user._get_current_object(),
            audit_action(model, "created" if is_created else "changed"),
            target=model,
            details={"table": model.__tablename__, "changes": changes} if changes else {"table": model.__tablename__},
        )

    def delete_model(self, model):
        from app.audit.services import record_audit

        record_audit(
            current_user._get_current_object(),
            audit_action(model, "deleted"),
            target=model,
            details={"table": model.__tablename__},
        )
        return super().delete_model(model)

    def handle_view_exception(self, exc: Exception) -> bool:
        if isinstance(exc, IntegrityError):
            text = str(exc.orig).lower()
            if "unique" in text or "duplicate" in text:
                flash(_("A record with the same code or name already exists. Change it and save again."), "error")
            elif "foreign key" in text or "violates" in text or "constraint" in text:
                flash(
                    _(
                        "Other records still refer to this one (cases, users, compounds…). "
                        "Move or deactivate them first."
                    ),
                    "error",
                )
            else:
                flash(_("The database refused the change: %(reason)s", reason=str(exc.orig)), "error")
            return True
        return super().handle_view_exception(exc)


#: configuration tables: a change is a "config.changed" line; other tables get "<table>.<verb>"
CONFIG_TABLES = {"category", "time_limit_policy", "business_hours", "holiday_override", "calendar_year"}
_SECRET_HINTS = ("hash", "password", "secret", "token", "phone", "stamp")


def audit_action(model, verb: str) -> str:
    table = model.__tablename__
    return "config.changed" if table in CONFIG_TABLES else f"{table}.{verb}"


def _changed_fields(model) -> dict[str, list[str | None]]:
    """``{field: [old, new]}`` for the columns about to change; secrets and phones shown as ``***``."""
    from sqlalchemy import inspect as sa_inspect

    changes: dict[str, list[str | None]] = {}
    state = sa_inspect(model)
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if any(hint in attr.key for hint in _SECRET_HINTS):
            changes[attr.key] = ["***", "***"]
        else:
            changes[attr.key] = [None if old is None else str(old)[:100], None if new is None else str(new)[:100]]
    for rel in state.mapper.relationships:
        if rel.direction.name != "MANYTOONE" or rel.key in changes:
            continue
        history = state.attrs[rel.key].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            changes[rel.key] = [None if old is None else str(old)[:100], None if new is None else str(new)[:100]]
    return changes


def revoke_selected(model, ids) -> int:
    """Set ``revoked_at`` on the selected rows of ``model`` (tokens, keys) and commit; returns how many."""
    from app.core.params import parse_id
    from app.core.timeutil import utcnow
    from app.extensions import db

    wanted = [i for i in (parse_id(raw) for raw in ids) if i is not None]
    from app.audit.services import record_audit

    rows = db.session.scalars(select(model).where(model.id.in_(wanted))).all()
    now = utcnow()
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
            record_audit(
                current_user._get_current_object(),
                f"{model.__tablename__}.revoked".replace("api_token", "token"),
                target=row,
                details={"prefix": row.prefix},
            )
    db.session.commit()
    return len(rows)


def validate_code(_form, field) -> None:
    """Form validator: a code is 1–32 letters, digits, dashes or underscores."""
    if field.data and not CODE_RE.match(field.data.strip()):
        raise ValidationError(_("Use 1–32 letters, digits, dashes or underscores, e.g. C01."))
    if field.data:
        field.data = field.data.strip()


def init_admin(app) -> Admin:
    """Create the administration screens for ``app`` and register every feature's views."""
    from app.core.headers import csp_nonce

    admin = Admin(
        app,
        name=_l("Administration"),
        index_view=SecureIndexView(name=_l("Overview"), url="/admin"),
        theme=Bootstrap4Theme(base_template="admin/app_base.html", fluid=True),
        csp_nonce_generator=csp_nonce,  # its few inline scripts carry this request's nonce
    )
    from app.audit.admin import register as register_audit
    from app.auth.admin import register as register_auth
    from app.cases.admin import register as register_cases
    from app.open311.admin import register as register_open311
    from app.org.admin import register as register_org
    from app.privacy.admin import register as register_privacy
    from app.sla.admin import register as register_sla

    register_org(admin)
    register_cases(admin)
    register_auth(admin)
    register_audit(admin)
    register_privacy(admin)
    register_open311(admin)
    register_sla(admin)
    from app.hotline.admin import register as register_hotline
    from app.notify.admin import register as register_notify

    register_hotline(admin)
    register_notify(admin)
    return admin
