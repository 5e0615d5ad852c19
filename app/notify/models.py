"""Inbox notifications and the outbox of messages to send through outbound channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime
from app.extensions import db


class Notification(db.Model):
    """One message in a user's in-app inbox."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_user_created", "user_id", "created_at"),
        Index(
            "ix_notification_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case = relationship("Case")


#: the resident messages that count towards a number's daily quota (the partial index's condition, word for word in
#: the query, so the planner can use it for any parameters)
RESIDENT_COUNTED = "audience = 'resident' AND status IN ('pending', 'sent')"


class OutboundMessage(db.Model):
    """A message to deliver through an outbound channel; retried until sent or given up.

    Staff messages copy an inbox notification (``notification_id``); messages to residents (SMS) and to a
    community's group robot have no inbox row and are rendered from ``kind`` and ``params`` when sent.
    ``skipped`` messages were never sent on purpose (opt-out, quota) and say why in ``last_error``.
    """

    __tablename__ = "outbound_message"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status_known"),
        Index("ix_outbound_message_recipient_created", "recipient", "created_at"),
        Index("ix_outbound_message_audience_created", "audience", "created_at"),
        # a number's resident messages of the day that count towards its quota: at most the quota per number
        # and day, however many were skipped (app.notify.resident._sent_today)
        Index(
            "ix_outbound_message_resident_counted",
            "recipient",
            "created_at",
            postgresql_where=text(RESIDENT_COUNTED),
            sqlite_where=text(RESIDENT_COUNTED),
        ),
        Index("ix_outbound_message_case_kind", "case_id", "kind"),
        Index(
            "ix_outbound_message_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    #: staff (a user's copy of an inbox notification), resident (SMS) or group (a community's robot)
    audience: Mapped[str] = mapped_column(String(16), default="staff", server_default="staff")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    kind: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recipient: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    notification = relationship("Notification")


class SmsOptOut(db.Model):
    """A resident's mobile number that must not receive messages (replied "TD", or asked at the window)."""

    __tablename__ = "sms_opt_out"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ChannelPreference(db.Model):
    """The outbound channels a user wants (a comma-separated subset of the enabled ones; none: inbox only)."""

    __tablename__ = "channel_preference"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    channels: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
