"""Case model and categories."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime
from app.extensions import db

URGENCY_NORMAL = "normal"
URGENCY_URGENT = "urgent"
URGENCIES = (URGENCY_NORMAL, URGENCY_URGENT)


class Category(db.Model):
    """A kind of matter (water leak, lift fault, …): names its workflow and default urgency."""

    __tablename__ = "category"
    __table_args__ = (
        CheckConstraint("default_urgency IN ('normal', 'urgent')", name="urgency_known"),
        CheckConstraint("workflow IN ('standard', 'onsite', 'predeliberation')", name="workflow_known"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    default_urgency: Mapped[str] = mapped_column(String(16), default=URGENCY_NORMAL)
    workflow: Mapped[str] = mapped_column(String(32), default="standard")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    sort_order: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    def name_for(self, locale: str | None) -> str:
        return self.name_en if (locale or "").startswith("en") else self.name_zh

    @property
    def name(self) -> str:
        from flask_babel import get_locale

        locale = get_locale()
        return self.name_for(str(locale) if locale else None)

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"
