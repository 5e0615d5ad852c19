"""Listing cases for a user: scope, filters and keyset pagination (newest first).

A page costs the same at a thousand or a million cases: the scope column, ``created_at`` and ``id``
are one index per scope, and the cursor continues from the last row instead of counting an offset.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from app.auth.permissions import scope_clause
from app.cases.models import URGENCIES, Case, Category
from app.core.errors import ValidationError
from app.core.params import parse_id, reasonable_instant
from app.core.timeutil import parse_instant
from app.extensions import db
from workflows import OPEN_STATES, STATES

MAX_PAGE = 100


@dataclass
class CaseFilters:
    state: str | None = None  # a state name, "open" or "closed"
    category: str | None = None  # code
    compound_id: int | None = None
    urgency: str | None = None
    q: str | None = None  # reference number (or its start)
    needs_routing: bool | None = None
    overdue: bool = False  # yellow or red card
    shelved: bool | None = None
    assigned_to: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    escalation_level: int | None = None
    escalated: bool = False  # a warning or a card
    firm_id: int | None = None
    #: a ``select`` of case ids to keep (the cases behind a figure, see app.reports.drill)
    ids: Any = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> CaseFilters:
        """Read filters from query-string arguments. Raises :class:`ValidationError` for bad ones."""
        filters = cls()
        errors: dict[str, str] = {}
        state = (args.get("state") or "").strip()
        if state:
            if state not in STATES and state not in ("open", "closed"):
                errors["state"] = _("Unknown state %(state)s.", state=state)
            filters.state = state
        filters.category = (args.get("category") or "").strip() or None
        urgency = (args.get("urgency") or "").strip()
        if urgency:
            if urgency not in URGENCIES:
                errors["urgency"] = _("Urgency is normal or urgent.")
            filters.urgency = urgency
        compound = (args.get("compound_id") or args.get("compound") or "").strip()
        if compound:
            filters.compound_id = parse_id(compound)
            if filters.compound_id is None:
                errors["compound_id"] = _("compound_id is a number.")
        filters.q = (args.get("q") or "").strip().upper() or None
        routing = (args.get("needs_routing") or "").strip().lower()
        if routing:
            filters.needs_routing = routing in ("1", "true", "yes", "on")
        filters.overdue = (args.get("overdue") or "").strip().lower() in ("1", "true", "yes", "on")
        filters.escalated = (args.get("escalated") or "").strip().lower() in ("1", "true", "yes", "on")
        level = (args.get("escalation_level") or "").strip()
        if level:
            filters.escalation_level = parse_id(level) if level != "0" else 0
            if filters.escalation_level is None or filters.escalation_level > 3:
                errors["escalation_level"] = _("The escalation level is 0, 1, 2 or 3.")
        firm = (args.get("firm") or "").strip()
        if firm:
            filters.firm_id = parse_id(firm)
            if filters.firm_id is None:
                errors["firm"] = _("firm is a number.")
        shelved = (args.get("shelved") or "").strip().lower()
        if shelved:
            filters.shelved = shelved in ("1", "true", "yes", "on")
        for name in ("created_from", "created_to"):
            value = (args.get(name) or "").strip()
            if value:
                try:
                    instant = parse_instant(value if "T" in value else value + "T00:00:00")
                    if not reasonable_instant(instant):
                        raise ValueError(_("%(value)s is not a date this system handles.", value=value))
                    setattr(filters, name, instant)
                except ValueError as error:
                    errors[name] = str(error)
        if errors:
            raise ValidationError(next(iter(errors.values())), field=next(iter(errors)), details={"fields": errors})
        return filters


def encode_cursor(case: Case) -> str:
    raw = json.dumps([case.created_at.isoformat(), case.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises :class:`ValidationError` for a cursor that was not produced by :func:`encode_cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, case_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created_at, case_id = datetime.fromisoformat(created), parse_id(case_id)
        if created_at.tzinfo is None or not reasonable_instant(created_at) or case_id is None:
            raise ValueError("not one of our cursors")
        return created_at, case_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError, OverflowError):
        raise ValidationError(
            _("This page link is not valid; start again from the first page."), field="cursor"
        ) from None


def list_cases(user, filters: CaseFilters, cursor: str | None = None, limit: int = 25) -> tuple[list[Case], str | None]:
    """One page of the cases ``user`` may see, newest first, and the cursor of the next page."""
    limit = max(1, min(int(limit), MAX_PAGE))
    query = select(Case).where(scope_clause(user, Case))
    if filters.state == "open":
        query = query.where(Case.state.in_(OPEN_STATES))
    elif filters.state:
        query = query.where(Case.state == filters.state)
    if filters.category:
        query = query.join(Category, Category.id == Case.category_id).where(Category.code == filters.category)
    if filters.compound_id:
        query = query.where(Case.compound_id == filters.compound_id)
    if filters.urgency:
        query = query.where(Case.urgency == filters.urgency)
    if filters.q:
        query = query.where(Case.ref.startswith(filters.q, autoescape=True))
    if filters.needs_routing is not None:
        query = query.where(Case.needs_routing.is_(filters.needs_routing))
    if filters.overdue:
        query = query.where(Case.escalation_level >= 2)
    if filters.shelved is not None:
        query = query.where(Case.shelved.is_(filters.shelved))
    if filters.assigned_to:
        query = query.where(Case.assigned_grid_worker_id == filters.assigned_to)
    if filters.escalation_level is not None:
        query = query.where(Case.escalation_level == filters.escalation_level, Case.state != "closed")
    if filters.escalated:
        query = query.where(Case.escalation_level > 0, Case.state != "closed")
    if filters.firm_id:
        query = query.where(Case.firm_id == filters.firm_id)
    if filters.ids is not None:
        query = query.where(Case.id.in_(filters.ids))
    if filters.created_from:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to:
        query = query.where(Case.created_at < filters.created_to)
    if cursor:
        created, case_id = decode_cursor(cursor)
        query = query.where(or_(Case.created_at < created, and_(Case.created_at == created, Case.id < case_id)))
    query = (
        query.order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit + 1)
        .options(selectinload(Case.category), selectinload(Case.compound), selectinload(Case.assigned_grid_worker))
    )
    rows = list(db.session.scalars(query))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
