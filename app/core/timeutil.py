"""Time handling: everything is stored in UTC and shown in the application's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_TZ = "Asia/Shanghai"


def app_tz() -> ZoneInfo:
    """The zone people read times in (``APP_TIMEZONE``, default Asia/Shanghai)."""
    name = current_app.config.get("APP_TIMEZONE", DEFAULT_TZ) if has_app_context() else DEFAULT_TZ
    return ZoneInfo(name)


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC. Raises ``ValueError`` for a naive one."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a time zone (e.g. +08:00)")
    return value.astimezone(UTC)


def to_local(value: datetime | None) -> datetime | None:
    """Convert a stored (UTC) datetime to the application's zone for display."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(app_tz())


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; a value without offset is read in the application's zone.

    Raises ``ValueError`` with a readable message when the text is not a date-time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not an ISO-8601 date-time such as 2026-09-30T10:00:00+08:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=app_tz())
    return value
