"""Every figure of DESIGN §5 on hand-built cases, with the right answer worked out here.

November 2026 has no public holiday; working hours are 08:30–12:00 and 14:00–17:30 (420 minutes a
day). Tuesday 10 November 10:00 is the usual start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.cases import services
from app.cases.models import FollowUp
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.timeutil import app_tz
from app.extensions import db
from app.reports import indicators
from app.reports.followups import set_follow_up_validity
from app.reports.indicators import compute, compute_series, month_period, parse_period
from app.reports.models import ActionFact, StepFact
from app.sla.services import run_sweep
from tests.factories import load, make_case, user

TZ = app_tz()
NOV10 = datetime(2026, 11, 10, 10, 0, tzinfo=TZ)  # a Tuesday
NOV = month_period(2026, 11)
OCT = month_period(2026, 10)


def at(day: int, hour: int = 10, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def fire(ref, trigger, username, when, **inputs):
    case = load(ref)
    services.fire(case, trigger, user(username), inputs=inputs, now=when)
    db.session.commit()
    return load(ref)


def signoff(ref, when, resolved=True, satisfaction="satisfied", contacted=True, who="grid1"):
    return fire(ref, "signoff", who, when, contacted=contacted, resolved=resolved, satisfaction=satisfaction)


def total(period=NOV, username="admin", group="community", **kwargs):
    return compute(user(username), period, group, **kwargs).total


def by_code(report):
    return {row.code: row for row in report.rows}


def test_an_empty_period_has_zero_counts_and_no_rates(ctx):
    make_case("awaiting_signoff", now=NOV10)
    row = total(month_period(2026, 6))
    assert all(value == 0 for value in row.counts.values())
    for name in ("response_rate", "resolution_rate", "satisfaction_rate", "on_time_acceptance_rate", "reopen_rate"):
        assert getattr(row, name) is None, name
    assert row.figure("composite") is None and row.avg_handling_hours is None and row.p90_handling_hours is None


def test_three_rates_and_composite_over_valid_follow_ups_only(ctx):
    answers = [(True, True, "satisfied"), (True, True, "basic"), (False, True, "basic"), (True, False, "unsatisfied")]
    refs = []
    for contacted, resolved, satisfaction in answers:
        ref = make_case("awaiting_signoff", now=NOV10)
        signoff(ref, NOV10 + timedelta(hours=1), resolved, satisfaction, contacted)
        refs.append(ref)
    make_case("awaiting_signoff", now=NOV10)  # a case with no follow-up counts in no rate
    row = total()
    assert (row.follow_ups, row.contacted, row.resolved, row.satisfied, row.basic, row.unsatisfied) == (
        4,
        3,
        3,
        1,
        2,
        1,
    )
    assert row.response_rate == 0.75 and row.resolution_rate == 0.75
    assert row.satisfaction_rate == pytest.approx((1 + 0.9 * 2) / 4)  # 0.7
    assert row.figure("composite") == pytest.approx(0.1 * 0.75 + 0.5 * 0.75 + 0.4 * 0.7)

    # a supervisor marks the unsatisfied answer invalid (the resident could not be reached): it no longer counts
    unsatisfied = db.session.scalar(select(FollowUp).where(FollowUp.satisfaction == "unsatisfied"))
    set_follow_up_validity(unsatisfied.id, user("supervisor1"), False, "电话空号，未能联系到居民")
    db.session.commit()
    row = total()
    assert (row.follow_ups, row.invalid_follow_ups) == (3, 1)
    assert row.resolution_rate == 1.0 and row.response_rate == pytest.approx(2 / 3, abs=1e-4)
    assert row.satisfaction_rate == pytest.approx((1 + 0.9 * 2) / 3, abs=1e-4)
    assert [e.kind for e in services.events_of(load(refs[3]))][-1] == "follow_up_invalid"


def test_marking_follow_ups_invalid_is_for_supervisors_of_the_area_with_a_reason(ctx):
    ref = make_case("awaiting_signoff", now=NOV10)
    signoff(ref, NOV10 + timedelta(hours=1))
    follow_up = db.session.scalar(select(FollowUp).where(FollowUp.case_id == load(ref).id))
    with pytest.raises(ValidationError):
        set_follow_up_validity(follow_up.id, user("supervisor1"), False, "  ")
    with pytest.raises(PermissionDenied):
        set_follow_up_validity(follow_up.id, user("grid1"), False, "not reachable")
    with pytest.raises(NotFound):  # another community's supervisor does not even see it
        set_follow_up_validity(follow_up.id, user("supervisor2"), False, "not reachable")
    set_follow_up_validity(follow_up.id, user("street1"), False, "not reachable")
    with pytest.raises(Conflict):
        set_follow_up_validity(follow_up.id, user("street1"), False, "again")
    set_follow_up_validity(follow_up.id, user("street1"), True, "reached after all")
    assert db.session.get(FollowUp, follow_up.id).valid is True


def test_auto_closed_cases_are_never_satisfied_and_have_no_follow_up(ctx):
    done = make_case("awaiting_signoff", now=NOV10)
    signoff(done, NOV10 + timedelta(hours=1), satisfaction="satisfied")
    silent = make_case("awaiting_signoff", now=NOV10)  # sign-off due 13 Nov 17:30 (3 working days)
    run_sweep(now=at(16, 9))
    assert load(silent).state == "closed" and load(silent).resolution == "auto_closed_no_response"
    row = total()
    assert (row.closed, row.auto_closed, row.follow_ups, row.satisfied) == (2, 1, 1, 1)
    assert row.satisfaction_rate == 1.0  # over the one answer; the silent resident is not "satisfied"
    assert (row.signoff_steps, row.sent_back, row.send_back_rate) == (2, 0, 0.0)


def test_resident_send_backs_and_supervisor_reopens_are_counted_apart(ctx):
    sent_back = make_case("awaiting_signoff", now=NOV10)
    signoff(sent_back, at(11), resolved=False, satisfaction="unsatisfied")  # back to the firm
    assert load(sent_back).state == "firm_processing"
    fire(sent_back, "firm_complete", "firm1", at(12), result="重新更换阀门")
    signoff(sent_back, at(13))
    reopened = make_case("closed", now=NOV10)
    fire(reopened, "reopen", "supervisor1", at(20), reason="居民再次反映漏水")
    plain = make_case("closed", now=NOV10)
    assert load(plain).state == "closed"
    row = total()
    # sign-off steps ended: sent_back twice (answered), reopened once, plain once = 4; one of them sent back
    assert (row.signoff_steps, row.sent_back) == (4, 1)
    assert row.send_back_rate == 0.25
    # closures in November: 3 (sent_back after its second sign-off, reopened, plain); one reopened
    assert (row.closed, row.reopens, row.reopen_rate) == (3, 1, pytest.approx(1 / 3, abs=1e-4))
    # three valid follow-ups closed the cases, one sent the case back
    assert (row.follow_ups, row.resolved, row.unsatisfied) == (4, 3, 1)


def test_a_case_spanning_a_month_boundary_counts_where_each_fact_happened(ctx):
    ref = make_case("awaiting_signoff", now=at(30, month=10))  # Friday 30 October
    signoff(ref, at(2))  # Monday 2 November
    october, november = total(OCT), total(NOV)
    assert (october.volume, october.closed, october.follow_ups) == (1, 0, 0)
    assert (november.volume, november.closed, november.follow_ups) == (0, 1, 1)
    # at the end of October the case was open
    assert (october.backlog_open, november.backlog_open) == (1, 0)
    # the series computes the same figures as single periods
    series = compute_series(user("admin"), [OCT, NOV], "community")
    assert [(r.total.volume, r.total.closed, r.total.follow_ups) for r in series] == [(1, 0, 0), (0, 1, 1)]


def test_a_firm_is_judged_on_its_own_steps_after_a_reassignment(ctx):
    ref = make_case("firm_dispatched", now=NOV10)  # firm1 (F01) must accept by 16:00 (4 working hours)
    case = load(ref)
    # firm1 let it lie; the next morning the street supervisor gives it to firm2
    services.reassign(case, user("street1"), firm="F02", note="原物业未接单", now=at(11, 9))
    db.session.commit()
    fire(ref, "firm_accept", "firm2", at(11, 10))  # due 11 Nov 15:00: on time
    fire(ref, "firm_complete", "firm2", at(11, 11), result="已修复")
    signoff(ref, at(12), satisfaction="basic")
    firms = by_code(compute(user("admin"), NOV, "firm"))
    assert set(firms) == {"F01", "F02"}
    f01, f02 = firms["F01"], firms["F02"]
    assert (f01.accept_steps, f01.accept_on_time, f01.on_time_acceptance_rate) == (1, 0, 0.0)
    assert (f02.accept_steps, f02.accept_on_time, f02.on_time_acceptance_rate) == (1, 1, 1.0)
    assert (f02.handle_steps, f02.handle_on_time) == (1, 1)
    # the resident's answer judges the firm that did the work
    assert (f01.follow_ups, f02.follow_ups, f02.satisfaction_rate) == (0, 1, 0.9)
    # a firm sees its own figures only
    assert set(by_code(compute(user("firm1"), NOV, "firm"))) == {"F01"}
    # each firm's step rows carry it; the grid worker's steps carry no firm
    steps = db.session.scalars(select(StepFact).where(StepFact.case_id == case.id).order_by(StepFact.id)).all()
    assert [(s.state, s.party, s.firm_id is not None) for s in steps][:5] == [
        ("registered", "system", False),
        ("grid_assigned", "grid", False),
        ("grid_handling", "grid", False),
        ("firm_dispatched", "firm", True),
        ("firm_dispatched", "firm", True),
    ]
    assert steps[3].left_trigger == "reassign" and steps[3].on_time is False and steps[3].timed is True


def test_time_on_hold_does_not_count(ctx):
    ref = make_case("firm_processing", now=NOV10)  # due Fri 13 Nov 17:30
    fire(ref, "hold", "firm1", at(11), reason="waiting_parts", note="等配件")
    fire(ref, "resume", "firm1", at(17))  # 1,170 working minutes were left: due Thu 19 Nov 17:30
    fire(ref, "firm_complete", "firm1", at(17, 11), result="已更换配件")
    signoff(ref, at(17, 14))
    step = db.session.scalar(
        select(StepFact).where(StepFact.case_id == load(ref).id, StepFact.state == "firm_processing")
    )
    # 10 Nov 10:00 → 17 Nov 11:00 is 2,160 working minutes, of which 1,680 on hold (11 Nov 10:00 → 17 Nov 10:00)
    assert (step.working_minutes, step.paused_minutes) == (480, 1680)
    assert step.on_time is True and step.timed is True and step.left_trigger == "firm_complete"
    row = total()
    assert (row.handle_steps, row.handle_on_time) == (2, 2)  # the grid worker's handling and the firm's
    # handling time: only the firm's 480 working minutes (everything else happened at once at 10:00)
    assert row.avg_handling_hours == 8.0 and row.p90_handling_hours == 8.0


def test_handling_time_average_and_90th_percentile(ctx):
    # completed after 1, 2, …, 10 working hours of the firm's processing (10 Nov 10:00 + n hours)
    for hours in range(1, 11):
        ref = make_case("firm_processing", now=NOV10)
        done = NOV10
        minutes = hours * 60
        # walk working time: 10:00–12:00, 14:00–17:30, next day from 08:30
        from app.sla.services import load_calendar

        done = load_calendar().add_business_minutes(NOV10, minutes)
        fire(ref, "firm_complete", "firm1", done, result="完成")
        signoff(ref, done + timedelta(minutes=5))
    row = total()
    assert row.closed == 10
    assert row.avg_handling_hours == pytest.approx(5.5)
    assert row.p90_handling_hours == pytest.approx(9.1)  # percentile_cont(0.9) of 1 … 10


def test_yellow_and_red_cards_against_the_firm_and_urges(ctx):
    # due 13 Nov 17:30 (1,590 working minutes from the start); red when as late again: 19 Nov 16:00
    ref = make_case("firm_processing", now=NOV10)
    other = make_case("grid_assigned", now=NOV10, compound="X05")  # another community
    run_sweep(now=at(16, 9))
    run_sweep(now=at(20, 9))
    services_urge(ref)
    cards = db.session.scalars(select(ActionFact).where(ActionFact.case_id == load(ref).id)).all()
    assert sorted(c.kind for c in cards) == ["red", "urge", "yellow"]
    firm = by_code(compute(user("admin"), NOV, "firm"))["F01"]
    assert (firm.yellow_cards, firm.red_cards, firm.urges) == (1, 1, 1)
    community = by_code(compute(user("supervisor1"), NOV, "community"))
    assert list(community) == ["C01"]  # supervisor1 sees only their community
    assert (community["C01"].yellow_cards, community["C01"].red_cards) == (1, 1)
    # the grid worker's late acceptance elsewhere got its own cards, not the firm's
    assert by_code(compute(user("admin"), NOV, "community"))["C02"].yellow_cards == 1
    # the firm's open step remembers the highest level reached
    step = db.session.scalar(select(StepFact).where(StepFact.case_id == load(ref).id, StepFact.left_at.is_(None)))
    assert step.max_level == 3
    assert load(other).escalation_level == 3


def services_urge(ref):
    from app.sla.services import urge

    urge(load(ref), user("supervisor1"), "请尽快处理", now=at(20, 10))
    db.session.commit()


def test_backlog_open_overdue_and_shelved_now(ctx):
    late = make_case("firm_processing", now=at(2))  # due 5 Nov: overdue by now
    make_case("grid_assigned", now=datetime.now(TZ))  # fresh
    shelved = make_case("firm_processing", now=NOV10)
    from app.sla.services import shelve

    shelve(load(shelved), user("supervisor1"), "等待维修资金审批", datetime.now(TZ) + timedelta(days=30), now=at(12))
    db.session.commit()
    now = datetime.now(TZ)
    row = total(indicators.current_month(now))
    assert row.backlog_open == 3
    assert row.backlog_shelved == 1
    assert row.backlog_overdue >= 1 and load(late).due_at < now


def test_volume_by_category_channel_and_urgency(ctx):
    make_case("grid_assigned", now=NOV10, category="water_leak")
    make_case("grid_assigned", now=NOV10, category="garbage", channel="phone")
    make_case("grid_assigned", now=NOV10, category="garbage", urgency="urgent")
    assert {r.code: r.volume for r in compute(user("admin"), NOV, "category").rows} == {"water_leak": 1, "garbage": 2}
    assert {r.code: r.volume for r in compute(user("admin"), NOV, "channel").rows} == {"window": 2, "phone": 1}
    assert {r.code: r.volume for r in compute(user("admin"), NOV, "urgency").rows} == {"normal": 2, "urgent": 1}
    assert {r.code: r.volume for r in compute(user("admin"), NOV, "grid_worker").rows} == {"grid1": 3}


@pytest.mark.parametrize(
    "text, label, days",
    [
        ("2026-11", "2026-11", 30),
        ("2026-Q4", "2026-Q4", 92),
        ("2026", "2026", 365),
        ("2026-11-01..2026-11-15", None, 15),
    ],
)
def test_periods(ctx, text, label, days):
    period = parse_period(text)
    assert (period.end - period.start).days == days
    if label:
        assert period.label == label
    assert period.start.astimezone(TZ).hour == 0


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "26-11", "2026-11-15..2026-11-01", "next month", "1999"])
def test_bad_periods_are_refused(ctx, text):
    with pytest.raises(ValidationError):
        parse_period(text)


def test_cut_off_day_moves_the_reporting_month(app, ctx):
    app.config["RATES_CUTOFF_DAY"] = 25
    try:
        period = parse_period("2026-11")
        assert period.start.astimezone(TZ).date().isoformat() == "2026-10-26"
        assert period.end.astimezone(TZ).date().isoformat() == "2026-11-26"
        assert indicators.month_of(at(27)) == (2026, 12)
    finally:
        app.config["RATES_CUTOFF_DAY"] = None


def test_unknown_slice_is_refused(ctx):
    with pytest.raises(ValidationError):
        compute(user("admin"), NOV, "planet")


# ------------------------------------------------------------------------------------ the monthly rollup


def _all_slices(period, username="admin", **kwargs):
    from app.reports.indicators import SLICES

    out = {}
    for name in SLICES:
        report = compute(user(username), period, name, **kwargs)
        out[name] = (
            {row.key: dict(row.counts) for row in report.rows},
            dict(report.total.counts),
            report.total.p90_minutes,
        )
    return out


def test_the_rollup_gives_the_same_figures_as_the_facts(ctx):
    from app.reports import rollup

    # a spread: sign-offs, a send-back, an auto-close, cards, a reassignment, cases left open
    test_resident_send_backs_and_supervisor_reopens_are_counted_apart(ctx)
    late = make_case("firm_processing", now=NOV10)
    other = make_case("firm_dispatched", now=NOV10, compound="X03")
    services.reassign(load(other), user("street1"), firm="F01", note="换物业", now=at(11, 9))
    run_sweep(now=at(16, 9))
    db.session.commit()
    now = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)
    live = {p.label: _all_slices(p, now=now, live=True) for p in (OCT, NOV)}
    for username in ("supervisor1", "firm1"):
        live[username] = _all_slices(NOV, username, now=now, live=True)
    assert live["2026-11"]["community"][1]["volume"] > 0 and load(late).escalation_level >= 2

    for month in ("2026-10", "2026-11"):
        rollup.refresh(month, now=now)
    db.session.commit()
    # a quarter is read from its months once all three are up to date; December is not rolled up yet
    assert rollup.months_for([NOV, parse_period("2026-Q4")], now) == {0: ["2026-11"]}
    for label, period in (("2026-10", OCT), ("2026-11", NOV)):
        assert rollup.months_for([period], now) == {0: [label]}
        assert _all_slices(period, now=now) == live[label], label
    for username in ("supervisor1", "firm1"):
        assert _all_slices(NOV, username, now=now) == live[username], username


def test_a_stale_or_dirty_rollup_is_not_used(ctx, app):
    from app.reports import rollup

    ref = make_case("awaiting_signoff", now=NOV10)
    signoff(ref, NOV10 + timedelta(hours=1))
    now = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)
    rollup.refresh("2026-11", now=now)
    db.session.commit()
    assert rollup.months_for([NOV], now) == {0: ["2026-11"]}
    # a follow-up marked invalid after the refresh: November is counted from the facts again
    follow_up = db.session.scalar(select(FollowUp).where(FollowUp.case_id == load(ref).id))
    set_follow_up_validity(follow_up.id, user("street1"), False, "未接通", now=now)
    db.session.commit()
    assert rollup.months_for([NOV], now) == {}
    assert total(NOV, now=now).follow_ups == 0
    assert "2026-11" in rollup.due_months(now)
    rollup.refresh("2026-11", now=now)
    assert rollup.months_for([NOV], now) == {0: ["2026-11"]} and total(NOV, now=now).follow_ups == 0
    # another cut-off day makes the stored months meaningless
    app.config["RATES_CUTOFF_DAY"] = 25
    try:
        assert rollup.months_for([parse_period("2026-11")], now) == {}
    finally:
        app.config["RATES_CUTOFF_DAY"] = None
    # the running month is used only while freshly refreshed
    december = month_period(2026, 12)
    rollup.refresh("2026-12", now=now)
    assert rollup.months_for([december], now + timedelta(minutes=5)) == {0: ["2026-12"]}
    assert rollup.months_for([december], now + timedelta(minutes=30)) == {}
    assert compute(user("admin"), december, "street", now=now + timedelta(minutes=5)).rollup_at == now


def test_docs_define_every_figure():
    from pathlib import Path

    from app.reports.indicators import FIGURES

    text = (Path(__file__).resolve().parent.parent / "docs" / "figures.md").read_text(encoding="utf-8")
    missing = [name for name in FIGURES if f"`{name}`" not in text]
    assert not missing, f"docs/figures.md does not define {missing}"
