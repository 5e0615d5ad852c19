"""The three rates a supervisor reads: formula, grouping, scope and period (DESIGN §5)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from app.cases import services
from app.cases.models import FollowUp
from app.core.errors import ValidationError
from app.core.timeutil import app_tz
from app.extensions import db
from app.reports.rates import month_period, parse_period, three_rates
from tests.factories import HANDLERS, load, make_case, user

NOV = datetime(2026, 11, 10, 10, 0, tzinfo=app_tz())


def signoff(contacted: bool, resolved: bool, satisfaction: str, *, compound="X01", category="water_leak", now=NOV):
    """A case brought to sign-off and answered by its grid worker on the resident's behalf."""
    ref = make_case("awaiting_signoff", compound=compound, category=category, now=now)
    case = load(ref)
    grid_worker = HANDLERS.get(compound, ("grid1",))[0]
    services.fire(
        case,
        "signoff",
        user(grid_worker),
        inputs={"contacted": contacted, "resolved": resolved, "satisfaction": satisfaction},
        now=now,
    )
    db.session.commit()
    return ref


@pytest.fixture
def four_answers(ctx):
    signoff(True, True, "satisfied")
    signoff(True, True, "basic")
    signoff(False, True, "basic")
    signoff(True, False, "unsatisfied")


def test_the_formula_over_valid_follow_ups(ctx, four_answers):
    report = three_rates(user("admin"), month_period(2026, 11), "compound")
    (row,) = report.rows
    assert (row.code, row.valid, row.contacted, row.resolved, row.satisfied, row.basic, row.unsatisfied) == (
        "X01",
        4,
        3,
        3,
        1,
        2,
        1,
    )
    assert row.response_rate == 0.75 and row.resolution_rate == 0.75
    assert row.satisfaction_rate == pytest.approx((1 + 0.9 * 2) / 4)
    assert row.composite(report.weights) == pytest.approx(0.1 * 0.75 + 0.5 * 0.75 + 0.4 * 0.7)
    assert report.total.valid == 4


def test_invalid_follow_ups_do_not_count(ctx, four_answers):
    unsatisfied = db.session.scalar(select(FollowUp).where(FollowUp.satisfaction == "unsatisfied"))
    unsatisfied.valid = False
    db.session.flush()
    (row,) = three_rates(user("admin"), month_period(2026, 11), "compound").rows
    assert (row.valid, row.resolution_rate, row.response_rate) == (3, 1.0, pytest.approx(2 / 3, abs=1e-4))


def test_grouping_by_compound_grid_firm_community_and_category(ctx):
    signoff(True, True, "satisfied", compound="X01")
    signoff(True, False, "unsatisfied", compound="X05", category="garbage")
    by = {
        group: three_rates(user("admin"), month_period(2026, 11), group)
        for group in ("compound", "grid", "firm", "community", "category")
    }
    assert {r.code: r.valid for r in by["compound"].rows} == {"X01": 1, "X05": 1}
    assert {r.code for r in by["grid"].rows} == {"G01", "G03"}
    assert {r.code: r.resolution_rate for r in by["firm"].rows} == {"F01": 1.0, "F02": 0.0}
    assert {r.code for r in by["community"].rows} == {"C01", "C02"}
    assert {r.code: r.name for r in by["category"].rows}["garbage"] in ("垃圾未及时清运", "Garbage not collected")
    assert all(report.total.valid == 2 for report in by.values())
    with pytest.raises(ValidationError):
        three_rates(user("admin"), month_period(2026, 11), "planet")


def test_rates_are_scoped_like_case_lists(ctx):
    signoff(True, True, "satisfied", compound="X01")
    signoff(True, True, "basic", compound="X05")
    period = month_period(2026, 11)
    assert three_rates(user("grid1"), period).total.valid == 1
    assert [r.code for r in three_rates(user("grid3"), period, "compound").rows] == ["X05"]
    assert [r.code for r in three_rates(user("firm1"), period, "compound").rows] == ["X01"]
    assert [r.code for r in three_rates(user("supervisor2"), period, "compound").rows] == ["X05"]
    assert three_rates(user("street1"), period).total.valid == 2
    assert three_rates(user("branch1"), period).total.valid == 1


def test_a_follow_up_belongs_to_the_month_it_was_recorded_in_local_time(ctx, app):
    signoff(True, True, "satisfied", now=datetime(2026, 10, 31, 23, 30, tzinfo=app_tz()))
    signoff(True, True, "satisfied", now=datetime(2026, 11, 27, 9, 0, tzinfo=app_tz()))
    admin = user("admin")
    assert three_rates(admin, month_period(2026, 10)).total.valid == 1
    assert three_rates(admin, month_period(2026, 11)).total.valid == 1
    # with a cut-off on the 25th, November runs from 26 October to 25 November
    app.config["RATES_CUTOFF_DAY"] = 25
    try:
        november = parse_period("2026-11")
        assert november.start == datetime(2026, 10, 26, tzinfo=app_tz())
        assert november.end == datetime(2026, 11, 26, tzinfo=app_tz())
        assert three_rates(admin, november).total.valid == 1
        assert three_rates(admin, parse_period("2026-12")).total.valid == 1
    finally:
        app.config.pop("RATES_CUTOFF_DAY")


def test_weights_are_configurable_and_empty_groups_have_no_rates(ctx, app):
    signoff(True, False, "satisfied")
    app.config["RATE_WEIGHTS"] = {"response": 0.5, "resolution": 0.0, "satisfaction": 0.5}
    try:
        report = three_rates(user("admin"), month_period(2026, 11))
        assert report.rows[0].composite(report.weights) == pytest.approx(1.0)
    finally:
        app.config.pop("RATE_WEIGHTS")
    empty = three_rates(user("admin"), month_period(2025, 1))
    assert empty.rows == [] and empty.total.response_rate is None and empty.total.composite(empty.weights) is None


@pytest.mark.parametrize("text", ["2026-13", "26-11", "November", "2026-1", "1999-05"])
def test_bad_periods_are_refused(ctx, text):
    with pytest.raises(ValidationError):
        parse_period(text)
