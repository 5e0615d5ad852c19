"""Counting failed attempts per key (an IP address, a reference number) to slow down guessing.

One row per key and window, updated with an atomic upsert, so it works across web processes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Integer, String, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Mapped, mapped_column

from app.core.timeutil import utcnow
from app.core.types import UTCDateTime
from app.extensions import db


class Throttle(db.Model):
    """Failures counted for ``key`` since ``window_start``."""

    __tablename__ = "throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)


def blocked(key: str, limit: int, window: timedelta, now: datetime | None = None) -> bool:
    """Whether ``key`` has had ``limit`` failures within the current window."""
    now = now or utcnow()
    row = db.session.scalar(select(Throttle).where(Throttle.key == key))
    return row is not None and row.window_start > now - window and row.count >= limit


def record_failure(key: str, window: timedelta, now: datetime | None = None) -> int:
    """Count one failure for ``key`` (a new window starts when the old one has passed); returns the count."""
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    expired = Throttle.window_start <= now - window
    statement = insert(Throttle).values(key=key[:120], window_start=now, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[Throttle.key],
        set_={
            "count": sql_case((expired, 1), else_=Throttle.count + 1),
            "window_start": sql_case((expired, now), else_=Throttle.window_start),
        },
    ).returning(Throttle.count)
    return db.session.execute(statement).scalar_one()
