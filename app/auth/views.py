"""Login, logout, profile and password pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app.audit.services import record_audit
from app.auth import services, sessions
from app.auth.forms import ChangePasswordForm, LoginForm, TokenForm
from app.auth.models import ApiToken
from app.core import throttle
from app.core.errors import DomainError
from app.extensions import db

bp = Blueprint("auth", __name__)

# failed sign-ins per client address (password spraying across accounts): throttle.LOGIN; accounts
# lock on their own (services.authenticate)


def _safe_next(target: str | None) -> str | None:
    """Only follow a relative ``next`` on this site (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    status = 200
    if request.method == "POST" and not form.validate_on_submit():
        status = 400
    elif request.method == "POST" and throttle.check(throttle.LOGIN, request.remote_addr):
        form.password.errors.append(_("Too many failed sign-ins from this address. Try again in 15 minutes."))
        status = 429
    elif request.method == "POST":
        try:
            user = services.authenticate(form.username.data, form.password.data)
        except services.LoginRefused as refused:
            throttle.failed(throttle.LOGIN, request.remote_addr)
            record_audit(
                None,
                "login.locked" if refused.locked else "login.failed",
                target=(form.username.data or "")[:64],
            )
            db.session.commit()  # keep the failure count / lock and the audit line
            form.password.errors.append(refused.message)
            status = 401
        else:
            remember = bool(form.remember.data)
            sessions.start_session(user, remember=remember)
            record_audit(user, "login.success", target=user, details={"remember": remember})
            db.session.commit()
            login_user(user, remember=remember)
            flash(_("Welcome, %(name)s.", name=user.display_name), "success")
            return redirect(_safe_next(request.args.get("next")) or url_for("main.index"))
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    sessions.end_session()
    record_audit(current_user, "logout", target=current_user._get_current_object())
    db.session.commit()
    logout_user()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/profile/sessions/revoke", methods=["POST"])
@login_required
def sign_out_everywhere():
    """End every session and remember-me cookie of the current user, this one included."""
    user = current_user._get_current_object()
    sessions.sign_out_everywhere(user)
    record_audit(user, "sessions.revoked", target=user)
    db.session.commit()
    logout_user()
    flash(_("You are signed out on every device. Sign in again here."), "info")
    return redirect(url_for("auth.login"))


def _profile_page(**extra):
    user = current_user._get_current_object()
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()
    extra.setdefault("form", ChangePasswordForm())
    extra.setdefault("token_form", TokenForm(prefix="token"))
    return render_template(
        "auth/profile.html",
        tokens=tokens,
        login_sessions=sessions.active_sessions(user),
        this_session=sessions.current_session(),
        **extra,
    )


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    form = ChangePasswordForm()
    token_form = TokenForm(prefix="token")
    if form.submit.data and form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            services.change_password(user, form.current_password.data, form.new_password.data)
        except DomainError as error:
            db.session.rollback()
            target = getattr(form, error.field or "new_password", form.new_password)
            target.errors.append(error.message)
        else:
            # every other session ends; this browser continues on a new session
            was = sessions.current_session()
            remember = bool(was and was.remember)
            sessions.sign_out_everywhere(user)
            sessions.start_session(user, remember=remember)
            record_audit(user, "password.changed", target=user)
            db.session.commit()
            login_user(user, remember=remember)
            flash(_("Your password has been changed. Your other sessions are signed out."), "success")
            return redirect(url_for("auth.profile"))
    return _profile_page(form=form, token_form=token_form)


@bp.route("/profile/tokens", methods=["POST"])
@login_required
def create_token():
    token_form = TokenForm(prefix="token")
    if not token_form.validate_on_submit():
        flash(_("Give the token a name, e.g. the system that will use it."), "danger")
        return redirect(url_for("auth.profile"))
    try:
        token, secret = services.create_token(current_user, token_form.name.data)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
        return redirect(url_for("auth.profile"))
    record_audit(current_user, "token.created", target=token, details={"prefix": token.prefix})
    db.session.commit()
    return _profile_page(new_secret=secret, new_token=token)


@bp.route("/profile/tokens/<int(min=1, max=2147483647):token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int):
    try:
        token = services.revoke_token(current_user, token_id)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "danger")
    else:
        record_audit(current_user, "token.revoked", target=token, details={"prefix": token.prefix})
        db.session.commit()
        flash(_("The token is revoked; calls using it are refused from now on."), "success")
    return redirect(url_for("auth.profile"))
