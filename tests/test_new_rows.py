"""New rows built without the constructor's attribute events (``bulk.new``), the fast write's hand-over to the
session, and the locale objects ``force_locale`` reuses (issue 12: the intake's Python time)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from app.cases import services
from app.cases.models import Case, CaseEvent
from app.core import bulk
from app.core.i18n import force_locale, is_english
from app.core.timeutil import utcnow
from app.extensions import db
from tests.factories import user


def _event_values(case_id: int) -> dict:
    return {
        "case_id": case_id,
        "created_at": utcnow(),
        "kind": "note",
        "actor_id": None,
        "actor_role": "clerk",
        "actor_name": "周",
        "note": "回访",
        "payload": {"a": [1, 2]},
    }


def _intake() -> services.Intake:
    return services.Intake(
        category="water_leak",
        description="地下室漏水",
        compound="X01",
        resident_name="林女士",
        resident_phone="13912340000",
        channel="phone",
    )


def _some_case() -> Case:
    return db.session.scalars(select(Case).order_by(Case.id)).first() or services.register_case(
        _intake(), user("clerk1")
    )


def test_new_refuses_an_unknown_name_as_the_constructor_does(ctx):
    with pytest.raises(TypeError, match="'colour' is an invalid keyword argument for CaseEvent"):
        bulk.new(CaseEvent, kind="note", colour="red")
    with pytest.raises(TypeError):
        CaseEvent(kind="note", colour="red")
    # a relationship is not a column value: refused, not silently ignored
    with pytest.raises(TypeError, match="'case'"):
        bulk.new(CaseEvent, kind="note", case=None)


def test_a_new_row_is_inserted_like_a_constructed_one(ctx):
    case = _some_case()
    db.session.flush()
    values = _event_values(case.id)
    fast, slow = bulk.new(CaseEvent, **values), CaseEvent(**values)
    assert inspect(fast).transient and fast.note == "回访" and fast.id is None
    db.session.add_all([fast, slow])
    db.session.flush()  # the unit of work reads the new instance's dict
    assert fast.id is not None and fast.id != slow.id
    db.session.commit()
    db.session.expire_all()
    columns = [c.key for c in CaseEvent.__mapper__.column_attrs if c.key != "id"]
    one, other = db.session.get(CaseEvent, fast.id), db.session.get(CaseEvent, slow.id)
    assert {k: getattr(one, k) for k in columns} == {k: getattr(other, k) for k in columns}
    assert one.payload == {"a": [1, 2]}


def test_a_new_row_changed_before_its_insert_is_written_as_changed(ctx):
    case = _some_case()
    db.session.flush()
    event = bulk.new(CaseEvent, **_event_values(case.id))
    db.session.add(event)
    event.note = "改过"
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(CaseEvent, event.id).note == "改过"


def test_an_intake_rolled_back_leaves_nothing_in_the_session(ctx):
    """The one-statement write hands its rows to the session as a flush does: a rollback forgets them (and a
    later flush does not try to write them again)."""
    clerk = user("clerk1")
    case = services.register_case(_intake(), clerk)
    assert case in db.session and not db.session.new
    case_id = case.id
    db.session.rollback()
    assert case not in db.session
    assert db.session.get(Case, case_id) is None
    db.session.flush()  # nothing pending
    assert inspect(case).transient  # its insert was undone: it is new again, as after a flush's rollback


def test_force_locale_reuses_one_locale_object_per_name(app):
    with app.test_request_context("/"):
        with force_locale("en") as _nothing:
            from flask_babel import get_locale

            first = get_locale()
            assert is_english()
        with force_locale("en"):
            assert get_locale() is first  # parsed once per process, not on every call
        with force_locale("zh_Hans_CN"):
            assert str(get_locale()) == "zh_Hans_CN" and not is_english()
            from flask_babel import gettext

            assert gettext("Choose a compound in your area.") != "Choose a compound in your area."
        with force_locale("en"):
            assert is_english()
