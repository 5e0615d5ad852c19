"""Deadlines on real Chinese calendars: holidays, make-up working days, business hours, overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.sla.calendar import (
    CALENDAR_MINUTES,
    WORKING_DAYS,
    WORKING_MINUTES,
    CalendarError,
    Limit,
    WorkCalendar,
    parse_periods,
)

TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def cal():
    return WorkCalendar(tz=TZ)


@pytest.mark.parametrize(
    ("start", "limit", "due"),
    [
        # National Day 2026: Oct 1–7 off, Saturday Oct 10 is a make-up working day (CONTRACT example)
        ("2026-09-30T10:00", "3wd", "2026-10-10T17:30"),
        ("2026-09-30T16:00", "2wh", "2026-10-08T09:00"),
        # Spring Festival 2026: Feb 15–23 off, Saturdays Feb 14 and Feb 28 are working days
        ("2026-02-13T10:00", "1wd", "2026-02-14T17:30"),
        ("2026-02-14T10:00", "1wd", "2026-02-24T17:30"),
        ("2026-02-13T16:30", "2wh", "2026-02-14T09:30"),
        ("2026-02-27T10:00", "1wd", "2026-02-28T17:30"),
        # a start on a Sunday: the next working day is the first
        ("2026-11-29T10:00", "1wd", "2026-11-30T17:30"),
        ("2026-11-29T10:00", "2wh", "2026-11-30T10:30"),
        # a start after 17:30 counts from the next morning
        ("2026-11-25T18:00", "1wd", "2026-11-26T17:30"),
        ("2026-11-25T18:00", "1wh", "2026-11-26T09:30"),
        ("2026-11-25T07:00", "1wh", "2026-11-25T09:30"),
        # lunch break does not count
        ("2026-11-25T11:30", "1wh", "2026-11-25T14:30"),
        ("2026-11-25T12:30", "30wm", "2026-11-25T14:30"),
        ("2026-11-25T11:00", "1wh", "2026-11-25T12:00"),
        # working hours spanning a weekend
        ("2026-11-27T16:00", "4wh", "2026-11-30T11:00"),
        ("2026-11-27T16:00", "2wh", "2026-11-30T09:00"),
        # calendar hours for urgent matters ignore holidays and nights
        ("2026-10-01T10:00", "24h", "2026-10-02T10:00"),
        ("2026-10-01T23:50", "30m", "2026-10-02T00:20"),
        ("2026-02-15T10:00", "2d", "2026-02-17T10:00"),
    ],
)
def test_deadlines(cal, start, limit, due):
    assert cal.deadline(at(start), Limit.parse(limit)) == at(due)
    assert cal.missing_years == set()


def test_working_days_are_counted_from_the_next_day(cal):
    # even a start at 08:00 on a working day does not count that day (自次日起)
    assert cal.deadline(at("2026-11-23T08:00"), Limit.parse("1wd")) == at("2026-11-24T17:30")
    assert cal.deadline(at("2026-11-23T08:00"), Limit.parse("10wd")) == at("2026-12-07T17:30")


def test_business_minutes_between_and_back(cal):
    start, end = at("2026-11-27T16:00"), at("2026-11-30T09:30")
    assert cal.business_minutes_between(start, end) == 150
    assert cal.business_minutes_between(end, start) == -150
    assert cal.add_business_minutes(end, -150) == start
    assert cal.add_business_minutes(at("2026-11-25T12:30"), 0) == at("2026-11-25T14:00")


def test_administrator_overrides_win(cal):
    cal.overrides = {date(2026, 11, 26): False, date(2026, 11, 28): True}
    # an extra local holiday on Thursday pushes the deadline to Friday
    assert cal.deadline(at("2026-11-25T10:00"), Limit.parse("1wd")) == at("2026-11-27T17:30")
    # an extra working Saturday counts
    assert cal.deadline(at("2026-11-27T10:00"), Limit.parse("1wd")) == at("2026-11-28T17:30")
    # an override can also cancel a national make-up day
    cal.overrides = {date(2026, 10, 10): False}
    assert cal.deadline(at("2026-09-30T10:00"), Limit.parse("3wd")) == at("2026-10-12T17:30")


def test_a_year_without_a_published_schedule_falls_back_to_weekdays_and_says_so(cal):
    assert not cal.year_published(2027) and cal.year_published(2026)
    due = cal.deadline(at("2026-12-30T10:00"), Limit.parse("3wd"))
    assert due == at("2027-01-04T17:30")  # Dec 31, Fri Jan 1 (counted: no schedule), Mon Jan 4
    assert cal.missing_years == {2027}
    confirmed = WorkCalendar(tz=TZ, confirmed_years=frozenset({2027}), overrides={date(2027, 1, 1): False})
    assert confirmed.deadline(at("2026-12-30T10:00"), Limit.parse("3wd")) == at("2027-01-05T17:30")
    assert confirmed.missing_years == set() and confirmed.year_known(2027)


def test_a_copy_sharing_answers_still_says_which_years_have_no_schedule(cal, monkeypatch):
    """Each request works on a copy of the per-process calendar that shares its answers about days: a day
    answered by an earlier copy is not looked up again, yet the year without a schedule is still reported."""
    first = cal.sharing_answers()
    assert first.deadline(at("2026-12-30T10:00"), Limit.parse("3wd")) == at("2027-01-04T17:30")
    assert first.missing_years == {2027} and cal.missing_years == set()
    second = cal.sharing_answers()
    assert second.missing_years == set()
    looked_up = []
    real = WorkCalendar._is_working_day
    monkeypatch.setattr(WorkCalendar, "_is_working_day", lambda self, day: looked_up.append(day) or real(self, day))
    assert second.deadline(at("2026-12-30T10:00"), Limit.parse("3wd")) == at("2027-01-04T17:30")
    assert looked_up == []  # every day answered from the shared answers
    assert second.missing_years == {2027}
    # a copy with other overrides does not share them: its own answers
    other = replace(cal, overrides={date(2026, 12, 31): False}, missing_years=set())
    assert other.deadline(at("2026-12-30T10:00"), Limit.parse("3wd")) == at("2027-01-05T17:30")


def test_other_business_hours(cal):
    cal.periods = parse_periods("09:00-17:00")
    assert cal.deadline(at("2026-11-25T16:00"), Limit.parse("2wh")) == at("2026-11-26T10:00")
    assert cal.deadline(at("2026-11-25T10:00"), Limit.parse("1wd")) == at("2026-11-26T17:00")


def test_calendar_show_lists_the_exceptions(cal):
    off, on = cal.non_standard_days(2026)
    assert date(2026, 10, 1) in off and date(2026, 2, 16) in off
    assert date(2026, 10, 10) in on and date(2026, 2, 14) in on and date(2026, 2, 28) in on
    assert all(d.weekday() < 5 for d in off) and all(d.weekday() >= 5 for d in on)


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("3wd", 3, WORKING_DAYS),
        ("2wh", 120, WORKING_MINUTES),
        ("90wm", 90, WORKING_MINUTES),
        ("24h", 1440, CALENDAR_MINUTES),
        ("30m", 30, CALENDAR_MINUTES),
        ("2d", 2880, CALENDAR_MINUTES),
        (" 1.5WH ", 90, WORKING_MINUTES),
    ],
)
def test_limit_parsing(text, amount, unit):
    limit = Limit.parse(text)
    assert (limit.amount, limit.unit) == (amount, unit)
    assert Limit.parse(limit.describe()) == limit


@pytest.mark.parametrize("text", ["", "3", "wd", "1.5wd", "0wd", "-2h", "3 weeks", "1.25m"])
def test_bad_limits_are_refused(text):
    with pytest.raises(CalendarError):
        Limit.parse(text)


@pytest.mark.parametrize("text", ["", "8:30", "12:00-08:30", "08:30-12:00,11:00-13:00", "25:00-26:00", "a-b"])
def test_bad_business_hours_are_refused(text):
    with pytest.raises(CalendarError):
        parse_periods(text)


def test_business_hours_parse():
    assert parse_periods("14:00-17:30，08:30-12:00") == ((time(8, 30), time(12)), (time(14), time(17, 30)))


def test_naive_datetimes_are_refused(cal):
    with pytest.raises(CalendarError):
        cal.deadline(datetime(2026, 11, 25, 10), Limit.parse("1wd"))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_calendar_due_prints_the_contract_example(runner):
    result = runner.invoke(args=["calendar", "due", "2026-09-30T10:00:00+08:00", "3wd"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "2026-10-10T17:30:00+08:00"


def test_cli_calendar_due_warns_on_stderr_for_a_missing_year(runner):
    result = runner.invoke(args=["calendar", "due", "2026-12-30T10:00:00+08:00", "3wd"])
    assert result.exit_code == 0
    assert result.stdout.strip() == "2027-01-04T17:30:00+08:00"
    assert "2027" in result.stderr and "warning" in result.stderr


def test_cli_calendar_due_rejects_bad_input(runner):
    assert runner.invoke(args=["calendar", "due", "yesterday", "3wd"]).exit_code == 2
    bad = runner.invoke(args=["calendar", "due", "2026-09-30T10:00:00+08:00", "3weeks"])
    assert bad.exit_code == 2 and "3wd" in bad.output


def test_cli_calendar_show(runner):
    result = runner.invoke(args=["calendar", "show", "2026"])
    assert result.exit_code == 0
    assert "2026-10-10" in result.stdout and "2026-10-01" in result.stdout
    missing = runner.invoke(args=["calendar", "show", "2027"])
    assert missing.exit_code == 0 and "2027" in missing.stderr
