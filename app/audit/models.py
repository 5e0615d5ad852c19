"""The audit log table. Rows are only ever inserted (ORM hooks and database triggers refuse the rest)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime
from app.extensions import db


class AuditEvent(db.Model):
    """One security- or privacy-relevant act: a sign-in, a password reset, a phone reveal, an export…"""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_action_created", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    #: kept as text so the line still reads right after the account is renamed or removed
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_label: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    actor = relationship("User")

    def __repr__(self) -> str:
        return f"<AuditEvent {self.action} {self.target_type}:{self.target_id}>"


@event.listens_for(AuditEvent, "before_update")
def _audit_is_immutable(_mapper, _connection, target):
    raise RuntimeError("audit events are immutable: add a new event instead")


@event.listens_for(AuditEvent, "before_delete")
def _audit_is_never_deleted(_mapper, _connection, target):
    raise RuntimeError("audit events are never deleted")
