"""Intake in parallel (issue 12): cached settings with invalidation, reference numbers without a
shared lock, routing that counts a bounded number of open cases."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from app.auth import roles
from app.auth import services as auth_services
from app.cases import services
from app.cases.models import Case, Category
from app.extensions import db
from app.sla import services as sla
from app.sla.models import TimeLimitPolicy
from tests.factories import load, make_case, user


def _intake(**overrides):
    values = {
        "category": "water_leak",
        "description": "楼道水管漏水，地面积水",
        "compound": "X01",
        "resident_name": "陈先生",
        "resident_phone": "13812345678",
        **overrides,
    }
    return services.Intake(**values)


def test_a_changed_time_limit_applies_to_the_next_intake_at_once(ctx):
    first = services.register_case(_intake(), user("clerk1"))
    db.session.commit()
    assert sla.policy_limit("grid_assigned", "normal") is not None  # now cached
    policy = db.session.scalar(
        select(TimeLimitPolicy).where(TimeLimitPolicy.state == "grid_assigned", TimeLimitPolicy.urgency == "normal")
    )
    policy.amount, policy.unit = 7 * 60, "calendar_minutes"
    db.session.commit()
    second = services.register_case(_intake(), user("clerk1"))
    assert second.step_limit_minutes == 7 * 60 != first.step_limit_minutes


def test_a_retired_category_is_refused_although_it_was_cached(ctx):
    services.register_case(_intake(category="garbage"), user("clerk1"))
    db.session.commit()
    category = db.session.scalar(select(Category).where(Category.code == "garbage"))
    category.active = False
    db.session.commit()
    with pytest.raises(services.FieldErrors) as refused:
        services.register_case(_intake(category="garbage"), user("clerk1"))
    assert "no longer in use" in refused.value.errors["category"]


def test_an_uncommitted_change_does_not_outlive_its_rollback(ctx):
    category = db.session.scalar(select(Category).where(Category.code == "garbage"))
    category.name_zh = "临时名称"
    db.session.flush()
    assert services.register_case(_intake(category="garbage"), user("clerk1")).category.name_zh == "临时名称"
    db.session.rollback()
    case = services.register_case(_intake(category="garbage"), user("clerk1"))
    assert case.category.name_zh != "临时名称"


def test_a_change_made_by_another_process_is_seen_after_the_version_check(app, ctx, monkeypatch):
    services.register_case(_intake(category="garbage"), user("clerk1"))  # cached here
    # another process: plain SQL (no ORM event in this process) and the version bump it makes
    db.session.execute(text("UPDATE category SET active = :no WHERE code = 'garbage'"), {"no": False})
    db.session.execute(text("UPDATE settings_version SET version = version + 1 WHERE id = 1"))
    monkeypatch.setitem(app.config, "SETTINGS_CHECK_SECONDS", 3600)
    services.register_case(_intake(category="garbage"), user("clerk1"))  # not yet checked: cached value
    monkeypatch.setitem(app.config, "SETTINGS_CHECK_SECONDS", 0)
    with pytest.raises(services.FieldErrors):
        services.register_case(_intake(category="garbage"), user("clerk1"))


def test_routing_counts_open_cases_only_up_to_the_cap_and_then_takes_turns(ctx, monkeypatch):
    auth_services.create_user("grid1b", "Passw0rd1", roles.GRID_WORKER, auth_services.resolve_scope("grid", "G01"))
    monkeypatch.setattr(services, "ROUTING_LOAD_CAP", 1)
    workers = [load(make_case()).assigned_grid_worker.username for _ in range(6)]
    # grid1 takes the first (tie, lower id), grid1b the second (less loaded); then both are full
    assert workers[:2] == ["grid1", "grid1b"]
    assert sorted(workers[2:]) == ["grid1", "grid1", "grid1b", "grid1b"]


def test_references_of_a_day_are_unique_and_readable(ctx):
    refs = [services.register_case(_intake(), user("clerk1")).ref for _ in range(3)]
    numbers = [int(ref.rsplit("-", 1)[1]) for ref in refs]
    assert len(set(refs)) == 3 and numbers == sorted(numbers)
    assert all(ref.startswith("KSM-") and len(ref) == len("KSM-20261125-0001") for ref in refs)


@pytest.mark.postgres
def test_an_open_intake_does_not_block_the_next_ones(app, committed):
    """The reference number is taken without a lock held until the commit: while one intake's
    transaction stays open, another one registers and commits (it would wait on the old counter)."""
    with app.app_context():
        services.register_case(_intake(), user("clerk1"))  # first intake: the day's sequence exists
        db.session.commit()
    held = threading.Event()
    release = threading.Event()

    def slow_intake():
        with app.app_context():
            services.register_case(_intake(description="这一件开着事务不提交"), user("clerk1"))
            held.set()
            release.wait(timeout=30)
            db.session.rollback()  # a failed intake: its number is a gap
            db.session.remove()

    thread = threading.Thread(target=slow_intake)
    thread.start()
    try:
        assert held.wait(timeout=30)
        with app.app_context():
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            case = services.register_case(_intake(description="另一件不用等"), user("clerk1"))
            db.session.commit()
            assert case.state == "grid_assigned"
    finally:
        release.set()
        thread.join(timeout=30)
    with app.app_context():
        refs = db.session.scalars(select(Case.ref).order_by(Case.id)).all()
        numbers = [int(ref.rsplit("-", 1)[1]) for ref in refs]
        assert len(refs) == 2 and numbers[1] == numbers[0] + 2  # the rolled-back intake left a gap
        assert db.session.scalar(select(func.count()).select_from(Case)) == 2


def test_unknown_codes_typed_by_clients_are_not_remembered(ctx):
    from app.core import settings_cache

    before = settings_cache.stats()["entries"]
    for number in range(20):
        with pytest.raises(services.FieldErrors):
            services.register_case(_intake(compound=f"NO-SUCH-{number}", category=f"nope-{number}"), user("clerk1"))
    assert settings_cache.stats()["entries"] <= before + 2  # at most the settings read on the way


def test_a_new_contract_routes_the_next_case_to_the_new_firm(ctx):
    from app.core.timeutil import to_local, utcnow
    from app.org.models import Compound, FirmContract, PropertyFirm

    first = services.register_case(_intake(), user("clerk1"))
    db.session.commit()
    compound = db.session.scalar(select(Compound).where(Compound.code == "X01"))
    other = db.session.scalar(select(PropertyFirm).where(PropertyFirm.id != first.firm_id).limit(1))
    db.session.add(FirmContract(compound_id=compound.id, firm_id=other.id, start_date=to_local(utcnow()).date()))
    db.session.commit()
    second = services.register_case(_intake(), user("clerk1"))
    assert first.firm_id != other.id and second.firm_id == other.id
