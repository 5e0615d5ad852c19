"""The administrators' page of the audit log: read-only, filters, CSV export."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask_admin.contrib.sqla.filters import DateGreaterFilter, DateSmallerFilter
from flask_babel import lazy_gettext as _l

from app.admin import SecureModelView
from app.audit.models import AuditEvent
from app.audit.services import ACTION_LABELS
from app.extensions import db


def _local_midnight_utc(text: str, days: int = 0) -> datetime:
    """The UTC instant of local midnight of a ``YYYY-MM-DD`` day (plus ``days``). Raises ``ValueError``."""
    from app.core.timeutil import app_tz, as_utc

    day = datetime.strptime(text.strip(), "%Y-%m-%d").date() + timedelta(days=days)
    if not 1900 <= day.year <= 9998:
        raise ValueError("day out of range")
    return as_utc(datetime.combine(day, time(0), tzinfo=app_tz()))


class OnOrAfterDay(DateGreaterFilter):
    """Lines written on or after a local day."""

    def clean(self, value):
        return _local_midnight_utc(value)

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) >= value)

    def operation(self):
        return _l("on or after")


class OnOrBeforeDay(DateSmallerFilter):
    """Lines written on or before a local day."""

    def clean(self, value):
        return _local_midnight_utc(value, days=1)

    def apply(self, query, value, alias=None):
        return query.filter(self.get_column(alias) < value)

    def operation(self):
        return _l("on or before")


class AuditView(SecureModelView):
    """Append-only: nothing can be created, edited or deleted here (the database refuses it too)."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    can_export = True
    page_size = 100
    column_list = ("created_at", "actor_name", "action", "target_type", "target_id", "target_label", "ip", "details")
    column_labels = {
        "created_at": _l("When"),
        "actor_name": _l("Who"),
        "action": _l("Action"),
        "target_type": _l("Object type"),
        "target_id": _l("Object"),
        "target_label": _l("Object name"),
        "ip": _l("Address"),
        "details": _l("Details"),
    }
    column_filters = (
        OnOrAfterDay(AuditEvent.created_at, _l("When")),
        OnOrBeforeDay(AuditEvent.created_at, _l("When")),
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "ip",
    )
    column_searchable_list = ("actor_name", "action", "target_id", "target_label", "ip")
    column_default_sort = ("id", True)
    column_formatters = {
        "created_at": lambda v, c, m, p: _local(m.created_at),
        "action": lambda v, c, m, p: (
            f"{ACTION_LABELS[m.action]} ({m.action})" if m.action in ACTION_LABELS else m.action
        ),
    }
    column_formatters_export = {"created_at": lambda v, c, m, p: _local(m.created_at)}


def _local(value) -> str:
    from app.core.timeutil import to_local

    local = to_local(value)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""


def register(admin) -> None:
    admin.add_view(AuditView(AuditEvent, db, name=_l("Audit log"), endpoint="auditevent", category=_l("Users")))
