"""The in-app inbox."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.core.params import parse_id
from app.extensions import csrf, db
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


# ---------------------------------------------------------------------------------- preferences


@bp.route("/inbox/channels", methods=["GET", "POST"])
@login_required
def preferences():
    """Which outbound channels the user wants besides the inbox (e-mail, SMS — those the site enabled)."""
    from app.notify.channels import PERSONAL_CHANNELS, enabled_channels

    available = [c.name for c in enabled_channels() if c.name in PERSONAL_CHANNELS]
    if request.method == "POST":
        chosen = [name for name in request.form.getlist("channels") if name in available]
        services.set_preferences(current_user, chosen)
        db.session.commit()
        flash(_("Your notification channels were saved."), "success")
        return redirect(url_for("notify.preferences"))
    return render_template(
        "notify/preferences.html", available=available, chosen=services.chosen_channels(current_user, available)
    )


# ----------------------------------------------------------------------------- SMS replies (退订)


@bp.route("/sms/replies/<provider>", methods=["POST"])
@csrf.exempt
def sms_replies(provider: str):
    """The SMS provider's reply callback: residents who answer "TD" are not messaged again.

    Authenticated by ``SMS_INBOUND_TOKEN`` in the ``token`` query parameter (the URL given to the
    provider). Accepts Tencent Cloud's reply callback (an object or a list with ``mobile`` and ``text``)
    and Alibaba Cloud's SmsUp push (a list with ``phone_number`` and ``content``).
    """
    import hmac

    from flask import current_app, jsonify

    from app.notify import resident

    expected = current_app.config.get("SMS_INBOUND_TOKEN") or ""
    if not expected or not hmac.compare_digest(request.args.get("token", ""), expected):
        return jsonify({"result": 1, "errmsg": "forbidden"}), 403
    if provider not in ("tencent", "aliyun"):
        return jsonify({"result": 1, "errmsg": "unknown provider"}), 404
    payload = request.get_json(silent=True)
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(item, dict) for item in items) or len(items) > 1000:
        return jsonify({"result": 1, "errmsg": "expected a JSON object or list"}), 400
    stopped = 0
    for item in items:
        phone = item.get("mobile") or item.get("phone_number") or ""
        text = item.get("text") or item.get("content") or ""
        if isinstance(phone, str) and isinstance(text, str) and resident.handle_reply(phone, text, f"reply:{provider}"):
            stopped += 1
    db.session.commit()
    if provider == "aliyun":
        return jsonify({"code": 0, "msg": "成功", "opted_out": stopped})
    return jsonify({"result": 0, "errmsg": "OK", "opted_out": stopped})
