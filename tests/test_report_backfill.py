"""Migration 0006 rebuilds the report facts from the event trail: the same rows the services record live."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from app.cases import services
from app.cases.models import FollowUp
from app.core.timeutil import app_tz
from app.extensions import db
from app.reports.models import ActionFact, StepFact
from app.sla import services as sla
from tests.factories import load, make_case, user

MIGRATION = Path(__file__).resolve().parent.parent / "migrations" / "versions" / "0006_report_facts.py"
TZ = app_tz()
STEP_FIELDS = (
    "case_id",
    "state",
    "party",
    "entered_at",
    "entered_trigger",
    "left_at",
    "left_trigger",
    "kind",
    "timed",
    "on_time",
    "max_level",
    "working_minutes",
    "paused_minutes",
    "firm_id",
    "grid_worker_id",
    "resolution",
    "handling_minutes",
    "case_on_time",
    "sent_back",
    "street_id",
    "community_id",
    "category_id",
    "intake_channel",
)
ACTION_FIELDS = ("case_id", "kind", "at", "state", "party", "firm_id", "ended_at", "actor_id")
FOLLOW_UP_FIELDS = ("id", "street_id", "community_id", "grid_id", "firm_id", "party", "category_id", "intake_channel")


def _migration():
    spec = importlib.util.spec_from_file_location("migration_0006", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _snapshot(model, fields, order):
    rows = db.session.scalars(select(model).order_by(*order)).all()
    return [tuple(getattr(r, f) for f in fields) for r in rows]


def at(day, hour=10):
    return datetime(2026, 11, day, hour, 0, tzinfo=TZ)


def test_backfill_reproduces_the_live_facts(ctx):
    start = at(10)
    # a spread of histories: every state, a hold, a send-back, a reassignment, cards, an urge, a shelving
    refs = {state: make_case(state, now=start) for state in ("grid_assigned", "branch_review", "on_hold", "closed")}
    held = make_case("firm_processing", now=start)
    for trigger, who, when, inputs in (
        ("hold", "firm1", at(11), {"reason": "waiting_parts", "note": "等配件"}),
        ("resume", "firm1", at(16), {}),
        ("firm_complete", "firm1", at(16, 15), {"result": "done"}),
        ("signoff", "grid1", at(17), {"contacted": True, "resolved": False, "satisfaction": "unsatisfied"}),
        ("firm_complete", "firm1", at(18), {"result": "done again"}),
        ("signoff", "clerk1", at(18, 15), {"contacted": True, "resolved": True, "satisfaction": "basic"}),
    ):
        services.fire(load(held), trigger, user(who), inputs=inputs, now=when)
    moved = make_case("firm_dispatched", now=start)
    services.reassign(load(moved), user("street1"), firm="F02", note="换物业", now=at(11, 9))
    services.fire(load(moved), "firm_accept", user("firm2"), now=at(11, 10))
    on_site = make_case("grid_handling", now=start, category="noise")
    services.fire(load(on_site), "resolve_on_site", user("grid1"), inputs={"result": "已劝导"}, now=at(10, 11))
    late = make_case("firm_processing", now=start, compound="X05")
    db.session.commit()
    sla.run_sweep(now=at(16, 9))
    sla.urge(load(late), user("street1"), "加快", now=at(16, 10))
    sla.shelve(load(late), user("street1"), "等资金", at(16, 9) + timedelta(days=20), now=at(16, 11))
    sla.unshelve(load(late), user("street1"), now=at(18, 9))
    sla.shelve(load(refs["on_hold"]), user("supervisor1"), "等资金", at(30), now=at(17, 9))
    services.fire(load(late), "firm_complete", user("firm2"), inputs={"result": "ok"}, now=at(18, 11))
    db.session.commit()

    live_steps = _snapshot(StepFact, STEP_FIELDS, (StepFact.case_id, StepFact.id))
    live_actions = _snapshot(ActionFact, ACTION_FIELDS, (ActionFact.case_id, ActionFact.id))
    live_follow_ups = _snapshot(FollowUp, FOLLOW_UP_FIELDS, (FollowUp.id,))
    assert len(live_steps) > 30 and {a[1] for a in live_actions} == {"yellow", "red", "urge", "shelve"}

    db.session.execute(delete(StepFact))
    db.session.execute(delete(ActionFact))
    db.session.execute(update(FollowUp).values(street_id=None, firm_id=None, party=None, intake_channel=None))
    _migration().backfill_facts(db.session.connection())
    db.session.expire_all()

    assert _snapshot(StepFact, STEP_FIELDS, (StepFact.case_id, StepFact.id)) == live_steps
    assert _snapshot(ActionFact, ACTION_FIELDS, (ActionFact.case_id, ActionFact.id)) == live_actions
    assert _snapshot(FollowUp, FOLLOW_UP_FIELDS, (FollowUp.id,)) == live_follow_ups
