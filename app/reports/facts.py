"""Recording the facts behind the figures, at the moment they happen.

Called by the services that change cases (intake, ``fire``, reassignment, urging, shelving, the sweep),
so the web, the API, Open311, the CLI and the scheduler all leave the same facts. This module is a lower
layer: it imports the case models, never the case or timer services.

Rules decided here, once:

- **party** of a step: who must move — ``grid`` (grid_assigned, grid_handling), ``branch`` (branch_review),
  ``firm`` (firm_dispatched, firm_processing; on hold is part of the firm's processing step, paused),
  ``resident`` (awaiting_signoff), ``system`` (registered, closed).
- **kind** of a step for the on-time figures: ``accept`` (grid_assigned, firm_dispatched — 签收) or
  ``handle`` (grid_handling, branch_review, firm_processing — 办结).
- **timed**: a step counts in its on-time figure when the responsible party ended it itself, or when it
  was already late whatever ended it (a reassignment or a supervisor's act does not excuse lateness, and
  a party taken off a case in time is neither credited nor blamed).
- **firm_id** is set only on facts the firm answers for (see :mod:`app.reports.models`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text, update

from app.cases.models import Case
from app.core import bulk
from app.extensions import db
from app.reports.models import ActionFact, StepFact

PARTY_OF_STATE = {
    "registered": "system",
    "grid_assigned": "grid",
    "grid_handling": "grid",
    "branch_review": "branch",
    "firm_dispatched": "firm",
    "firm_processing": "firm",
    "on_hold": "firm",
    "awaiting_signoff": "resident",
    "closed": "system",
}
KIND_OF_STATE = {
    "grid_assigned": "accept",
    "firm_dispatched": "accept",
    "grid_handling": "handle",
    "branch_review": "handle",
    "firm_processing": "handle",
}
#: triggers by which the responsible party itself ends its step
OWN_TRIGGERS = {
    "grid_assigned": {"grid_accept"},
    "grid_handling": {"resolve_on_site", "dispatch_to_firm", "refer_to_branch", "close_invalid"},
    "branch_review": {"branch_approve", "branch_decline"},
    "firm_dispatched": {"firm_accept", "firm_return"},
    "firm_processing": {"firm_complete"},
}
#: the pause of the firm's processing step: not a new step
PAUSE, RESUME = ("firm_processing", "on_hold"), ("on_hold", "firm_processing")
SLICE_NAMES = (
    "street_id",
    "community_id",
    "compound_id",
    "grid_id",
    "grid_worker_id",
    "firm_id",
    "branch_id",
    "category_id",
    "urgency",
    "intake_channel",
)


def _calendar():
    from app.sla.services import load_calendar  # the timer layer owns the calendar settings

    return load_calendar()


def work_minutes(start: datetime, end: datetime) -> float:
    """Business minutes between two instants on the working calendar (never negative)."""
    return max(0.0, _calendar().business_minutes_between(start, end)) if end > start else 0.0


def firm_answers_for(case: Case, party: str) -> bool:
    """Whether the property firm answers for a fact about ``case`` with this responsible ``party``:
    its own steps, and the resident's sign-off (and the closure after it) of work the firm completed."""
    if party == "firm":
        return True
    return party in ("resident", "closure") and not case.resolved_on_site and case.firm_dispatched_at is not None


def slice_of(case: Case, party: str) -> dict[str, Any]:
    """The slice columns of a fact about ``case`` now, for the responsible ``party``."""
    return {
        "street_id": case.street_id,
        "community_id": case.community_id,
        "compound_id": case.compound_id,
        "grid_id": case.grid_id,
        "grid_worker_id": case.assigned_grid_worker_id,
        "firm_id": case.firm_id if firm_answers_for(case, party) else None,
        "branch_id": case.branch_id,
        "category_id": case.category_id,
        "urgency": case.urgency,
        "intake_channel": case.channel,
    }


# ------------------------------------------------------------------------------------------- steps


def open_step_of(case: Case) -> StepFact | None:
    """The step row the case is in now (kept on the instance to save a query within a request)."""
    cached = case.__dict__.get("_open_step")
    if cached is not None and cached.left_at is None:
        return cached
    step = db.session.scalar(
        select(StepFact).where(StepFact.case_id == case.id, StepFact.left_at.is_(None)).order_by(StepFact.id.desc())
    )
    case.__dict__["_open_step"] = step
    return step


def enter_step(case: Case, trigger: str | None, now: datetime, source: str | None = None) -> StepFact:
    """Open the step of the case's current state (after its timers were set). A closure after the
    resident's sign-off (or its auto-close) judges whoever completed the work."""
    state = "firm_processing" if case.state == "on_hold" else case.state
    party = PARTY_OF_STATE.get(state, "system")
    judged = "closure" if state == "closed" and source == "awaiting_signoff" else party
    step = bulk.new(
        StepFact,
        case_id=case.id,
        state=state,
        party=party,
        entered_at=now,
        entered_trigger=trigger,
        due_at=case.due_at,
        kind=KIND_OF_STATE.get(state),
        max_level=0,
        paused_minutes=0.0,
        # every column given, so the steps a request opens share one multi-row INSERT
        left_at=None,
        left_trigger=None,
        timed=False,
        on_time=None,
        working_minutes=None,
        paused_since=None,
        resolution=None,
        handling_minutes=None,
        case_on_time=None,
        sent_back=False,
        **slice_of(case, judged),
    )
    if state == "closed":
        step.resolution = case.resolution
        step.handling_minutes, step.case_on_time = _closure_figures(case, now)
    db.session.add(step)
    case.__dict__["_open_step"] = step
    return step


def _closure_figures(case: Case, now: datetime) -> tuple[float, bool | None]:
    """Handling time of the case until now (working minutes of its steps since registration or the last
    reopen, the resident's sign-off time and paused time excluded) and whether it met its whole-case limit."""
    db.session.flush()
    rows = db.session.execute(
        select(StepFact.state, StepFact.working_minutes).where(StepFact.case_id == case.id).order_by(StepFact.id)
    ).all()
    minutes = 0.0
    for state, used in rows:
        if state == "closed":
            minutes = 0.0  # a reopened case: count from the reopen
        elif state != "awaiting_signoff":
            minutes += used or 0.0
    on_time = None
    if case.resolve_by is not None:
        on_time = not case.case_overdue and (case.paused_at is not None or now <= case.resolve_by)
    return round(minutes, 2), on_time


def leave_step(case: Case, trigger: str, now: datetime) -> StepFact | None:
    """Close the current step (before the case's state and timers change): deadline, on-time, level, time."""
    step = open_step_of(case)
    if step is None:
        return None
    paused = step.paused_minutes or 0.0
    if step.paused_since is not None:
        paused += work_minutes(step.paused_since, now)
        step.paused_since = None
    step.left_at = now
    step.left_trigger = trigger
    step.paused_minutes = round(paused, 2)
    step.working_minutes = round(max(0.0, work_minutes(step.entered_at, now) - paused), 2)
    step.max_level = max(step.max_level or 0, case.escalation_level or 0)
    if case.paused_at is not None:
        step.on_time = (case.paused_step_minutes >= 0) if case.paused_step_minutes is not None else None
    elif case.due_at is not None:
        step.due_at = case.due_at
        step.on_time = now <= case.due_at
    else:
        step.on_time = None
    own = trigger in OWN_TRIGGERS.get(step.state, ())
    step.timed = step.kind is not None and step.on_time is not None and (own or step.on_time is False)
    case.__dict__["_open_step"] = None
    return step


def pause_step(case: Case, now: datetime) -> None:
    """The step's clock stops (on hold, shelved)."""
    step = open_step_of(case)
    if step is not None and step.paused_since is None:
        step.paused_since = now


def resume_step(case: Case, now: datetime) -> None:
    """The step's clock runs again: the pause is added up, the deadline follows the case's new one."""
    step = open_step_of(case)
    if step is None or step.paused_since is None:
        return
    step.paused_minutes = round((step.paused_minutes or 0.0) + work_minutes(step.paused_since, now), 2)
    step.paused_since = None
    step.due_at = case.due_at


def on_transition(case: Case, source: str, trigger: str, now: datetime) -> None:
    """After a transition has set the case's new state and timers: open the next step (or pause/resume)."""
    if (source, case.state) == PAUSE:
        pause_step(case, now)
    elif (source, case.state) == RESUME:
        resume_step(case, now)
    else:
        enter_step(case, trigger, now, source)


def leave_for_reassignment(case: Case, now: datetime) -> datetime | None:
    """A reassignment is about to change who handles the current step: the old party's step ends here,
    judged against the deadline it had. Returns when its clock had stopped (None: running)."""
    if case.state == "closed":
        return None
    old = open_step_of(case)
    paused_since = old.paused_since if old is not None else None
    leave_step(case, "reassign", now)
    return paused_since


def enter_after_reassignment(case: Case, now: datetime, paused_since: datetime | None) -> None:
    """The new party's step starts (after its timers were set), paused if the old one was."""
    if case.state == "closed":
        return
    new = enter_step(case, "reassign", now)
    if paused_since is not None:
        new.paused_since = now


def before_leaving(case: Case, trigger: str, source: str, dest: str, now: datetime) -> StepFact | None:
    """Called by ``fire`` before the state changes: ends the step (returned) unless this is a pause or resume."""
    if (source, dest) in (PAUSE, RESUME):
        return None
    return leave_step(case, trigger, now)


def mark_sent_back(step: StepFact | None) -> None:
    if step is not None:
        step.sent_back = True


# ----------------------------------------------------------------------------------------- actions


def record_action(case: Case, kind: str, now: datetime, *, actor_id: int | None = None) -> ActionFact:
    """An urge or a shelving, against whoever handles the case now."""
    party = PARTY_OF_STATE.get(case.state, "system")
    row = ActionFact(
        case_id=case.id,
        kind=kind,
        at=now,
        state=case.state,
        party=party,
        actor_id=actor_id,
        due_at=case.due_at,
        **slice_of(case, party),
    )
    db.session.add(row)
    return row


def end_shelving(case: Case, now: datetime) -> None:
    """The case comes off the shelf: its shelving fact gets its end."""
    db.session.execute(
        update(ActionFact)
        .where(ActionFact.case_id == case.id, ActionFact.kind == "shelve", ActionFact.ended_at.is_(None))
        .values(ended_at=now)
    )


def card_rows(row, level: int, now: datetime) -> dict[str, Any]:
    """A yellow/red card row for the sweep's set-based insert (``row`` has the sweep's columns)."""
    party = PARTY_OF_STATE.get(row.state, "system")
    return {
        "case_id": row.id,
        "kind": "yellow" if level == 2 else "red",
        "at": now,
        "state": row.state,
        "party": party,
        "actor_id": None,
        "due_at": row.due_at,
        "ended_at": None,
        "street_id": row.street_id,
        "community_id": row.community_id,
        "compound_id": row.compound_id,
        "grid_id": row.grid_id,
        "grid_worker_id": row.assigned_grid_worker_id,
        "firm_id": row.firm_id if party == "firm" else None,
        "branch_id": row.branch_id,
        "category_id": row.category_id,
        "urgency": row.urgency,
        "intake_channel": row.channel,
    }


def raise_step_levels(levels: dict[int, int]) -> None:
    """The sweep raised these cases' escalation levels: the open steps remember the highest level."""
    if not levels:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text(
                "UPDATE fact_step SET max_level = v.level FROM unnest(CAST(:cases AS integer[]), "
                "CAST(:levels AS integer[])) AS v(case_id, level) WHERE fact_step.case_id = v.case_id "
                "AND fact_step.left_at IS NULL AND fact_step.max_level < v.level"
            ),
            {"cases": list(levels), "levels": list(levels.values())},
        )
        return
    table = StepFact.__table__
    db.session.execute(
        update(table)
        .where(
            table.c.case_id == bindparam("b_case"),
            table.c.left_at.is_(None),
            table.c.max_level < bindparam("b_level"),
        )
        .values(max_level=bindparam("b_level")),
        [{"b_case": case_id, "b_level": level} for case_id, level in levels.items()],
    )


# ---------------------------------------------------------------------------------------- follow-ups


def follow_up_slice(case: Case) -> dict[str, Any]:
    """Slice columns of a follow-up: the resident judges whoever completed the work."""
    return {**slice_of(case, "resident"), "party": "firm" if firm_answers_for(case, "resident") else "grid"}
