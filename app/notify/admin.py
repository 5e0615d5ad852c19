"""Administrators see what went out, what failed and why, and which numbers opted out."""

from __future__ import annotations

from flask import flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.admin import SecureModelView
from app.core.timeutil import utcnow
from app.extensions import db
from app.notify.models import OutboundMessage, SmsOptOut

MESSAGES = _l("Messages")
STATUS_LABELS = {
    "pending": _l("Waiting"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "skipped": _l("Not sent"),
}

AUDIENCE_LABELS = {"staff": _l("Staff"), "resident": _l("Resident"), "group": _l("Group robot")}
CHANNEL_LABELS = {
    "log": _l("Log (no delivery)"),
    "smtp": _l("E-mail"),
    "sms": _l("SMS"),
    "wecom": _l("WeCom"),
    "dingtalk": _l("DingTalk"),
    "feishu": _l("Feishu"),
}
KIND_LABELS = {
    "receipt": _l("Receipt"),
    "work_done": _l("Work done: please confirm"),
    "signoff_reminder": _l("Sign-off reminder"),
    "urgent": _l("Urgent case"),
    "assigned": _l("Assigned"),
    "new_work": _l("New work"),
    "returned": _l("Returned"),
    "sent_back": _l("Sent back by the resident"),
    "reopened": _l("Reopened"),
    "declined": _l("Declined by the party branch"),
    "urge": _l("Urged"),
    "extension_request": _l("Extension requested"),
    "extension_decision": _l("Extension decided"),
    "case_overdue": _l("Whole case overdue"),
    "shelve_review": _l("Shelved case to review"),
    "escalation_1": _l("Warning: near the deadline"),
    "escalation_2": _l("Yellow card: overdue"),
    "escalation_3": _l("Red card: long overdue"),
}


def _label(labels, value) -> str:
    return str(labels.get(value, value)) if value else ""


class OutboundMessageView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
    column_list = (
        "created_at",
        "status",
        "audience",
        "channel",
        "kind",
        "recipient",
        "attempts",
        "last_error",
        "sent_at",
    )
    column_labels = {
        "created_at": _l("Created"),
        "status": _l("Status"),
        "audience": _l("To"),
        "channel": _l("Channel"),
        "kind": _l("Kind"),
        "recipient": _l("Recipient"),
        "attempts": _l("Attempts"),
        "last_error": _l("Last error"),
        "sent_at": _l("Sent"),
    }
    column_filters = ("status", "channel", "audience", "kind")
    column_searchable_list = ("recipient",)
    column_default_sort = ("id", True)
    column_formatters = {
        "status": lambda v, c, m, p: STATUS_LABELS.get(m.status, m.status),
        "audience": lambda v, c, m, p: _label(AUDIENCE_LABELS, m.audience),
        "channel": lambda v, c, m, p: _label(CHANNEL_LABELS, m.channel),
        "kind": lambda v, c, m, p: _label(KIND_LABELS, m.kind),
    }

    @action("retry", _l("Retry"), _l("Send the selected failed messages again?"))
    def action_retry(self, ids):
        numbers = [int(i) for i in ids if str(i).isdigit()]
        rows = db.session.scalars(
            select(OutboundMessage).where(OutboundMessage.id.in_(numbers), OutboundMessage.status == "failed")
        ).all()
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        db.session.commit()
        flash(_("%(count)d messages will be sent again.", count=len(rows)), "success")


class OptOutView(SecureModelView):
    can_edit = False
    column_list = ("phone", "source", "note", "created_at")
    column_labels = {"phone": _l("Mobile"), "source": _l("Source"), "note": _l("Note"), "created_at": _l("Created")}
    column_searchable_list = ("phone",)
    column_default_sort = ("created_at", True)
    form_columns = ("phone", "note")

    def on_model_change(self, form, model, is_created):
        from wtforms.validators import ValidationError

        from app.notify.resident import normalize_phone

        phone = normalize_phone(model.phone)
        if phone is None:
            raise ValidationError(_("%(phone)s is not a mobile number.", phone=model.phone))
        model.phone, model.source = phone, "admin"


def register(admin) -> None:
    admin.add_view(OutboundMessageView(OutboundMessage, db, name=_l("Outbound messages"), category=MESSAGES))
    admin.add_view(OptOutView(SmsOptOut, db, name=_l("SMS opt-outs"), category=MESSAGES))
