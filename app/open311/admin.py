"""Administration screen for Open311 API keys: issue (the key is shown once), rename, revoke."""

from __future__ import annotations

from flask import flash, g
from flask_admin import expose
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms.validators import DataRequired, Length

from app.admin import SecureModelView, revoke_selected
from app.audit.services import record_audit
from app.extensions import db
from app.open311.models import Open311Key
from app.open311.services import issue_key

INTEGRATIONS = _l("Integrations")


class Open311KeyView(SecureModelView):
    """Only a hash of each key is stored: the key itself is shown once, right after it is issued."""

    can_delete = False  # keep the record of who could submit; revoke instead
    can_view_details = False
    can_export = False
    column_list = ("name", "prefix", "street", "created_at", "last_used_at", "revoked_at")
    column_labels = {
        "name": _l("Client name"),
        "prefix": _l("Starts with"),
        "street": _l("Street"),
        "created_at": _l("Created"),
        "last_used_at": _l("Last used"),
        "revoked_at": _l("Revoked"),
    }
    column_descriptions = {
        "street": _l("Where requests from this client belong when no compound can be recognised in the address."),
    }
    column_searchable_list = ("name", "prefix")
    column_default_sort = ("created_at", True)
    form_columns = ("name", "street")
    form_args = {"name": {"validators": [DataRequired(), Length(max=100)]}}

    def create_model(self, form):
        """Issue a key through the service (a random key; only its hash and prefix are stored)."""
        try:
            key, secret = issue_key(form.name.data, form.street.data.id if form.street.data else None)
            record_audit(
                current_user._get_current_object(), "open311_key.created", target=key, details={"prefix": key.prefix}
            )
            db.session.commit()
        except Exception as error:  # noqa: BLE001 - shown to the administrator like Flask-Admin does
            db.session.rollback()
            if not self.handle_view_exception(error):
                flash(_("The key could not be created: %(reason)s", reason=str(error)), "error")
            return False
        g.open311_new_key = (key, secret)
        return key

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        response = super().create_view()
        created = g.pop("open311_new_key", None)
        if created is None:
            return response
        key, secret = created
        return self.render("api/open311_key_created.html", key=key, secret=secret, list_url=self.get_url(".index_view"))

    @action("revoke", _l("Revoke"), _l("Revoke the selected keys? Clients using them will be refused."))
    def action_revoke(self, ids):
        flash(_("%(count)d keys revoked.", count=revoke_selected(Open311Key, ids)), "success")


def register(admin) -> None:
    """Add the Open311 key screens to the administration."""
    admin.add_view(
        Open311KeyView(Open311Key, db, name=_l("Open311 keys"), endpoint="open311key", category=INTEGRATIONS)
    )
