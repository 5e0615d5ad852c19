"""The working calendar: business hours, China's holidays and make-up working days, local overrides.

Which days are working days, in order of precedence:

1. an administrator's override for that date (a local holiday, or an extra working day);
2. the State Council's schedule as published in ``chinesecalendar`` for the years it covers — this
   counts make-up working days (调休, e.g. Saturday 2026-10-10);
3. for a year with no published schedule (not in the package and not confirmed by an administrator):
   Monday–Friday, and the year is reported as missing so the CLI and the UI can warn.

Limits:

- ``N working days`` — "自次日起N个工作日": the end of business on the Nth working day after the start day;
- ``N working hours`` — only business minutes count (outside business hours the clock stands still);
- calendar hours/minutes — plain elapsed time, holidays ignored (urgent matters).

This module has no database access; :func:`app.sla.services.load_calendar` builds a calendar from the
settings and overrides tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar

WORKING_DAYS = "working_days"
WORKING_MINUTES = "working_minutes"
CALENDAR_MINUTES = "calendar_minutes"
UNITS = (WORKING_DAYS, WORKING_MINUTES, CALENDAR_MINUTES)

DEFAULT_PERIODS = ((time(8, 30), time(12, 0)), (time(14, 0), time(17, 30)))
DEFAULT_WEEKDAYS = frozenset({0, 1, 2, 3, 4})
LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|wh|wm|h|m|d)\s*$", re.IGNORECASE)
#: how far any computation may walk (guards against a calendar with no working time at all)
MAX_DAYS_SEARCHED = 3 * 366


class CalendarError(ValueError):
    """A limit or business-hours text that cannot be understood."""


@dataclass(frozen=True)
class Limit:
    """A time limit: ``amount`` of ``unit`` (working days, working minutes or calendar minutes)."""

    amount: int
    unit: str

    def __post_init__(self):
        if self.unit not in UNITS:
            raise CalendarError(f"unknown unit {self.unit!r}")
        if self.amount <= 0:
            raise CalendarError("a time limit must be positive")

    @property
    def is_working(self) -> bool:
        return self.unit != CALENDAR_MINUTES

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read ``3wd`` (working days), ``2wh`` (working hours), ``90wm`` (working minutes),
        ``24h`` (calendar hours), ``30m`` (calendar minutes) or ``2d`` (calendar days).

        Raises :class:`CalendarError` for anything else.
        """
        match = LIMIT_RE.match(text or "")
        if not match:
            raise CalendarError(f"{text!r} is not a time limit such as 3wd, 2wh, 24h or 30m")
        number, suffix = float(match.group(1)), match.group(2).lower()
        if suffix == "wd":
            if number != int(number):
                raise CalendarError("working days must be a whole number")
            return cls(int(number), WORKING_DAYS)
        minutes = {"wh": 60, "wm": 1, "h": 60, "m": 1, "d": 1440}[suffix] * number
        if minutes != int(minutes):
            raise CalendarError(f"{text!r} is not a whole number of minutes")
        return cls(int(minutes), WORKING_MINUTES if suffix in ("wh", "wm") else CALENDAR_MINUTES)

    def describe(self) -> str:
        """Short form, e.g. ``3wd``, ``2wh``, ``90wm``, ``24h``, ``30m``."""
        if self.unit == WORKING_DAYS:
            return f"{self.amount}wd"
        hours, rest = divmod(self.amount, 60)
        if self.unit == WORKING_MINUTES:
            return f"{hours}wh" if not rest else f"{self.amount}wm"
        return f"{hours}h" if not rest else f"{self.amount}m"


def parse_periods(text: str) -> tuple[tuple[time, time], ...]:
    """Read business hours like ``08:30-12:00, 14:00-17:30``. Raises :class:`CalendarError`."""
    periods = []
    for part in re.split(r"[,，;；\s]+", (text or "").strip()):
        if not part:
            continue
        match = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", part)
        if not match:
            raise CalendarError(f"{part!r} is not a period such as 08:30-12:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if not (0 <= h1 <= 23 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60) or (h2 == 24 and m2):
            raise CalendarError(f"{part!r} is not a valid time of day")
        start, end = time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))
        if end <= start:
            raise CalendarError(f"{part!r} ends before it starts")
        periods.append((start, end))
    if not periods:
        raise CalendarError("give at least one business period, e.g. 08:30-12:00")
    periods.sort()
    for (_s1, e1), (s2, _e2) in zip(periods, periods[1:], strict=False):
        if s2 < e1:
            raise CalendarError("business periods overlap")
    return tuple(periods)


def format_periods(periods: Iterable[tuple[time, time]]) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in periods)


@dataclass
class WorkCalendar:
    """Answers "is this a working day", counts business minutes and computes deadlines."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    #: date → True (working) / False (not working); wins over everything
    overrides: Mapping[date, bool] = field(default_factory=dict)
    #: years whose schedule an administrator entered as overrides (no warning for them)
    confirmed_years: frozenset[int] = frozenset()
    fallback_weekdays: frozenset[int] = DEFAULT_WEEKDAYS
    #: years looked at that had no published schedule (filled while computing)
    missing_years: set[int] = field(default_factory=set)
    #: answers of :meth:`is_working_day` so far, day → (working, from the weekday fallback of a year without a
    #: published schedule) — the package scans its whole table on every call, and an intake or a queue page
    #: asks about the same few days dozens of times. Not an init field: a copy made with ``dataclasses.replace``
    #: always starts with its own; only :meth:`sharing_answers` shares them.
    _known_days: dict[date, tuple[bool, bool]] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -------------------------------------------------------------------------------- working days

    def year_published(self, year: int) -> bool:
        """Whether ``chinesecalendar`` has the official schedule for ``year``."""
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def year_known(self, year: int) -> bool:
        """Published in the package, or confirmed by an administrator."""
        return year in self.confirmed_years or self.year_published(year)

    def sharing_answers(self) -> WorkCalendar:
        """A copy with a fresh ``missing_years`` that shares this calendar's answers of :meth:`is_working_day`
        (a per-request copy of the per-process calendar keeps what earlier requests worked out).

        The answers hold only while the days' rules do: the copy's overrides are read-only, and a calendar with
        other rules is made with ``dataclasses.replace`` (which starts its own answers), never by assigning to
        the fields of a shared copy."""
        overrides = self.overrides if isinstance(self.overrides, MappingProxyType) else MappingProxyType(self.overrides)
        copy = replace(self, overrides=overrides, missing_years=set())
        copy._known_days = self._known_days
        return copy

    def is_working_day(self, day: date) -> bool:
        known = self._known_days.get(day)
        if known is None:
            known = self._known_days[day] = self._is_working_day(day)
        working, guessed = known
        if guessed:
            self.missing_years.add(day.year)
        return working

    def _is_working_day(self, day: date) -> tuple[bool, bool]:
        if day in self.overrides:
            return self.overrides[day], False
        try:
            return chinese_calendar.is_workday(day), False
        except NotImplementedError:
            return day.weekday() in self.fallback_weekdays, day.year not in self.confirmed_years

    def working_days(self, start: date, end: date) -> list[date]:
        """Working days from ``start`` to ``end`` inclusive."""
        days, day = [], start
        while day <= end:
            if self.is_working_day(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def non_standard_days(self, year: int) -> tuple[list[date], list[date]]:
        """(weekdays that are not working, weekend days that are working) in ``year``."""
        off, on = [], []
        day = date(year, 1, 1)
        while day.year == year:
            working = self.is_working_day(day)
            if day.weekday() < 5 and not working:
                off.append(day)
            elif day.weekday() >= 5 and working:
                on.append(day)
            day += timedelta(days=1)
        return off, on

    # ------------------------------------------------------------------------------ business time

    def _local(self, instant: datetime) -> datetime:
        if instant.tzinfo is None:
            raise CalendarError("naive datetime: give a time zone")
        return instant.astimezone(self.tz)

    def _windows(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [(datetime.combine(day, a, self.tz), datetime.combine(day, b, self.tz)) for a, b in self.periods]

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` business minutes after ``start`` (before it, if negative).

        Adding zero moves a time outside business hours to the next business moment.
        """
        local = self._local(start)
        remaining = timedelta(minutes=abs(minutes))
        if minutes >= 0:
            day = local.date()
            for _ in range(MAX_DAYS_SEARCHED):
                for open_at, close_at in self._windows(day):
                    if close_at <= local:
                        continue
                    begin = max(open_at, local)
                    available = close_at - begin
                    if remaining < available or (remaining == available and remaining > timedelta(0)):
                        return (begin + remaining).astimezone(start.tzinfo)
                    if remaining == timedelta(0):
                        return begin.astimezone(start.tzinfo)
                    remaining -= available
                day += timedelta(days=1)
        else:
            day = local.date()
            for _ in range(MAX_DAYS_SEARCHED):
                for open_at, close_at in reversed(self._windows(day)):
                    if open_at >= local:
                        continue
                    end = min(close_at, local)
                    available = end - open_at
                    if remaining <= available:
                        return (end - remaining).astimezone(start.tzinfo)
                    remaining -= available
                day -= timedelta(days=1)
        raise CalendarError("no working time found within three years: check business hours and overrides")

    def business_minutes_between(self, start: datetime, end: datetime) -> float:
        """Business minutes from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        if end < start:
            return -self.business_minutes_between(end, start)
        a, b = self._local(start), self._local(end)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            for open_at, close_at in self._windows(day):
                lo, hi = max(open_at, a), min(close_at, b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds() / 60

    def end_of_business(self, day: date) -> datetime:
        return datetime.combine(day, self.periods[-1][1], self.tz)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """End of business on the ``days``-th working day after the start day (自次日起N个工作日)."""
        local = self._local(start)
        day, found = local.date(), 0
        for _ in range(MAX_DAYS_SEARCHED):
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
                if found == days:
                    return self.end_of_business(day).astimezone(start.tzinfo)
        raise CalendarError("no working days found within three years: check the overrides")

    # ----------------------------------------------------------------------------------- limits

    def deadline(self, start: datetime, limit: Limit) -> datetime:
        """When ``limit`` started at ``start`` runs out."""
        if limit.unit == WORKING_DAYS:
            return self.add_working_days(start, limit.amount)
        if limit.unit == WORKING_MINUTES:
            return self.add_business_minutes(start, limit.amount)
        return start + timedelta(minutes=limit.amount)

    def span(self, start: datetime, end: datetime, working: bool) -> float:
        """Minutes from ``start`` to ``end``: business minutes for working limits, else elapsed."""
        if working:
            return self.business_minutes_between(start, end)
        return (end - start).total_seconds() / 60

    def shift(self, instant: datetime, minutes: float, working: bool) -> datetime:
        """``instant`` moved by ``minutes`` (business minutes for working limits)."""
        if working:
            return self.add_business_minutes(instant, minutes)
        return instant + timedelta(minutes=minutes)
