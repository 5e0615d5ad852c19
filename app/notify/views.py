"""The in-app inbox."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.core.params import parse_id
from app.extensions import db
from app.notify import services
from app.notify.models import Notification

bp = Blueprint("notify", __name__)
PAGE = 30


@bp.route("/inbox")
@login_required
def inbox():
    before = parse_id(request.args.get("before"))
    query = select(Notification).where(Notification.user_id == current_user.id)
    if request.args.get("unread"):
        query = query.where(Notification.read_at.is_(None))
    if before:
        query = query.where(Notification.id < before)
    items = db.session.scalars(query.order_by(Notification.id.desc()).limit(PAGE + 1)).all()
    more = len(items) > PAGE
    return render_template(
        "notify/inbox.html", items=items[:PAGE], more=more, next_before=items[PAGE - 1].id if more else None
    )


@bp.route("/inbox/<int(min=1, max=2147483647):notification_id>/open", methods=["POST"])
@login_required
def open_notification(notification_id: int):
    """Mark one notification read and go to its case."""
    services.mark_read(current_user, [notification_id])
    db.session.commit()
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != current_user.id:
        return redirect(url_for("notify.inbox"))
    if notification.case is not None:
        return redirect(url_for("cases.show", ref=notification.case.ref))
    return redirect(url_for("notify.inbox"))


@bp.route("/inbox/read-all", methods=["POST"])
@login_required
def read_all():
    count = services.mark_read(current_user)
    db.session.commit()
    flash(_("%(count)d notifications marked read.", count=count), "success")
    return redirect(url_for("notify.inbox"))


@bp.app_context_processor
def _unread():
    if current_user and current_user.is_authenticated:
        return {"unread_notifications": lambda: services.unread_count(current_user)}
    return {"unread_notifications": lambda: 0}
