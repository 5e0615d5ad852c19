"""How the 12345 platform's categories map onto ours (administrator-editable)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.cases.models import Category
from app.core.types import UTCDateTime
from app.extensions import db


class HotlineCategoryMap(db.Model):
    """One 12345 category (a level name such as ``电梯故障``, or a path ``城乡建设/物业管理/电梯故障``) → our category.

    The most specific match wins: the full path, then the third, second and first level alone.
    """

    __tablename__ = "hotline_category_map"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="CASCADE"), index=True)
    urgency: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    category: Mapped[Category] = relationship()

    def __str__(self) -> str:
        return self.source
