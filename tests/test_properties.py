"""Property-based tests (hypothesis) of the intake, transition and sign-off services.

Whatever the input, a service either does its work completely or refuses with a :class:`DomainError`
and leaves nothing behind — never another exception, never half a case. Text excludes control
characters: the edge refuses them before any service runs (``app/core/hygiene.py``,
``tests/test_trust_input.py``). Bounded: a few dozen examples each, no deadline per example.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.cases import services
from app.cases.models import Case, CaseEvent, FollowUp
from app.core.errors import DomainError
from app.extensions import db
from tests.factories import load, make_case, user
from workflows import TRIGGERS

BOUNDED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
#: what people type: Chinese, Latin, digits, punctuation, emoji — no control characters
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x00"), max_size=120)
PHONES = st.one_of(
    st.just("13812345678"),
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    st.text(alphabet=string.digits + " -+", max_size=16),
    TEXT,
    st.none(),
)
USERS = ["clerk1", "grid1", "firm1", "firm2", "branch1", "supervisor1", "street1", "admin"]


def _counts():
    return (
        db.session.scalar(select(func.count(Case.id))),
        db.session.scalar(select(func.count(CaseEvent.id))),
        db.session.scalar(select(func.count(FollowUp.id))),
    )


VALID_INTAKE = {
    "category": "water_leak",
    "description": "楼道水管漏水，地面积水",
    "channel": "window",
    "compound": "X01",
    "building": None,
    "unit": "3-201",
    "urgency": None,
    "resident_name": "陈先生",
    "resident_phone": "13812345678",
}
ODD_VALUES = {
    "category": st.one_of(st.sampled_from(["lift_entrapment", "garbage", "maintenance_fund", "nope"]), TEXT),
    "description": TEXT,
    "channel": st.one_of(st.sampled_from(["phone", "grid", "open311"]), TEXT),
    "compound": st.one_of(st.sampled_from(["X05", "X10", "x01"]), TEXT, st.integers(-5, 10**12)),
    "building": st.one_of(TEXT, st.integers(-5, 10**12)),
    "unit": st.one_of(st.none(), TEXT),
    "urgency": st.one_of(st.sampled_from(["normal", "urgent"]), TEXT),
    "resident_name": st.one_of(st.none(), TEXT),
    "resident_phone": PHONES,
}


@BOUNDED
@given(
    changes=st.dictionaries(st.sampled_from(sorted(ODD_VALUES)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({key: ODD_VALUES[key] for key in keys})
    ),
    clerk=st.sampled_from(["clerk1", "grid1", "supervisor1", "street1", "admin", "firm1", "branch1"]),
)
def test_intake_registers_a_whole_case_or_nothing(ctx, changes, clerk):
    """A valid intake with up to four fields replaced by odd values, by any user."""
    before = _counts()
    intake = services.Intake(**{**VALID_INTAKE, **changes})
    try:
        case = services.register_case(intake, user(clerk))
        db.session.flush()
    except DomainError:
        event("refused")
        db.session.rollback()
        assert _counts() == before
        return
    event("registered")
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
    assert case.ref and case.state in ("registered", "grid_assigned")
    assert events and events[0].kind == "created"
    assert case.resident_phone is None or case.resident_phone_last4 == case.resident_phone[-4:]
    db.session.rollback()


def good_inputs(trigger: str, draw) -> dict:
    """Inputs a trigger accepts (choices drawn among the allowed values)."""
    inputs = {}
    for spec in TRIGGERS[trigger].inputs:
        if spec.kind == "choice" and spec.choices:
            inputs[spec.name] = draw(st.sampled_from([code for code, _zh, _en in spec.choices]))
        elif spec.kind == "bool":
            inputs[spec.name] = draw(st.booleans())
        elif spec.kind == "text":
            inputs[spec.name] = draw(st.sampled_from(["已核实，安排处理", "等待配件到货", "居民不在家"]))
    return inputs


ODD_INPUTS = st.dictionaries(
    st.sampled_from(["note", "reason", "result", "contacted", "resolved", "satisfaction", "comment", "x"]),
    st.one_of(TEXT, st.booleans(), st.integers(), st.sampled_from(["satisfied", "basic", "unsatisfied", "duplicate"])),
    max_size=4,
)


@BOUNDED
@given(
    start=st.sampled_from(["grid_assigned", "grid_handling", "firm_processing", "awaiting_signoff", "branch_review"]),
    data=st.data(),
)
def test_transitions_change_state_only_with_an_event(ctx, start, data):
    """Up to six actions, each by any user, mostly ones the user is offered, with good or odd inputs."""
    category = "maintenance_fund" if start == "branch_review" else "water_leak"
    ref = make_case(start, category=category)
    case = load(ref)
    for _step in range(data.draw(st.integers(1, 6))):
        username = data.draw(st.sampled_from(USERS))
        offered = services.allowed_triggers(user(username), case)
        if offered and data.draw(st.integers(0, 3)) > 0:
            trigger = data.draw(st.sampled_from(offered))
        else:
            trigger = data.draw(st.sampled_from(sorted(TRIGGERS)))
        inputs = good_inputs(trigger, data.draw) if data.draw(st.booleans()) else data.draw(ODD_INPUTS)
        state = case.state
        events = db.session.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.case_id == case.id))
        try:
            row = services.fire(case, trigger, user(username), inputs=inputs)
            db.session.commit()  # a savepoint of the test's transaction
        except DomainError:
            event("refused")
            db.session.rollback()
            case = load(ref)
            assert case.state == state, "a refused trigger leaves the state alone"
            after = db.session.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.case_id == case.id))
            assert after == events, "and writes no event"
            continue
        event("fired")
        assert row.trigger == trigger and row.from_state == state and row.to_state == case.state
    last = db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.to_state.is_not(None)).order_by(CaseEvent.id)
    ).all()[-1]
    assert last.to_state == case.state


SIGNOFF_VALUES = {
    "contacted": st.sampled_from(["yes", "no", "", "maybe", "1"]),
    "resolved": st.sampled_from(["yes", "no", "", "true"]),
    "satisfaction": st.sampled_from(["satisfied", "basic", "unsatisfied", "", "very"]),
    "comment": st.one_of(st.none(), TEXT),
    "extra": TEXT,
}


@BOUNDED
@given(
    inputs=st.dictionaries(st.sampled_from(sorted(SIGNOFF_VALUES)), st.none(), min_size=0, max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({key: SIGNOFF_VALUES[key] for key in keys})
    )
)
def test_resident_signoff_records_one_follow_up_or_nothing(ctx, inputs):
    ref = make_case("awaiting_signoff")
    case = load(ref)
    token, before = case.signoff_token, _counts()
    try:
        services.resident_signoff(token, inputs)
        db.session.commit()
    except DomainError:
        event("refused")
        db.session.rollback()
        assert _counts() == before and load(ref).state == "awaiting_signoff"
        return
    event("signed off")
    case = load(ref)
    follow_ups = db.session.scalars(select(FollowUp).where(FollowUp.case_id == case.id)).all()
    assert len(follow_ups) == 1
    assert case.state in ("closed", "firm_processing", "grid_handling")
    assert follow_ups[0].satisfaction in ("satisfied", "basic", "unsatisfied")
