"""An intake's rows written as one statement (``app.core.bulk.write_new``, PostgreSQL): the same rows as the
unit of work would write, persistent afterwards, and a fall back to the unit of work whenever the session
holds anything it does not handle."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.cases import services
from app.cases.models import Case, CaseEvent
from app.core import bulk
from app.core.timeutil import utcnow
from app.extensions import db
from app.notify.models import Notification, OutboundMessage
from app.reports.models import StepFact
from tests.conftest import IS_POSTGRES
from tests.factories import user

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL (set TEST_DATABASE_URL)")

SKIP = {"id", "case_id", "ref", "signoff_token", "created_at", "updated_at", "state_entered_at", "entered_at"}
SKIP |= {"left_at", "next_attempt_at", "params", "payload"}


def _intake(phone="13912340000"):
    return services.Intake(
        category="water_leak",
        description="5栋地下室漏水",
        compound="X01",
        building="5栋",
        resident_name="林女士",
        resident_phone=phone,
        channel="phone",
    )


def _rows(case_id: int) -> dict:
    def plain(obj):
        return {c.name: getattr(obj, c.key) for c in obj.__mapper__.columns if c.name not in SKIP}

    db.session.expire_all()
    return {
        "case": plain(db.session.get(Case, case_id)),
        "events": [plain(e) for e in db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))],
        "steps": [
            plain(s)
            for s in db.session.scalars(select(StepFact).where(StepFact.case_id == case_id).order_by(StepFact.id))
        ],
        "messages": [
            plain(m) for m in db.session.scalars(select(OutboundMessage).where(OutboundMessage.case_id == case_id))
        ],
        "notifications": [
            {k: v for k, v in plain(n).items() if k != "title"}  # the title names the case's own reference
            for n in db.session.scalars(select(Notification).where(Notification.case_id == case_id))
        ],
    }


def test_one_statement_writes_what_the_unit_of_work_writes(ctx, monkeypatch):
    clerk = user("clerk1")
    # the same instant for both: in working hours a deadline is the intake's instant plus working time, so
    # two intakes a few milliseconds apart would differ in every deadline (outside them, both start at the
    # next working morning)
    now = utcnow()
    fast = services.register_case(_intake(), clerk, now=now)
    assert fast in db.session and not db.session.new  # persistent, nothing left to insert
    db.session.commit()  # commits without a second INSERT (a duplicate key would raise)
    monkeypatch.setattr(bulk, "write_new", lambda *args, **kwargs: False)
    slow = services.register_case(_intake(), clerk, now=now)
    db.session.commit()
    assert fast.id != slow.id
    one, other = _rows(fast.id), _rows(slow.id)
    assert len(one["events"]) == 2 and len(one["steps"]) == 2 and len(one["messages"]) == 1
    # the grid worker's notification, written in the same statement (the unit of work's path: after the flush)
    assert [(n["user_id"], n["kind"]) for n in one["notifications"]] == [(user("grid1").id, "new_work")]
    assert one == other
    assert db.session.get(Case, fast.id).version == 1 and db.session.get(Case, fast.id).state == "grid_assigned"


def test_the_written_case_changes_like_any_other(ctx):
    case = services.register_case(_intake(), user("clerk1"))
    db.session.commit()
    services.fire(case, "grid_accept", user("grid1"))
    db.session.commit()
    db.session.expire_all()
    again = db.session.get(Case, case.id)
    assert again.state == "grid_handling" and again.version == 2  # the optimistic lock counts from 1


def test_falls_back_when_the_session_holds_something_else(ctx):
    clerk = user("clerk1")
    clerk.display_name = clerk.display_name + " "  # a changed instance: not an intake's rows only
    event = CaseEvent(case_id=None, kind="note", actor_role="clerk", actor_name="x")
    db.session.add(event)
    assert bulk.write_new((Case, CaseEvent), bulk.IdPool({"case_event": [1]})) is False
    assert event in db.session.new and event.id is None  # nothing written, nothing taken
    db.session.rollback()


def test_falls_back_when_an_id_is_missing(ctx):
    event = CaseEvent(case_id=None, kind="note", actor_role="clerk", actor_name="x")
    db.session.add(event)
    assert bulk.write_new((CaseEvent,), bulk.IdPool({})) is False
    assert event in db.session.new
    db.session.rollback()


def test_a_refused_write_is_sqlalchemys_integrity_error_and_writes_nothing(ctx):
    """The hotline importer tells a work order imported twice at the same moment by catching SQLAlchemy's
    IntegrityError: the one statement, sent past SQLAlchemy's compiler, must still raise it, and leave no row."""
    from sqlalchemy import func
    from sqlalchemy.exc import IntegrityError

    clerk = user("clerk1")
    first = services.Intake(**{**_intake().__dict__, "external_ref": "12345:W-1"})
    services.register_case(first, clerk)
    db.session.commit()
    cases_before = db.session.scalar(select(func.count()).select_from(Case))
    steps_before = db.session.scalar(select(func.count()).select_from(StepFact))
    with pytest.raises(IntegrityError, match="uq_case_external_ref"):
        with db.session.begin_nested():
            services.register_case(services.Intake(**{**_intake().__dict__, "external_ref": "12345:W-1"}), clerk)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Case)) == cases_before
    assert db.session.scalar(select(func.count()).select_from(StepFact)) == steps_before


def test_the_one_statement_is_seen_by_the_engines_events(ctx, monkeypatch):
    """Statement counts (tests/test_intake_cost.py) and query logs listen to the engine: the write is not hidden.
    The notification goes with it: no COPY (which the engine's events would not see), counted at the driver."""
    import psycopg
    from sqlalchemy import event

    seen, copies = [], []
    copy = psycopg.Cursor.copy

    def counted_copy(cursor, statement, *args, **kwargs):
        copies.append(statement)
        return copy(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", counted_copy)

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        case = services.register_case(_intake(), user("clerk1"))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    writes = [(statement, parameters) for statement, parameters in seen if statement.startswith("WITH w_case AS")]
    assert len(writes) == 1
    statement, parameters = writes[0]
    assert '"case_event"' in statement and '"fact_step"' in statement and "$1," in statement
    assert '"notification"' in statement  # the grid worker's, staged by the notification service
    assert copies == []
    assert case.ref in parameters and case.id in parameters
    db.session.rollback()


def _note(kind: str) -> dict:
    return {
        "user_id": user("grid1").id,
        "case_id": None,
        "kind": kind,
        "title": "t",
        "body": None,
        "created_at": utcnow(),
    }


def _count(kind: str) -> int:
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(Notification).where(Notification.kind == kind))


def test_rows_staged_but_not_taken_by_a_write_are_inserted_when_staging_ends(ctx):
    with bulk.staging():
        ids = bulk.insert_rows(Notification, [_note("staged"), _note("staged")], return_ids=True)
        assert len(set(ids)) == 2 and _count("staged") == 0  # waiting for the write, ids already taken
    assert _count("staged") == 2
    assert sorted(db.session.scalars(select(Notification.id).where(Notification.kind == "staged"))) == sorted(ids)
    db.session.rollback()


def test_staged_rows_are_dropped_with_a_failed_intake(ctx):
    with pytest.raises(RuntimeError), bulk.staging():
        bulk.insert_rows(Notification, [_note("dropped")])
        raise RuntimeError("the intake failed")
    assert _count("dropped") == 0 and bulk._STAGED not in db.session.info  # nothing left for the next one
    with bulk.staging():  # an intake inside an outer staging (an importer's loop) that fails and is caught
        bulk.insert_rows(Notification, [_note("kept")])
        with pytest.raises(RuntimeError), bulk.staging():
            bulk.insert_rows(Notification, [_note("dropped")])
            raise RuntimeError("this row of the import failed")
        assert [kind for _model, rows in db.session.info[bulk._STAGED] for kind in (r["kind"] for r in rows)] == [
            "kept"
        ]
    assert _count("kept") == 1 and _count("dropped") == 0
    db.session.rollback()


def test_the_copy_counter_sees_a_copy(ctx, monkeypatch):
    """The check above can fail: a notification written outside an intake goes by COPY, and is counted."""
    import psycopg

    from app.notify import services as notify

    copies = []
    copy = psycopg.Cursor.copy
    monkeypatch.setattr(
        psycopg.Cursor,
        "copy",
        lambda cursor, statement, *a, **k: copies.append(statement) or copy(cursor, statement, *a, **k),
    )
    notify.notify([user("grid1")], "test", lambda: ("标题", "内容"))
    assert len(copies) == 1 and "notification" in copies[0]
    db.session.rollback()
