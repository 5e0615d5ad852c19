"""Administration screens for users and API tokens."""

from __future__ import annotations

import json

from flask import flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from wtforms import PasswordField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp, ValidationError

from app.admin import SecureModelView, revoke_selected
from app.audit.services import record_audit
from app.auth import roles, services, sessions
from app.auth.models import ApiToken, User
from app.core.errors import DomainError
from app.core.params import parse_id
from app.core.timeutil import utcnow
from app.extensions import db

USERS = _l("Users")


class UserView(SecureModelView):
    can_delete = False  # history refers to users: deactivate instead
    column_list = ("username", "display_name", "role", "scope", "active", "locked_until", "last_login_at")
    column_labels = {
        "username": _l("Username"),
        "display_name": _l("Display name"),
        "role": _l("Role"),
        "scope": _l("Scope"),
        "active": _l("Active"),
        "locked_until": _l("Locked until"),
        "last_login_at": _l("Last sign-in"),
        "phone": _l("Mobile"),
        "email": _l("E-mail"),
        "station": _l("Service station"),
        "grid": _l("Grid"),
        "firm": _l("Property firm"),
        "branch": _l("Party branch"),
        "community": _l("Community"),
        "street": _l("Street"),
        "new_password": _l("New password"),
    }
    column_searchable_list = ("username", "display_name")
    column_filters = ("role", "active")
    column_default_sort = "username"
    column_formatters = {
        "role": lambda v, c, m, p: m.role_label,
        "scope": lambda v, c, m, p: m.scope_label,
    }
    form_columns = (
        "username",
        "display_name",
        "role",
        "station",
        "grid",
        "firm",
        "branch",
        "community",
        "street",
        "phone",
        "email",
        "active",
        "new_password",
    )
    form_extra_fields = {
        "new_password": PasswordField(
            _l("New password"),
            description=_l("At least 8 characters with letters and digits. Leave empty to keep the current one."),
        )
    }
    form_choices = {"role": [(role, roles.ROLE_LABELS[role]) for role in roles.ROLES]}
    #: static/js/admin.js shows only the scope fields the chosen role accepts
    form_widget_args = {"role": {"data-role-scopes": json.dumps(roles.ROLE_SCOPES)}}
    form_args = {
        "username": {
            "validators": [
                DataRequired(),
                Regexp(
                    services.USERNAME_RE.pattern,
                    message=_l("A username has 3–64 letters, digits, dots, dashes or underscores."),
                ),
            ]
        },
        "display_name": {"validators": [DataRequired(), Length(max=64)]},
        "phone": {
            "validators": [
                Optional(),
                Regexp(services.MOBILE_RE.pattern, message=_l("A mobile number has 11 digits and starts with 1.")),
            ]
        },
        "email": {"validators": [Optional(), Email(message=_l("This is not an e-mail address."))]},
    }

    def on_model_change(self, form, model, is_created):
        model.username = model.username.strip()
        chosen = [kind for kind in services.SCOPE_MODELS if getattr(model, kind) is not None]
        if len(chosen) > 1:
            raise ValidationError(
                _(
                    "Choose one scope only (now: %(kinds)s).",
                    kinds=", ".join(str(roles.SCOPE_LABELS[k]) for k in chosen),
                )
            )
        scope = services.Scope(chosen[0], getattr(model, chosen[0]).id) if chosen else services.Scope(None, None)
        try:
            services.validate_role_scope(model.role, scope)
            password = form.new_password.data
            if is_created and not password:
                raise DomainError(_("Give the new user a password."))
            if password:
                services.check_password_strength(password)
                model.set_password(password)
                model.password_changed_at = utcnow()
        except DomainError as error:
            raise ValidationError(error.message) from None
        model.phone = model.phone or None
        model.email = model.email or None
        if not is_created:
            state = sa_inspect(model)
            watched = ("role", "active", *services.SCOPE_MODELS)
            if password or any(state.attrs[name].history.has_changes() for name in watched):
                # a reset password, a deactivation or new rights end every session of the account
                sessions.sign_out_everywhere(model)
            if password:
                record_audit(current_user._get_current_object(), "password.reset", target=model)

    @action("unlock", _l("Unlock"), _l("Unlock the selected accounts?"))
    def action_unlock(self, ids):
        users = db.session.scalars(select(User).where(User.id.in_([i for i in map(parse_id, ids) if i]))).all()
        for user in users:
            services.unlock_user(user)
            record_audit(current_user._get_current_object(), "user.unlocked", target=user)
        db.session.commit()
        flash(_("%(count)d accounts unlocked.", count=len(users)), "success")


class TokenView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    column_list = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    column_labels = {
        "user": _l("User"),
        "name": _l("Name"),
        "prefix": _l("Starts with"),
        "created_at": _l("Created"),
        "last_used_at": _l("Last used"),
        "revoked_at": _l("Revoked"),
    }
    column_searchable_list = ("name", "prefix")
    column_default_sort = ("created_at", True)

    @action("revoke", _l("Revoke"), _l("Revoke the selected tokens? Calls using them will be refused."))
    def action_revoke(self, ids):
        flash(_("%(count)d tokens revoked.", count=revoke_selected(ApiToken, ids)), "success")


def register(admin) -> None:
    admin.add_view(UserView(User, db, name=_l("Users"), category=USERS))
    admin.add_view(TokenView(ApiToken, db, name=_l("API tokens"), category=USERS))
