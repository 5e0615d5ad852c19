"""The property-firm credit rating: score, grades, card deductions, adjustments, D restriction, frozen months."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.cases import services
from app.cases.models import FollowUp
from app.core.errors import Conflict, PermissionDenied, ValidationError
from app.core.timeutil import app_tz
from app.extensions import db
from app.org.models import PropertyFirm
from app.reports import rating
from app.reports.followups import set_follow_up_validity
from app.reports.models import FirmRating
from app.sla.services import run_sweep
from tests.factories import load, make_case, user

TZ = app_tz()
DEC2 = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)


def at(day, hour=10, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


def fire(ref, trigger, who, when, **inputs):
    services.fire(load(ref), trigger, user(who), inputs=inputs, now=when)
    db.session.commit()


@pytest.fixture
def november(ctx):
    """F01: two cases done on time, residents satisfied and basically satisfied. F02: one case accepted
    late (a yellow card), completed on time, sent back once by an unsatisfied resident, then satisfied."""
    for satisfaction in ("satisfied", "basic"):
        ref = make_case("firm_processing", now=at(10))
        fire(ref, "firm_complete", "firm1", at(10, 11), result="已修复")
        fire(ref, "signoff", "grid1", at(10, 15), contacted=True, resolved=True, satisfaction=satisfaction)
    late = make_case("firm_dispatched", compound="X03", now=at(10))  # firm2 must accept by 10 Nov 16:00
    run_sweep(now=at(11, 9))  # warning and yellow card
    fire(late, "firm_accept", "firm2", at(11, 9, 30))
    fire(late, "firm_complete", "firm2", at(12), result="已修复")
    fire(late, "signoff", "grid2", at(12, 11), contacted=True, resolved=False, satisfaction="unsatisfied")
    fire(late, "firm_complete", "firm2", at(13), result="再次修复")
    fire(late, "signoff", "grid2", at(13, 11), contacted=True, resolved=True, satisfaction="satisfied")
    return late


def by_firm(ratings):
    return {db.session.get(PropertyFirm, r.firm_id).code: r for r in ratings}


def test_scores_grades_and_the_d_restriction(november):
    ratings, computed = rating.compute_month("2026-11", user("street1"), now=DEC2)
    assert computed
    firms = by_firm(ratings)
    f01, f02 = firms["F01"], firms["F02"]
    # F01: 15 × 1 + 25 × 1 + 40 × (1 + 0.9) / 2 + 20 × 1 = 98 → A, priority
    assert (f01.score, f01.grade, f01.restricted_until) == (98.0, "A", None)
    # F02: 15 × 0 + 25 × 1 + 40 × 0.5 + 20 × (1 − 1/2) − 2 (one yellow card) = 53 → D
    assert f02.components["rates"] == {"acceptance": 0.0, "completion": 1.0, "satisfaction": 0.5, "reopen": 0.5}
    assert f02.components["card_deduction"] == 2.0
    assert (f02.base_score, f02.score, f02.grade) == (53.0, 53.0, "D")
    assert f02.rated_on == date(2026, 12, 2) and f02.restricted_until == date(2029, 12, 2)


def test_a_firm_with_nothing_to_rate_gets_no_grade(november):
    db.session.add(PropertyFirm(code="F99", name="新成立物业"))
    db.session.flush()
    firms = by_firm(rating.compute_month("2026-11", user("admin"), now=DEC2)[0])
    assert (firms["F99"].score, firms["F99"].grade, firms["F99"].restricted_until) == (None, None, None)


def test_a_computed_month_is_frozen_until_explicitly_recomputed(november):
    first, _ = rating.compute_month("2026-11", user("street1"), now=DEC2)
    assert by_firm(first)["F01"].score == 98.0
    # later a supervisor marks F01's "basic" answer invalid: the live figure changes …
    basic = db.session.scalar(select(FollowUp).where(FollowUp.satisfaction == "basic"))
    set_follow_up_validity(basic.id, user("street1"), False, "回访电话未接通")
    db.session.commit()
    live = {e["firm"].code: e for e in rating.provisional("2026-11", now=DEC2)}
    assert live["F01"]["score"] == 100.0
    # … but the frozen month does not
    again, computed = rating.compute_month("2026-11", user("street1"), now=DEC2)
    assert not computed and by_firm(again)["F01"].score == 98.0
    with pytest.raises(ValidationError):
        rating.compute_month("2026-11", user("street1"), recompute=True, reason=" ", now=DEC2)
    redone, computed = rating.compute_month("2026-11", user("street1"), recompute=True, reason="回访复核", now=DEC2)
    assert computed and by_firm(redone)["F01"].score == 100.0
    log = db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("rating.%")).order_by(AuditEvent.id)).all()
    assert [entry.action for entry in log] == ["rating.computed", "rating.recomputed"]
    recompute = log[1]
    assert recompute.details["reason"] == "回访复核" and recompute.actor_name == "street1"
    f01_id = str(db.session.scalar(select(PropertyFirm.id).where(PropertyFirm.code == "F01")))
    assert recompute.details["before"][f01_id]["score"] == 98.0 and recompute.details["after"][f01_id]["score"] == 100.0
    invalidated = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "follow_up.invalidated"))
    assert invalidated.details["reason"] == "回访电话未接通"


def test_adjustments_change_score_and_grade_with_reason_and_author(november):
    with pytest.raises(Conflict):  # nothing to adjust before the month is rated
        rating.adjust("2026-11", "F02", 8, "积极整改", user("street1"), now=DEC2)
    rating.compute_month("2026-11", user("street1"), now=DEC2)
    with pytest.raises(PermissionDenied):
        rating.adjust("2026-11", "F02", 8, "积极整改", user("supervisor1"), now=DEC2)
    for points in (25, "x", 0, float("nan")):
        with pytest.raises(ValidationError):
            rating.adjust("2026-11", "F02", points, "积极整改", user("street1"), now=DEC2)
    with pytest.raises(ValidationError):
        rating.adjust("2026-11", "F02", 8, "", user("street1"), now=DEC2)
    with pytest.raises(ValidationError):
        rating.adjust("2026-11", "F77", 8, "积极整改", user("street1"), now=DEC2)
    adjusted, adjustment = rating.adjust("2026-11", "F02", 8, "积极整改，居民认可", user("street1"), now=DEC2)
    assert (adjusted.base_score, adjusted.score, adjusted.grade, adjusted.restricted_until) == (53.0, 61.0, "C", None)
    assert (adjustment.points, adjustment.created_by_name) == (8.0, user("street1").display_name)
    # an adjustment survives a recompute, and the ranking shows it
    rating.compute_month("2026-11", user("admin"), recompute=True, reason="数据更正", now=DEC2)
    entries, frozen = rating.ratings_for(user("street1"), "2026-11", now=DEC2)
    assert frozen and [e["firm"].code for e in entries] == ["F01", "F02"]
    f02 = entries[1]
    assert (f02["score"], f02["grade"]) == (61.0, "C")
    assert [(a.points, a.reason) for a in f02["adjustments"]] == [(8.0, "积极整改，居民认可")]
    adjusted = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "rating.adjusted"))
    assert (adjusted.actor_name, adjusted.target_label, adjusted.details["points"]) == (
        "street1",
        "池州安居物业管理有限公司",
        8.0,
    )
    as_json = rating.entry_as_dict(f02)
    assert as_json["adjustments"][0]["by"] == user("street1").display_name and as_json["restricted_until"] is None


def test_who_computes_and_who_sees(november):
    with pytest.raises(PermissionDenied):
        rating.compute_month("2026-11", user("supervisor1"), now=DEC2)
    with pytest.raises(ValidationError):  # the month is not over
        rating.compute_month("2026-12", user("street1"), now=DEC2)
    with pytest.raises(ValidationError):
        rating.compute_month("2026-Q4", user("street1"), now=DEC2)
    rating.compute_month("2026-11", user("street1"), now=DEC2)
    assert [e["firm"].code for e in rating.ratings_for(user("firm2"), "2026-11")[0]] == ["F02"]
    assert [e["firm"].code for e in rating.ratings_for(user("supervisor1"), "2026-11")[0]] == ["F01", "F02"]
    assert rating.ratings_for(user("clerk1"), "2026-11")[0] == []
    f01 = db.session.scalar(select(PropertyFirm).where(PropertyFirm.code == "F01"))
    with pytest.raises(PermissionDenied):
        rating.history(user("firm2"), f01)
    assert [r.month for r in rating.history(user("firm1"), f01)] == ["2026-11"]


def test_the_scheduled_run_rates_the_month_that_closed_once(november):
    assert rating.scheduled_rating(now=DEC2) is True
    assert rating.scheduled_rating(now=DEC2) is False
    assert db.session.scalar(select(FirmRating.month).limit(1)) == "2026-11"


def test_grade_bands_are_configurable(app, november):
    app.config["RATING_BANDS"] = {"A": 95.0, "B": 50.0, "C": 40.0}
    try:
        firms = by_firm(rating.compute_month("2026-11", user("street1"), now=DEC2)[0])
        assert (firms["F01"].grade, firms["F02"].grade) == ("A", "B")
    finally:
        app.config["RATING_BANDS"] = None


def test_the_scheduler_job_rates_the_last_closed_month(app, ctx):
    from app.sla.scheduler import rate_closed_month

    rate_closed_month(app)
    month = rating.previous_complete_month()
    rated = db.session.scalars(select(FirmRating).where(FirmRating.month == month)).all()
    assert {r.firm_id for r in rated} == set(db.session.scalars(select(PropertyFirm.id)))
    rate_closed_month(app)  # the next day: nothing changes
    computed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "rating.computed")).all()
    assert [e.details["month"] for e in computed] == [month] and computed[0].actor_name == "-"  # the system
