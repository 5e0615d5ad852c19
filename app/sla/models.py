"""Time-limit settings (policies, business hours, holiday overrides, confirmed years) and extension requests."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime
from app.extensions import db

#: the pseudo-state of the whole-case limit
WHOLE_CASE = "case"


class TimeLimitPolicy(db.Model):
    """How long a (state, urgency) step may take; state ``case`` is the whole-case limit."""

    __tablename__ = "time_limit_policy"
    __table_args__ = (
        UniqueConstraint("state", "urgency"),
        CheckConstraint("unit IN ('working_days', 'working_minutes', 'calendar_minutes')", name="unit_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def limit(self):
        from app.sla.calendar import Limit

        return Limit(self.amount, self.unit)

    def __str__(self) -> str:
        return f"{self.state}/{self.urgency}: {self.limit.describe()}"


class BusinessHours(db.Model):
    """The business periods of a working day (one row)."""

    __tablename__ = "business_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    periods: Mapped[str] = mapped_column(String(200), default="08:30-12:00, 14:00-17:30")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HolidayOverride(db.Model):
    """A local decision that wins over the national schedule: a holiday, or an extra working day."""

    __tablename__ = "holiday_override"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    is_working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    def __str__(self) -> str:
        return f"{self.day.isoformat()} {'working' if self.is_working else 'holiday'}"


class CalendarYear(db.Model):
    """A year whose official schedule an administrator has entered as overrides (so: no warning)."""

    __tablename__ = "calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    note: Mapped[str | None] = mapped_column(String(200))
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ExtensionRequest(db.Model):
    """延期申请: asked by the current handler before the deadline, decided by a supervisor."""

    __tablename__ = "extension_request"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'denied', 'withdrawn')", name="status_known"),
        Index("ix_extension_request_case_status", "case_id", "status"),
        Index(
            "ix_extension_request_pending",
            "requested_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(32))  # the step the extension is for
    current_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    proposed_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="RESTRICT"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
