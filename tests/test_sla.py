"""Time limits on cases and the escalation sweep, with a controllable clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from app.cases import services
from app.cases.models import Case, CaseEvent
from app.core.errors import Conflict, PermissionDenied, ValidationError
from app.extensions import db
from app.notify.models import Notification
from app.sla import services as sla
from app.sla.calendar import Limit
from app.sla.models import HolidayOverride, TimeLimitPolicy
from tests.factories import load, make_case, user

TZ = ZoneInfo("Asia/Shanghai")
WED_0900 = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)  # a plain working Wednesday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def escalations(case) -> list:
    return [
        (e.payload.get("level"), e.payload.get("card"))
        for e in services.events_of(case)
        if e.kind == "escalation" and "level" in e.payload
    ]


def inbox(username: str, case) -> list[str]:
    return list(
        db.session.scalars(
            select(Notification.kind)
            .where(Notification.user_id == user(username).id, Notification.case_id == case.id)
            .order_by(Notification.id)
        )
    )


def test_default_policies_match_the_design(ctx):
    stored = {(p.state, p.urgency): p.limit for p in db.session.scalars(select(TimeLimitPolicy))}
    assert stored == {key: Limit.parse(text) for key, text in sla.DEFAULT_POLICIES.items()}
    assert stored[("grid_assigned", "urgent")] == Limit.parse("30m")
    assert stored[("firm_processing", "normal")] == Limit.parse("3wd")
    assert stored[("case", "urgent")] == Limit.parse("2d")


def test_entering_a_state_sets_due_warn_and_red(ctx):
    case = load(make_case(now=WED_0900))
    # grid_assigned, normal: 2 working hours → 11:00; warn at 80 % → 10:36; red when as late again → 15:00
    assert case.due_at == at("2026-11-25T11:00") and case.warn_at == at("2026-11-25T10:36")
    assert case.red_at == at("2026-11-25T15:00") and case.escalation_level == 0
    assert case.next_check_at == case.warn_at
    assert case.resolve_by == at("2026-12-09T17:30")  # whole case: 10 working days
    services.fire(case, "grid_accept", user("grid1"), now=at("2026-11-25T09:30"))
    assert case.due_at == at("2026-11-26T17:30")  # grid_handling: 1 working day from the next day
    accepted = services.events_of(case)[-1]
    assert accepted.payload["on_time"] is True and accepted.payload["step_due_at"].startswith("2026-11-25T03:00")


def test_urgent_cases_use_calendar_time_even_on_holidays(ctx):
    national_day = at("2026-10-01T10:00")
    case = load(make_case(category="lift_entrapment", now=national_day))
    assert case.urgency == "urgent"
    assert case.due_at == at("2026-10-01T10:30") and case.warn_at == at("2026-10-01T10:24")
    assert case.resolve_by == at("2026-10-03T10:00")


def test_sweep_warns_then_yellow_then_red_card_in_order(ctx):
    case = load(make_case(now=WED_0900))
    assert sla.sweep_batch(at("2026-11-25T10:30")).examined == 0  # nothing due yet
    result = sla.sweep_batch(at("2026-11-25T10:40"))
    assert (result.warned, result.yellow, result.red) == (1, 0, 0)
    db.session.refresh(case)
    assert case.escalation_level == 1 and case.next_check_at == case.due_at
    assert inbox("grid1", case)[-1] == "escalation_1"
    result = sla.sweep_batch(at("2026-11-25T11:05"))
    assert (result.warned, result.yellow, result.red) == (0, 1, 0)
    assert "escalation_2" in inbox("supervisor1", case) and "escalation_2" in inbox("grid1", case)
    result = sla.sweep_batch(at("2026-11-25T15:01"))
    assert result.red == 1
    assert "escalation_3" in inbox("street1", case)
    db.session.refresh(case)
    assert case.escalation_level == 3 and case.next_check_at == case.resolve_by
    assert escalations(case) == [(1, "warning"), (2, "yellow"), (3, "red")]


def test_running_the_sweep_twice_escalates_once(ctx):
    case = load(make_case(now=WED_0900))
    first = sla.sweep_batch(at("2026-11-25T11:30"))
    second = sla.sweep_batch(at("2026-11-25T11:30"))
    assert (first.warned, first.yellow) == (1, 1) and second.examined == 0
    assert escalations(case) == [(1, "warning"), (2, "yellow")]
    assert len(inbox("supervisor1", case)) == 1


def test_catch_up_after_downtime_records_every_level_in_order(ctx):
    early = load(make_case(now=WED_0900))
    later = load(make_case(now=at("2026-11-25T09:30")))
    result = sla.run_sweep(at("2026-11-26T09:00"))  # the scheduler was down since Wednesday morning
    assert (result.warned, result.yellow, result.red) == (2, 2, 2)
    for case in (early, later):
        assert escalations(case) == [(1, "warning"), (2, "yellow"), (3, "red")]
        events = [e for e in services.events_of(case) if e.kind == "escalation"]
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert [e.payload["threshold_at"] for e in events] == sorted(e.payload["threshold_at"] for e in events)
    assert sla.run_sweep(at("2026-11-26T09:00")).examined == 0


def test_unanswered_signoff_is_auto_closed(ctx):
    case = load(make_case("awaiting_signoff", now=WED_0900))
    assert case.due_at == at("2026-11-30T17:30")  # 3 working days
    assert sla.sweep_batch(at("2026-11-30T17:00")).auto_closed == 0
    result = sla.sweep_batch(at("2026-11-30T17:31"))
    assert result.auto_closed == 1
    db.session.refresh(case)
    assert case.state == "closed" and case.resolution == "auto_closed_no_response" and case.next_check_at is None
    last = services.events_of(case)[-1]
    assert (last.trigger, last.actor_role) == ("auto_close", "system")
    assert sla.sweep_batch(at("2026-12-30T00:00")).examined == 0


def test_on_hold_stops_the_clock_and_resume_reapplies_the_remaining_time(ctx):
    case = load(make_case("firm_processing", now=WED_0900))
    assert case.due_at == at("2026-11-30T17:30")
    # on hold at Friday 10:00: Fri 10:00–12:00 and 14:00–17:30 (5.5 h) + Monday (7 h) were left
    services.fire(
        case, "hold", user("firm1"), inputs={"reason": "waiting_parts", "note": "等配件"}, now=at("2026-11-27T10:00")
    )
    assert case.due_at is None and case.paused_step_minutes == 12.5 * 60 and case.next_check_at is None
    assert sla.sweep_batch(at("2026-12-20T10:00")).examined == 0  # weeks on hold: no escalation
    services.fire(case, "resume", user("firm1"), now=at("2026-12-21T09:00"))  # a Monday
    assert case.due_at == at("2026-12-22T16:30")  # Mon 09:00–17:30 (6.5 h) + Tue 08:30–16:30 (6 h)
    assert case.paused_at is None and case.escalation_level == 0
    # the whole-case limit was stopped as well
    assert case.resolve_by > at("2026-12-21T09:00")


def test_a_step_overdue_before_the_hold_is_still_overdue_after_it(ctx):
    case = load(make_case("firm_processing", now=WED_0900))
    sla.run_sweep(at("2026-12-01T09:00"))
    db.session.refresh(case)
    assert case.escalation_level == 2
    services.fire(case, "hold", user("firm1"), inputs={"reason": "weather", "note": "大雨"}, now=at("2026-12-01T09:00"))
    services.fire(case, "resume", user("firm1"), now=at("2026-12-10T09:00"))
    assert case.due_at < at("2026-12-10T09:00") and case.escalation_level == 2


def test_an_administrator_override_changes_deadlines(ctx):
    db.session.add(HolidayOverride(day=datetime(2026, 11, 26).date(), is_working=False, note="台风停工"))
    db.session.flush()
    sla.forget_cached_settings()
    case = load(make_case("grid_handling", now=WED_0900))
    assert case.due_at == at("2026-11-27T17:30")


def test_a_new_handler_gets_the_full_time_of_the_step(ctx):
    case = load(make_case("grid_handling", now=WED_0900))
    later = at("2026-11-26T16:00")
    services.reassign(case, user("supervisor1"), grid_worker="grid2", note="换人", now=later)
    assert case.due_at == at("2026-11-27T17:30")
    assert "assigned" in inbox("grid2", case)


def test_whole_case_limit_escalates_to_the_community(ctx):
    case = load(make_case("grid_handling", now=WED_0900))
    sla.run_sweep(at("2026-12-10T09:00"))
    db.session.refresh(case)
    assert case.case_overdue and "case_overdue" in inbox("supervisor1", case)
    closing = services.fire(
        case, "close_invalid", user("grid1"), inputs={"reason": "withdrawn", "note": "撤回"}, now=at("2026-12-10T10:00")
    )
    assert closing.payload["case_on_time"] is False


# ----------------------------------------------------------------------------------- supervisor actions


def test_extension_request_and_approval(ctx):
    case = load(make_case("firm_processing", now=WED_0900))
    with pytest.raises(PermissionDenied):
        sla.request_extension(case, user("grid1"), at("2026-12-04T17:30"), "x", now=at("2026-11-26T10:00"))
    with pytest.raises(ValidationError):
        sla.request_extension(case, user("firm1"), at("2026-11-27T17:30"), "早于原期限", now=at("2026-11-26T10:00"))
    request = sla.request_extension(
        case, user("firm1"), at("2026-12-04T17:30"), "需要厂家派工程师", now=at("2026-11-26T10:00")
    )
    assert "extension_request" in inbox("supervisor1", case)
    with pytest.raises(Conflict):
        sla.request_extension(case, user("firm1"), at("2026-12-05T17:30"), "再次", now=at("2026-11-26T11:00"))
    with pytest.raises(PermissionDenied):
        sla.decide_extension(case, user("supervisor2"), True, now=at("2026-11-26T12:00"))
    sla.decide_extension(case, user("supervisor1"), True, "同意", now=at("2026-11-26T14:00"))
    assert request.status == "approved" and case.due_at == at("2026-12-04T17:30")
    assert case.escalation_level == 0 and case.next_check_at == case.warn_at
    assert "extension_decision" in inbox("firm1", case)
    kinds = [e.kind for e in services.events_of(case)]
    assert kinds[-2:] == ["extension_request", "extension_decision"]


def test_extension_must_be_asked_before_the_deadline_and_denial_needs_a_reason(ctx):
    case = load(make_case("firm_processing", now=WED_0900))
    with pytest.raises(Conflict):
        sla.request_extension(case, user("firm1"), at("2026-12-09T17:30"), "太晚", now=at("2026-12-01T09:00"))
    sla.request_extension(case, user("firm1"), at("2026-12-04T17:30"), "配件", now=at("2026-11-26T10:00"))
    with pytest.raises(ValidationError):
        sla.decide_extension(case, user("supervisor1"), False, now=at("2026-11-26T11:00"))
    request = sla.decide_extension(case, user("supervisor1"), False, "可先临时处理", now=at("2026-11-26T11:00"))
    assert request.status == "denied" and case.due_at == at("2026-11-30T17:30")


def test_urge_notifies_the_current_handler(ctx):
    case = load(make_case("firm_dispatched", now=WED_0900))
    with pytest.raises(PermissionDenied):
        sla.urge(case, user("clerk1"), "快点")
    sla.urge(case, user("supervisor1"), "请今天内接单", now=at("2026-11-25T10:00"))
    assert inbox("firm1", case) == ["new_work", "urge"]
    assert services.events_of(case)[-1].kind == "urge"


def test_shelving_stops_the_clock_until_review(ctx):
    case = load(make_case("firm_processing", now=WED_0900))
    review = at("2027-01-15T09:00")
    sla.shelve(case, user("supervisor1"), "需业主大会表决后实施", review, now=at("2026-11-26T10:00"))
    assert case.shelved and case.due_at is None and case.next_check_at == review
    assert sla.sweep_batch(at("2027-01-10T09:00")).examined == 0
    result = sla.sweep_batch(at("2027-01-15T09:01"))
    assert result.shelve_reviews == 1 and result.yellow == 0
    assert "shelve_review" in inbox("supervisor1", case)
    db.session.refresh(case)
    assert case.next_check_at is None
    sla.unshelve(case, user("supervisor1"), "表决通过", now=at("2027-01-18T09:00"))
    assert not case.shelved and case.due_at > at("2027-01-18T09:00")
    with pytest.raises(Conflict):
        sla.unshelve(case, user("supervisor1"))


# -------------------------------------------------------------------------------------------- CLI


def test_cli_sweep_with_a_controllable_clock(runner, app):
    ref = make_case(now=WED_0900)
    result = runner.invoke(args=["sweep", "--now", "2026-11-25T11:05:00+08:00"])
    assert result.exit_code == 0, result.output
    assert "warned 1" in result.output and "1 (yellow card)" in result.output
    again = runner.invoke(args=["sweep", "--now", "2026-11-25T11:05:00+08:00"])
    assert "warned 0" in again.output and "0 (yellow card)" in again.output
    assert runner.invoke(args=["sweep", "--now", "not a date"]).exit_code == 2
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == case.id, CaseEvent.kind == "escalation")
            )
            == 2
        )


def test_the_sweep_query_uses_the_next_check_index(ctx):
    from sqlalchemy import text

    bind = db.session.get_bind()
    sql = 'SELECT id FROM "case" WHERE next_check_at <= :now ORDER BY next_check_at LIMIT 1000'
    if bind.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in db.session.execute(text("EXPLAIN " + sql), {"now": WED_0900}))
    else:
        plan = "\n".join(str(r[-1]) for r in db.session.execute(text("EXPLAIN QUERY PLAN " + sql), {"now": WED_0900}))
    assert "ix_case_next_check" in plan, plan


def test_missing_year_banner_for_administrators(ctx, client, auth):
    assert sla.missing_schedule_years(at("2026-11-25T10:00").date()) == [2027]
    assert sla.missing_schedule_years(at("2026-06-01T10:00").date()) == []


def test_escalation_events_are_visible_in_history(client, auth, app):
    ref = make_case(now=WED_0900)
    with app.app_context():
        sla.run_sweep(at("2026-11-25T11:30"))
    auth.login("supervisor1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert body.count('data-kind="escalation"') == 2


@pytest.fixture
def in_the_past():
    return WED_0900 - timedelta(days=1)


@pytest.mark.postgres
def test_the_sweep_raises_an_open_steps_level_in_place_on_a_full_page(ctx):
    """Each escalation raises ``max_level`` of the case's open step, a column in no index: with room left on
    the step's page (``fact_step`` fillfactor 90, migration 0016) the new row version stays on the page and
    no index of the step facts is touched (a HOT update). On a page filled to the brim every escalation wrote
    a new entry into each of the table's indexes — at ten million cases, into indexes of 67 M rows."""
    from app.reports.models import StepFact

    page = "(ctid::text::point)[0]"
    columns = [c.name for c in StepFact.__table__.columns if c.name not in ("id", "left_at")]
    listed = ", ".join(columns)

    def fill_page_of(step_id: int) -> int:
        """Insert closed copies of a step until one goes to a new page; returns that page."""
        first = db.session.execute(text(f"SELECT max({page}) FROM fact_step")).scalar()
        for _ in range(300):
            landed = db.session.execute(
                text(
                    f"INSERT INTO fact_step ({listed}, left_at) SELECT {listed}, entered_at FROM fact_step "
                    f"WHERE id = :id RETURNING {page}"
                ),
                {"id": step_id},
            ).scalar()
            if landed > first:
                return landed
        raise AssertionError("the table's last page never filled")

    # rows that earlier tests rolled back leave dead space on the page the table's rows go to now: start the
    # case on a page of its own. A first case (not due at the sweep below) fills that page with its copies
    # until the rows go to a new one; the case of the test is registered there.
    other = load(make_case(now=at("2026-11-26T09:00")))
    fresh = fill_page_of(db.session.scalars(select(StepFact.id).where(StepFact.case_id == other.id)).first())
    case = load(make_case(now=WED_0900))
    open_step = db.session.scalars(
        select(StepFact).where(StepFact.case_id == case.id, StepFact.left_at.is_(None))
    ).one()

    def page_of_step():
        return db.session.execute(text(f"SELECT {page} FROM fact_step WHERE id = :id"), {"id": open_step.id}).scalar()

    before = page_of_step()
    assert before == fresh
    # fill the rest of the open step's page with closed steps (copies of it), as a busy day's intake does,
    # until the next row goes to a new page
    last_page = fill_page_of(open_step.id)
    on_page = db.session.execute(
        text(f"SELECT count(*) FROM fact_step WHERE {page} = :page"), {"page": before}
    ).scalar()
    assert last_page > before and on_page > 20  # the page is full of live rows

    def updates():
        return db.session.execute(
            text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'fact_step'")
        ).one()

    updated, hot = updates()
    result = sla.sweep_batch(at("2026-11-25T10:40"))
    assert result.warned == 1
    db.session.refresh(open_step)
    assert open_step.max_level == 1
    updated_after, hot_after = updates()
    assert updated_after - updated == 1  # the open step, once
    assert hot_after - hot == 1  # in place: no index written
    assert page_of_step() == before
