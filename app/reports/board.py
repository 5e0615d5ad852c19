"""The supervisors' overdue board: what is late or about to be, grouped; stuck and shelved cases;
extension requests to decide; bulk urging.

Every query is limited by :func:`app.auth.permissions.scope_clause` and served by a partial index on
the case table (escalated, open-by-last-update, shelved, pending extensions), so the board costs the
same at a thousand cases as at a million.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.auth import roles
from app.auth.models import User
from app.auth.permissions import scope_clause
from app.cases.models import Case
from app.cases.queries import COUNT_CAP
from app.core.errors import DomainError, ValidationError
from app.core.timeutil import utcnow
from app.extensions import db
from app.org.models import Compound, PropertyFirm
from app.sla.models import ExtensionRequest

BOARD_ROLES = (roles.SUPERVISOR, roles.ADMIN)
LIST_LIMIT = 200
MAX_BULK = 100
GRID_STATES = ("registered", "grid_assigned", "grid_handling", "awaiting_signoff")
FIRM_STATES = ("firm_dispatched", "firm_processing", "on_hold")


def can_see_board(user) -> bool:
    return getattr(user, "role", None) in BOARD_ROLES


def stuck_days() -> int:
    return int(current_app.config.get("STUCK_WORKING_DAYS") or 3) if has_app_context() else 3


def stuck_since(now: datetime, days: int) -> datetime:
    """The instant ``days`` working days before ``now`` on the working calendar."""
    from app.sla.services import load_calendar

    calendar = load_calendar()
    per_day = sum((end.hour * 60 + end.minute) - (start.hour * 60 + start.minute) for start, end in calendar.periods)
    return calendar.add_business_minutes(now, -days * per_day)


@dataclass
class Group:
    key: Any
    label: str
    count: int
    link: dict[str, Any] = field(default_factory=dict)


@dataclass
class Board:
    now: datetime
    overdue: list[Case]
    near: list[Case]
    counts: dict[str, int]
    by_level: list[Group]
    by_handler: list[Group]
    by_compound: list[Group]
    stuck: list[Case]
    stuck_days: int
    shelved: list[Case]
    extensions: list[ExtensionRequest]


def _cases(query) -> list[Case]:
    return list(
        db.session.scalars(
            query.options(
                selectinload(Case.category),
                selectinload(Case.compound),
                selectinload(Case.assigned_grid_worker),
                selectinload(Case.firm),
            )
        )
    )


def escalated_clause(user):
    """Open cases with a warning or a card, in ``user``'s scope."""
    return scope_clause(user, Case) & (Case.escalation_level > 0) & (Case.state != "closed")


def overdue_count(user, cap: int = COUNT_CAP) -> int:
    """Cases in ``user``'s scope past their deadline (yellow or red card), counted up to ``cap``: the
    navigation's badge ("99+"), a short index range scan on every page however large the scope."""
    if not can_see_board(user):
        return 0
    overdue = (
        select(Case.id)
        .where(scope_clause(user, Case), Case.escalation_level >= 2, Case.state != "closed")
        .limit(cap)
        .subquery()
    )
    return int(db.session.scalar(select(func.count()).select_from(overdue)) or 0)


def build(user, now: datetime | None = None) -> Board:
    """Everything the board shows for ``user``. Raises :class:`DomainError` for users without a board."""
    if not can_see_board(user):
        raise DomainError(_("The overdue board is for supervisors."), code="forbidden")
    now = now or utcnow()
    escalated = escalated_clause(user)
    overdue = _cases(
        select(Case).where(escalated, Case.escalation_level >= 2).order_by(Case.due_at, Case.id).limit(LIST_LIMIT)
    )
    near = _cases(
        select(Case).where(escalated, Case.escalation_level == 1).order_by(Case.due_at, Case.id).limit(LIST_LIMIT)
    )
    level_counts = {
        level: count
        for level, count in db.session.execute(
            select(Case.escalation_level, func.count()).where(escalated).group_by(Case.escalation_level)
        )
    }
    counts = {
        "near": level_counts.get(1, 0),
        "yellow": level_counts.get(2, 0),
        "red": level_counts.get(3, 0),
    }
    counts["overdue"] = counts["yellow"] + counts["red"]

    by_level = [
        Group(3, _("Red card: long overdue"), counts["red"], {"escalation_level": 3}),
        Group(2, _("Yellow card: overdue"), counts["yellow"], {"escalation_level": 2}),
        Group(1, _("Warning: near the deadline"), counts["near"], {"escalation_level": 1}),
    ]

    # by handler: the grid worker for grid steps, the firm for firm steps
    workers = db.session.execute(
        select(Case.assigned_grid_worker_id, func.count())
        .where(escalated, Case.state.in_(GRID_STATES))
        .group_by(Case.assigned_grid_worker_id)
    ).all()
    firms = db.session.execute(
        select(Case.firm_id, func.count()).where(escalated, Case.state.in_(FIRM_STATES)).group_by(Case.firm_id)
    ).all()
    branches = db.session.scalar(select(func.count()).where(escalated, Case.state == "branch_review")) or 0
    names = {u.id: u.display_name for u in _by_ids(User, [w for w, _n in workers])}
    firm_names = {f.id: f.name for f in _by_ids(PropertyFirm, [f for f, _n in firms])}
    by_handler = [
        Group(("grid", w), f"{_('Grid worker')} · {names.get(w, _('unassigned'))}", n, {"assigned_to": w} if w else {})
        for w, n in workers
    ] + [Group(("firm", f), f"{_('Property firm')} · {firm_names.get(f, '—')}", n, {"firm": f}) for f, n in firms]
    if branches:
        by_handler.append(Group(("branch", None), _("Party branches"), branches, {"state": "branch_review"}))
    by_handler.sort(key=lambda g: -g.count)

    compounds = db.session.execute(
        select(Case.compound_id, func.count()).where(escalated).group_by(Case.compound_id)
    ).all()
    compound_names = {c.id: c.name for c in _by_ids(Compound, [c for c, _n in compounds])}
    by_compound = sorted(
        (Group(c, compound_names.get(c, _("(no compound)")), n, {"compound_id": c} if c else {}) for c, n in compounds),
        key=lambda g: -g.count,
    )

    days = stuck_days()
    since = stuck_since(now, days)
    stuck = _cases(
        select(Case)
        .where(scope_clause(user, Case), Case.state != "closed", Case.updated_at < since, ~Case.shelved)
        .order_by(Case.updated_at, Case.id)
        .limit(LIST_LIMIT)
    )
    shelved = _cases(
        select(Case)
        .where(scope_clause(user, Case), Case.shelved)  # "shelved", not "IS TRUE": the partial index matches
        .order_by(Case.shelve_review_at, Case.id)
        .limit(LIST_LIMIT)
    )
    extensions = list(
        db.session.scalars(
            select(ExtensionRequest)
            .join(Case, Case.id == ExtensionRequest.case_id)
            .where(ExtensionRequest.status == "pending", scope_clause(user, Case))
            .order_by(ExtensionRequest.requested_at)
            .limit(LIST_LIMIT)
            .options(selectinload(ExtensionRequest.requested_by))
        )
    )
    extension_cases = {c.id: c for c in _by_ids(Case, [e.case_id for e in extensions])}
    for request in extensions:
        request.case = extension_cases.get(request.case_id)
    return Board(
        now=now,
        overdue=overdue,
        near=near,
        counts=counts,
        by_level=by_level,
        by_handler=by_handler,
        by_compound=by_compound,
        stuck=stuck,
        stuck_days=days,
        shelved=shelved,
        extensions=extensions,
    )


def _by_ids(model, ids: Iterable) -> list:
    ids = [i for i in set(ids) if i is not None]
    return list(db.session.scalars(select(model).where(model.id.in_(ids)))) if ids else []


@dataclass
class BulkResult:
    urged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def bulk_urge(user, refs: Iterable[str], note: str, *, now: datetime | None = None) -> BulkResult:
    """Urge several cases with one note (each gets its own event and notification). Cases that cannot be
    urged (closed, outside the area, unknown) are listed with the reason; the others are urged.

    Raises :class:`ValidationError` when no case is chosen, there are too many, or the note is empty.
    """
    from app.cases.services import get_visible_case
    from app.sla.services import urge

    refs = list(dict.fromkeys(r.strip().upper() for r in refs if r and r.strip()))
    if not refs:
        raise ValidationError(_("Tick the cases to urge first."), field="refs")
    if len(refs) > MAX_BULK:
        raise ValidationError(_("At most %(n)d cases at once.", n=MAX_BULK), field="refs")
    note = (note or "").strip()
    if not note:
        raise ValidationError(_("Write what you urge."), field="note")
    result = BulkResult()
    for ref in refs:
        try:
            case = get_visible_case(user, ref)
            with db.session.begin_nested():
                urge(case, user, note, now=now)
        except DomainError as error:
            result.skipped.append((ref, error.message))
        else:
            result.urged.append(ref)
    return result
