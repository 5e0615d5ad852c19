"""A year's holiday schedule entered late re-times the open cases it affects (and nothing else)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.cases import services
from app.core.errors import ValidationError
from app.extensions import db
from app.sla import services as sla
from app.sla.models import CalendarYear, HolidayOverride
from app.sla.retime import import_schedule, parse_schedule
from tests.conftest import csrf_token
from tests.factories import load, make_case, user

TZ = ZoneInfo("Asia/Shanghai")
WED = datetime(2027, 2, 3, 10, 0, tzinfo=TZ)  # Wednesday before the 2027 Spring Festival

# a 2027 Spring Festival: Fri 5 – Fri 12 February off, Saturday 13 February a make-up working day
SCHEDULE = {
    "year": 2027,
    "papers": [],
    "days": [{"name": "春节", "date": f"2027-02-{d:02d}", "isOffDay": True} for d in range(5, 13)]
    + [{"name": "春节", "date": "2027-02-13", "isOffDay": False}],
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def schedule_bytes() -> bytes:
    return json.dumps(SCHEDULE, ensure_ascii=False).encode()


def moved_events(case) -> list:
    return [e for e in services.events_of(case) if e.kind == "deadline_moved"]


def escalation_levels(case) -> list:
    return [
        e.payload.get("level") for e in services.events_of(case) if e.kind == "escalation" and e.payload.get("level")
    ]


def test_import_moves_open_cases_across_the_holiday_and_leaves_paused_and_closed_alone(ctx):
    running = make_case("firm_processing", now=WED)
    paused = make_case("on_hold", now=WED)
    closed = make_case("closed", now=WED)
    urgent = make_case("firm_processing", urgency="urgent", now=WED)
    fresh = make_case("grid_assigned", now=at("2027-02-04T16:30"))
    case = load(running)
    # on the weekday fallback: 3 working days after Wednesday = Monday 8 February, whole case Wed 17th
    assert case.due_at == at("2027-02-08T17:30") and case.resolve_by == at("2027-02-17T17:30")
    assert load(fresh).due_at == at("2027-02-05T09:30")  # 2 working hours: 1 h Thursday, 1 h Friday
    before = {
        ref: (load(ref).due_at, load(ref).resolve_by, load(ref).paused_step_minutes) for ref in (paused, closed, urgent)
    }

    result = import_schedule(schedule_bytes(), "2027.json", user("admin"), now=at("2027-02-03T12:00"))
    db.session.commit()

    assert (result.year, result.added, result.changed, result.unchanged, result.confirmed) == (2027, 9, 0, 0, True)
    assert sorted(result.retimed.moved) == sorted([running, fresh])
    case = load(running)
    # Thursday 4th, Saturday 13th (make-up), Monday 15th
    assert case.due_at == at("2027-02-15T17:30")
    assert case.resolve_by == at("2027-02-24T17:30")
    assert case.warn_at < case.due_at < case.red_at and case.next_check_at == case.warn_at
    assert load(fresh).due_at == at("2027-02-13T09:30")
    for ref, values in before.items():
        assert (load(ref).due_at, load(ref).resolve_by, load(ref).paused_step_minutes) == values
        assert moved_events(load(ref)) == []
    (event,) = moved_events(case)
    assert datetime.fromisoformat(event.payload["previous_due_at"]) == at("2027-02-08T17:30")
    assert datetime.fromisoformat(event.payload["due_at"]) == at("2027-02-15T17:30")
    assert "2027" in event.note
    assert db.session.get(CalendarYear, 2027) is not None
    assert sla.missing_schedule_years(at("2026-12-20T10:00").date()) == []

    # importing the same file again changes nothing and moves nothing
    again = import_schedule(schedule_bytes(), "2027.json", user("admin"))
    assert (again.added, again.changed, again.unchanged, again.retimed.moved) == (0, 0, 9, [])
    assert len(moved_events(load(running))) == 1


def test_the_sweep_after_the_change_escalates_nothing_twice(ctx):
    ref = make_case("firm_processing", now=WED)
    result = sla.run_sweep(at("2027-02-08T11:00"))  # past the old 80 % mark: warned once
    assert result.warned == 1 and load(ref).escalation_level == 1
    import_schedule(schedule_bytes(), "2027.json", user("admin"), now=at("2027-02-08T11:00"))
    db.session.commit()
    case = load(ref)
    assert case.escalation_level == 1 and case.due_at == at("2027-02-15T17:30")
    assert case.next_check_at == case.due_at
    # the old deadline passes: no yellow card, no second warning
    result = sla.run_sweep(at("2027-02-09T10:00"))
    assert (result.warned, result.yellow, result.red) == (0, 0, 0)
    assert escalation_levels(load(ref)) == [1]
    # the new deadline passes: the yellow card comes once
    assert sla.run_sweep(at("2027-02-15T18:00")).yellow == 1
    assert sla.run_sweep(at("2027-02-15T18:05")).yellow == 0
    assert escalation_levels(load(ref)) == [1, 2]


def test_csv_schedule_and_past_days_that_became_holidays(ctx):
    # started Monday 1 Feb with 3 working days: due Thursday 4th; on Wednesday the city declares
    # Tuesday 2nd (already used) a local holiday — the day used is given back
    ref = make_case("firm_processing", now=at("2027-02-01T10:00"))
    assert load(ref).due_at == at("2027-02-04T17:30")
    data = "date,type,name\n2027-02-02,off,地方假日\n2027-10-09,work,国庆调休\n".encode("gb18030")
    result = import_schedule(data, "2027.csv", user("admin"), now=at("2027-02-03T10:00"))
    assert (result.year, result.added) == (2027, 2)
    assert load(ref).due_at == at("2027-02-05T17:30")
    assert db.session.scalar(select(HolidayOverride.is_working).where(HolidayOverride.note == "国庆调休")) is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no days"),
        (b"{not json", "not valid JSON"),
        (b'{"year": 2027, "days": [{"date": "2027-02-30", "isOffDay": true}]}', "not a date"),
        (b'{"year": 2027, "days": [{"date": "2027-02-03"}]}', "isOffDay"),
        (b'{"year": 2028, "days": [{"date": "2027-02-03", "isOffDay": true}]}', "2028"),
        (b"2027-02-03,maybe,x\n", "off or work"),
        (b"2027-02-03,off,x\n2028-01-01,off,y\n", "one year"),
        (b"2027-02-03,off,x\n2027-02-03,work,y\n", "both"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(ctx, data, message):
    with pytest.raises(ValidationError) as error:
        parse_schedule(data, "x")
    assert message in error.value.message


def test_cli_import_confirms_the_year_and_silences_the_warning(app, runner, tmp_path):
    path = tmp_path / "2027.json"
    path.write_bytes(schedule_bytes())
    warned = runner.invoke(args=["calendar", "due", "2026-12-30T10:00:00+08:00", "3wd"])
    assert "no published holiday schedule for 2027" in warned.output
    result = runner.invoke(args=["calendar", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "9 days added" in result.output and "2027 schedule is now confirmed" in result.output
    quiet = runner.invoke(args=["calendar", "due", "2027-02-04T10:00:00+08:00", "1wd"])
    assert quiet.output.startswith("2027-02-13T17:30:00+08:00") and "warning" not in quiet.output
    bad = tmp_path / "bad.csv"
    bad.write_text("2027-02-03,maybe,x\n")
    refused = runner.invoke(args=["calendar", "import", str(bad)])
    assert refused.exit_code == 1 and "off or work" in refused.output


def test_admin_override_and_business_hours_changes_retime_and_log_why(app, client, auth):
    ref = make_case("firm_processing", now=WED)
    with app.app_context():
        assert load(ref).due_at == at("2027-02-08T17:30")
    auth.login("admin")
    url = "/admin/holidayoverride/new/"
    response = client.post(url, data={"csrf_token": csrf_token(client, url), "day": "2027-02-05", "note": "除夕"})
    assert response.status_code == 302
    with app.app_context():
        case = load(ref)
        assert case.due_at == at("2027-02-09T17:30")
        (event,) = moved_events(case)
        assert event.actor_name and event.note
        override_id = db.session.scalar(
            select(HolidayOverride.id).where(HolidayOverride.day == at("2027-02-05T00:00").date())
        )
    url = "/admin/holidayoverride/delete/"
    response = client.post(url, data={"csrf_token": csrf_token(client, "/admin/holidayoverride/"), "id": override_id})
    assert response.status_code == 302
    with app.app_context():
        assert load(ref).due_at == at("2027-02-08T17:30")
        assert db.session.get(HolidayOverride, override_id) is None
        assert len(moved_events(load(ref))) == 2
    url = "/admin/businesshours/edit/?id=1"
    response = client.post(url, data={"csrf_token": csrf_token(client, url), "periods": "09:00-12:00, 13:00-17:00"})
    assert response.status_code == 302
    with app.app_context():
        assert load(ref).due_at == at("2027-02-08T17:00")
        assert len(moved_events(load(ref))) == 3
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert body.count('data-kind="deadline_moved"') == 3


def test_a_reopened_case_is_measured_from_its_reopening(ctx):
    # closed on Monday 1 February, reopened on Wednesday: its whole-case clock restarted then, so a
    # holiday declared for Tuesday (while it was closed) does not move it
    ref = make_case("closed", now=at("2027-02-01T10:00"))
    case = load(ref)
    services.fire(case, "reopen", user("supervisor1"), inputs={"reason": "居民反映问题复发"}, now=WED)
    db.session.commit()
    case = load(ref)
    assert case.resolve_by == at("2027-02-17T17:30") and case.due_at == at("2027-02-04T17:30")
    data = "2027-02-02,off,地方假日\n".encode()
    result = import_schedule(data, "local.csv", user("admin"), now=WED)
    assert result.retimed.moved == [] and load(ref).resolve_by == at("2027-02-17T17:30")
