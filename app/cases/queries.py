"""Listing cases for a user: work queues, filters, search and keyset pagination.

A page costs the same at a thousand or a million cases. Two orders exist:

- open work by deadline (``due_at`` first, no deadline last): every scope column has a partial index
  ``(scope, due_at, id)`` and ``(scope, state, due_at, id)`` over open cases only (``state <> 'closed'``;
  the queries repeat that condition so the planner can use the partial indexes);
- everything else newest first: one ``(scope, created_at, id)`` index per scope.

The cursor continues from the last row instead of counting an offset.
"""

from __future__ import annotations

import base64
import json
import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import and_, func, literal_column, or_, select, text, true, union
from sqlalchemy.orm import selectinload

from app.auth import roles
from app.auth.permissions import scope_clause
from app.cases.models import CHANNELS, TRIGRAM_COLUMNS, URGENCIES, Case, CaseReport, Category, search_text
from app.core.errors import ValidationError
from app.core.params import parse_id, reasonable_instant
from app.core.timeutil import parse_instant, to_local, utcnow
from app.extensions import db
from app.org import lookups
from workflows import STATES

MAX_PAGE = 100
MAX_QUERY = 60
CLOSED = "closed"
REF_PREFIX = "KSM-"

#: the states in which each role has something to do: its own queue
QUEUE_STATES: dict[str, tuple[str, ...] | None] = {
    roles.GRID_WORKER: ("registered", "grid_assigned", "grid_handling"),
    roles.PROPERTY_MANAGER: ("firm_dispatched", "firm_processing", "on_hold"),
    roles.BRANCH_SECRETARY: ("branch_review",),
    roles.CLERK: None,  # every open case registered at the clerk's station
    roles.SUPERVISOR: None,  # every open case in the community / street
    roles.ADMIN: None,
}

#: escalation filter values → levels
ESCALATION_FILTERS = {"warning": (1, 1), "overdue": (2, 3), "yellow": (2, 2), "red": (3, 3), "any": (1, 3)}

#: deadline filters, by the clock (the row colours): the sweep's escalation level may lag a minute
DUE_FILTERS = ("soon", "overdue")

_TRUE = ("1", "true", "yes", "on")


@dataclass
class CaseFilters:
    state: str | None = None  # a state name, "open", "closed" or "all"
    category: str | None = None  # code
    compound_id: int | None = None
    urgency: str | None = None
    channel: str | None = None
    escalation: str | None = None  # a key of ESCALATION_FILTERS
    due: str | None = None  # "soon" (past the warning instant) or "overdue" (past the deadline), by the clock
    q: str | None = None  # search text
    needs_routing: bool | None = None
    overdue: bool = False  # yellow or red card
    shelved: bool | None = None
    assigned_to: int | None = None
    firm_id: int | None = None
    #: a ``select`` of case ids to keep (the cases behind a figure, see app.reports.drill)
    ids: Any = None
    mine: bool = False  # the user's own queue
    created_from: datetime | None = None
    created_to: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> CaseFilters:
        """Read filters from query-string arguments. Raises :class:`ValidationError` for bad ones."""
        filters = cls()
        errors: dict[str, str] = {}
        state = (args.get("state") or "").strip()
        if state:
            if state not in STATES and state not in ("open", "closed", "all"):
                errors["state"] = _("Unknown state %(state)s.", state=state)
            filters.state = state
        filters.category = (args.get("category") or "").strip() or None
        urgency = (args.get("urgency") or "").strip()
        if urgency:
            if urgency not in URGENCIES:
                errors["urgency"] = _("Urgency is normal or urgent.")
            filters.urgency = urgency
        channel = (args.get("channel") or "").strip()
        if channel:
            if channel not in CHANNELS:
                errors["channel"] = _("Unknown channel %(channel)s.", channel=channel)
            filters.channel = channel
        escalation = (args.get("escalation") or "").strip()
        if escalation:
            if escalation not in ESCALATION_FILTERS:
                errors["escalation"] = _("Unknown escalation level %(level)s.", level=escalation)
            filters.escalation = escalation
        due = (args.get("due") or "").strip()
        if due:
            if due not in DUE_FILTERS:
                errors["due"] = _("Unknown deadline filter %(value)s.", value=due)
            filters.due = due
        compound = (args.get("compound_id") or args.get("compound") or "").strip()
        if compound:
            filters.compound_id = parse_id(compound)
            if filters.compound_id is None:
                errors["compound_id"] = _("compound_id is a number.")
        q = " ".join((args.get("q") or "").split())
        if len(q) > MAX_QUERY:
            errors["q"] = _("Search for at most %(n)d characters.", n=MAX_QUERY)
        filters.q = q or None
        routing = (args.get("needs_routing") or "").strip().lower()
        if routing:
            filters.needs_routing = routing in _TRUE
        filters.overdue = (args.get("overdue") or "").strip().lower() in _TRUE
        shelved = (args.get("shelved") or "").strip().lower()
        if shelved:
            filters.shelved = shelved in _TRUE
        filters.mine = (args.get("mine") or "").strip().lower() in _TRUE
        firm = (args.get("firm") or "").strip()
        if firm:
            filters.firm_id = parse_id(firm)
            if filters.firm_id is None:
                errors["firm"] = _("firm is a number.")
        for name in ("created_from", "created_to"):
            value = (args.get(name) or "").strip()
            if value:
                try:
                    instant = parse_instant(value if "T" in value else value + "T00:00:00")
                    if not reasonable_instant(instant):
                        raise ValueError(_("%(value)s is not a date this system handles.", value=value))
                    if name == "created_to" and "T" not in value:
                        instant += timedelta(days=1)  # a date "to" includes the whole day
                    setattr(filters, name, instant)
                except ValueError as error:
                    errors[name] = str(error)
        if errors:
            raise ValidationError(next(iter(errors.values())), field=next(iter(errors)), details={"fields": errors})
        return filters

    @property
    def by_deadline(self) -> bool:
        """Open work can be listed by deadline; closed cases and "all states" newest first."""
        return self.state not in (CLOSED, "all")


# ------------------------------------------------------------------------------------- cursors


def _b64(raw) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def _unb64(cursor: str):
    padded = cursor + "=" * (-len(cursor) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


def _bad_cursor() -> ValidationError:
    return ValidationError(_("This page link is not valid; start again from the first page."), field="cursor")


def encode_cursor(case: Case) -> str:
    return _b64([case.created_at.isoformat(), case.id])


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises :class:`ValidationError` for a cursor that was not produced by :func:`encode_cursor`."""
    try:
        created, case_id = _unb64(cursor)
        created_at, case_id = datetime.fromisoformat(created), parse_id(case_id)
        if created_at.tzinfo is None or not reasonable_instant(created_at) or case_id is None:
            raise ValueError("not one of our cursors")
        return created_at, case_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError, OverflowError):
        raise _bad_cursor() from None


def encode_due_cursor(case: Case) -> str:
    return _b64(["due", case.due_at.isoformat() if case.due_at else None, case.id])


def decode_due_cursor(cursor: str) -> tuple[datetime | None, int]:
    """Raises :class:`ValidationError` for a cursor not produced by :func:`encode_due_cursor`."""
    try:
        kind, due, case_id = _unb64(cursor)
        due_at = datetime.fromisoformat(due) if due is not None else None
        case_id = parse_id(case_id)
        if kind != "due" or case_id is None:
            raise ValueError("not one of our cursors")
        if due_at is not None and (due_at.tzinfo is None or not reasonable_instant(due_at)):
            raise ValueError("not one of our cursors")
        return due_at, case_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError, OverflowError):
        raise _bad_cursor() from None


# ------------------------------------------------------------------------------------- search

_DIGITS = re.compile(r"^\d+$")
_PHONE = re.compile(r"^1[3-9]\d{9}$")


def _like(column, word: str):
    return column.contains(word, autoescape=True)


#: a whole reference, with or without its prefix: the day and its number (4 digits, more on a busy day)
_WHOLE_REF = re.compile(r"^(?:KSM-)?(\d{8})-(\d{4,7})$")


def _whole_ref(word: str) -> str | None:
    """``word`` as a stored reference (``KSM-20261125-0001``) when it is a whole one, else None."""
    found = _WHOLE_REF.match(word.upper())
    return f"{REF_PREFIX}{found.group(1)}-{found.group(2)}" if found else None


#: the part of a reference a caller reads out: its day without the year and its number ("1125-0042")
_DAY_REF = re.compile(r"^(\d{2})(\d{2})-(\d{4,7})$")
#: … looked up among the references of this many years, the current one included
DAY_REF_YEARS = 5


def _day_refs(word: str) -> list[str]:
    """The references ``word`` can stand for when it is a day and a number ("1125-0042" → KSM-20261125-0042,
    KSM-20251125-0042, … over :data:`DAY_REF_YEARS` years), or [] when it is not one (no such day)."""
    found = _DAY_REF.match(word)
    if not found:
        return []
    month, day, number = int(found.group(1)), int(found.group(2)), found.group(3)
    this_year = to_local(utcnow()).year
    refs = []
    for year in range(this_year, this_year - DAY_REF_YEARS, -1):
        try:
            refs.append(f"{REF_PREFIX}{date(year, month, day):%Y%m%d}-{number}")
        except ValueError:  # no such day (13th month, 30 February; 29 February of a common year)
            continue
    return refs


def _word_kind(word: str) -> str:
    """How a search word is matched: ``phone``, ``last4``, ``ref`` (a whole reference), ``day_ref`` (a day and
    a number of a reference) or ``text``."""
    compact = word.replace("-", "").replace(" ", "")
    if _PHONE.match(compact):
        return "phone"
    if _DIGITS.match(word) and len(word) == 4:
        return "last4"
    if _whole_ref(word):
        return "ref"
    if _day_refs(word):
        return "day_ref"
    return "text"


def search_clause(q: str, entity=Case):
    """The condition for a search box text: every word must match the case somewhere.

    A word is matched as
    - a full mobile number → that resident phone; exactly 4 digits → the phone's last 4 digits;
    - a whole reference (``KSM-20261125-0001``, with or without the prefix) → that case, by equality;
      its day and number as a caller reads them out (``1125-0001``) → the references of that day and
      number over the last :data:`DAY_REF_YEARS` years, by equality (a reference of any size of city is
      found at once: the trigrams of numbers are shared by too many cases); any other part of a reference
      is matched as a part of the texts below;
    - otherwise a part of the reference, the resident's name, the description or the address (one
      expression of the four, :func:`app.cases.models.search_text`).
    On PostgreSQL the "part of" comparisons are served by the trigram search index (3 characters or more).
    """
    clauses = []
    for word in q.split():
        kind, compact, upper = _word_kind(word), word.replace("-", "").replace(" ", ""), word.upper()
        if kind == "phone":  # the case's caller or a linked caller
            clauses.append(
                entity.id.in_(
                    union(
                        select(Case.id).where(Case.resident_phone == compact),
                        select(CaseReport.case_id).where(CaseReport.resident_phone == compact),
                    )
                )
            )
        elif kind == "last4":
            clauses.append(entity.resident_phone_last4 == word)
        elif kind in ("ref", "day_ref"):  # equality on the unique indexes (a case's or a linked caller's reference)
            refs = [_whole_ref(word)] if kind == "ref" else _day_refs(word)
            clauses.append(
                entity.id.in_(
                    union(
                        select(Case.id).where(Case.ref.in_(refs)),
                        select(CaseReport.case_id).where(CaseReport.ref.in_(refs)),
                    )
                )
            )
        else:  # the word as typed, and as a reference is written (upper case, without the prefix)
            ref_part = upper[len(REF_PREFIX) :] if upper.startswith(REF_PREFIX) else upper
            texts = search_text(entity)
            clauses.append(or_(*(_like(texts, form) for form in dict.fromkeys((word, ref_part or upper)))))
    return and_(*clauses) if clauses else None


#: a search first looks among this many newest cases of the list (scope and filters): a common word is
#: found there at once, and the page is exact (every case outside the window is older)
SEARCH_WINDOW = 2000

#: the scan types a statement may be planned with, set for one block of a transaction (``_planned``)
_SCANS = "SELECT set_config('enable_seqscan', :seqscan, true), set_config('enable_indexscan', :indexscan, true), "
_SCANS += "set_config('enable_bitmapscan', :bitmapscan, true)"


@contextmanager
def _planned(*, seqscan: bool = True, indexscan: bool = True, bitmapscan: bool = True):
    """On PostgreSQL, plan the statements inside with only the scan types allowed (one round trip to set,
    one to restore; local to the transaction).

    Why: the planner cannot tell how rare a Chinese word is. Left alone it reads a whole scope newest first
    (an index scan filtering every row) looking for 25 matches that may be few and old; a bitmap scan of the
    search index reads only the matches in the scope. And the capped counts of the chips stay short index
    range scans whatever the statistics say (a bitmap of a whole community is not short).
    """
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    flags = {"seqscan": seqscan, "indexscan": indexscan, "bitmapscan": bitmapscan}
    db.session.execute(text(_SCANS), {name: "on" if on else "off" for name, on in flags.items()})
    try:
        yield
    finally:
        db.session.execute(text(_SCANS), dict.fromkeys(flags, "on"))


def _bitmap_scans():
    """Bitmap scans only (the search index), see :func:`_planned`."""
    return _planned(seqscan=False, indexscan=False)


# ------------------------------------------------------------------------------------- queues


def _is_open():
    """``state <> 'closed'`` with the constant written into the SQL (not a bound parameter), so the planner
    can match the partial open-case indexes even with a generic plan of a prepared statement."""
    return Case.state != literal_column("'closed'")


def queue_states(user) -> tuple[str, ...] | None:
    return QUEUE_STATES.get(getattr(user, "role", None))


def queue_clause(user):
    """The condition for ``user``'s own open work (within their scope, applied separately)."""
    clauses = [_is_open()]
    states = queue_states(user)
    if states:  # constants in the SQL: the grid worker's partial index matches them in any plan
        clauses.append(Case.state.in_([literal_column(f"'{name}'") for name in states]))
    if user.role == roles.GRID_WORKER:
        clauses.append(Case.assigned_grid_worker_id == user.id)
    elif user.role == roles.CLERK and user.station_id is not None:
        clauses.append(Case.station_id == user.station_id)
    return and_(*clauses)


def _filtered(user, filters: CaseFilters):
    """The list's statement (unordered) and how to plan it (a context manager, see :func:`_planned`): a search
    with bitmap scans only, so the search index yields the matches in the user's scope and nothing else."""
    search = False
    query = select(Case).where(scope_clause(user, Case))
    if filters.mine:
        query = query.where(queue_clause(user))
    if filters.state == "open":
        query = query.where(_is_open())
    elif filters.state and filters.state != "all":
        if filters.state != CLOSED:
            query = query.where(_is_open())  # lets the planner use the open-case indexes
        query = query.where(Case.state == filters.state)
    if filters.category:
        query = query.where(
            Case.category_id == select(Category.id).where(Category.code == filters.category).scalar_subquery()
        )
    if filters.compound_id:
        query = query.where(Case.compound_id == filters.compound_id)
    if filters.urgency:
        query = query.where(Case.urgency == filters.urgency)
    if filters.channel:
        query = query.where(Case.channel == filters.channel)
    if filters.escalation:
        low, high = ESCALATION_FILTERS[filters.escalation]
        query = query.where(Case.escalation_level.between(low, high))
    if filters.due:
        now = utcnow()
        query = query.where(_is_open(), Case.paused_at.is_(None))
        if filters.due == "overdue":
            query = query.where(Case.due_at <= now)
        else:  # among the nearest deadlines, like the chip's count
            nearest = (
                select(Case.id, Case.warn_at)
                .where(scope_clause(user, Case), _is_open(), Case.due_at > now)
                .where(queue_clause(user) if filters.mine else true())
                .order_by(Case.due_at)
                .limit(SOON_WINDOW)
                .subquery()
            )
            query = query.where(
                Case.warn_at <= now,
                Case.due_at > now,
                Case.id.in_(select(nearest.c.id).where(nearest.c.warn_at <= now)),
            )
    if filters.q:
        clause = search_clause(filters.q)
        if clause is not None:
            query = query.where(clause)
            # bitmap scans only for a part of the texts (the trigram index); a phone number or a whole
            # reference is a few ids found by equality, then read by primary key
            search = _has_free_text(filters.q)
    if filters.needs_routing is not None:
        query = query.where(Case.needs_routing.is_(filters.needs_routing))
    if filters.overdue:
        query = query.where(Case.escalation_level >= 2)
    if filters.shelved is not None:
        query = query.where(Case.shelved.is_(filters.shelved))
    if filters.assigned_to:
        query = query.where(Case.assigned_grid_worker_id == filters.assigned_to)
    if filters.firm_id:
        query = query.where(Case.firm_id == filters.firm_id)
    if filters.ids is not None:
        query = query.where(Case.id.in_(filters.ids))
    if filters.created_from:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to:
        query = query.where(Case.created_at < filters.created_to)
    return query, (_bitmap_scans() if search else nullcontext())


def list_cases(
    user, filters: CaseFilters, cursor: str | None = None, limit: int = 25, *, by_deadline: bool = False
) -> tuple[list[Case], str | None]:
    """One page of the cases ``user`` may see and the cursor of the next page.

    Newest first, or by deadline (``by_deadline`` and filters that select open work). Raises
    :class:`ValidationError` for a cursor this function did not hand out.
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    due_order = by_deadline and filters.by_deadline and filters.state is not None
    if filters.q and not due_order:
        found = _search_newest(user, filters, cursor, limit)
        if found is not None:
            return found
    query, planning = _filtered(user, filters)
    if due_order:
        if cursor:
            due_at, case_id = decode_due_cursor(cursor)
            if due_at is None:
                query = query.where(Case.due_at.is_(None), Case.id > case_id)
            else:
                query = query.where(
                    or_(Case.due_at > due_at, and_(Case.due_at == due_at, Case.id > case_id), Case.due_at.is_(None))
                )
        query = query.order_by(Case.due_at.asc().nulls_last(), Case.id.asc())
    else:
        if cursor:
            created, case_id = decode_cursor(cursor)
            query = query.where(or_(Case.created_at < created, and_(Case.created_at == created, Case.id < case_id)))
        query = query.order_by(Case.created_at.desc(), Case.id.desc())
    query = query.limit(limit + 1)
    if filters.q and _has_free_text(filters.q):
        # the matches' ids first, then their rows: sorting thousands of matches as whole rows (50 columns)
        # took as long as finding them (a word in 7,142 cases of a community: 32 ms, 15 ms by id)
        with planning:
            ids = list(db.session.scalars(query.with_only_columns(Case.id)))
        rows = _cases_in_order(ids)
    else:
        with planning:
            rows = list(db.session.scalars(query.options(selectinload(Case.assigned_grid_worker))))
        lookups.prime_rows(rows)
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_due_cursor(rows[limit - 1]) if due_order else encode_cursor(rows[limit - 1])
    return rows[:limit], next_cursor


def _has_free_text(q: str) -> bool:
    """Whether a word of ``q`` is matched as a part of the texts (not as a phone or a whole reference)."""
    return any(_word_kind(word) == "text" for word in q.split())


def _search_newest(user, filters: CaseFilters, cursor: str | None, limit: int):
    """A search page from the newest :data:`SEARCH_WINDOW` cases of the list, or None when fewer than a page
    match there (then the search indexes find the older matches).

    A word in many cases (more than the id probe collects) makes the index probe build a bitmap of all of
    them — at ten million cases, hundreds of milliseconds; the newest few thousand cases of the user's list,
    read newest first through the scope's index, find such a word in a few milliseconds.
    """
    if db.session.get_bind().dialect.name != "postgresql" or not _has_free_text(filters.q or ""):
        return None  # phones, last 4 digits and whole references go straight to their indexes
    base, _planning = _filtered(user, replace(filters, q=None))
    if cursor:
        created, case_id = decode_cursor(cursor)
        base = base.where(or_(Case.created_at < created, and_(Case.created_at == created, Case.id < case_id)))
    # the window carries only what the search compares (not whole rows)
    window = (
        base.with_only_columns(*(getattr(Case, name) for name in WINDOW_COLUMNS))
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(SEARCH_WINDOW)
        .subquery()
    )
    clause = search_clause(filters.q or "", SimpleNamespace(**{name: window.c[name] for name in WINDOW_COLUMNS}))
    if clause is None:
        return None
    ids = list(
        db.session.scalars(
            select(window.c.id).where(clause).order_by(window.c.created_at.desc(), window.c.id.desc()).limit(limit + 1)
        )
    )
    if len(ids) <= limit:
        return None
    rows = _cases_in_order(ids)
    return rows[:limit], encode_cursor(rows[limit - 1])


#: the columns of a case the search's window needs (:func:`search_clause` and the order)
WINDOW_COLUMNS = ("id", "created_at", "resident_phone", "resident_phone_last4", *TRIGRAM_COLUMNS)


def _cases_in_order(ids: list[int]) -> list[Case]:
    """The cases of ``ids`` in that order (with what a list row shows)."""
    if not ids:
        return []
    found = {
        case.id: case
        for case in db.session.scalars(
            select(Case).where(Case.id.in_(ids)).options(selectinload(Case.assigned_grid_worker))
        )
    }
    rows = [found[case_id] for case_id in ids if case_id in found]
    lookups.prime_rows(rows)
    return rows


#: chips and the navigation count up to this many per kind, then show "99+": every count stays a short
#: index range scan however large the scope
COUNT_CAP = 100
#: "near the deadline" is looked for among this many open cases with the nearest deadlines (the warned
#: ones are due soonest: the warning comes at 80 % of a step's time)
SOON_WINDOW = 500


@dataclass
class QueueCounts:
    """How much open work a user has: per state, near the deadline and overdue (each capped)."""

    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    warning: int = 0
    overdue: int = 0

    @staticmethod
    def show(n: int) -> str:
        return f"{COUNT_CAP - 1}+" if n >= COUNT_CAP else str(n)


def _capped_count(query, cap: int = COUNT_CAP):
    return select(func.count()).select_from(query.limit(cap).subquery()).scalar_subquery()


def queue_counts(user) -> QueueCounts:
    """Counts of ``user``'s own open work in one round trip of small capped index scans."""
    counts = QueueCounts()
    if user is None or not getattr(user, "is_authenticated", False):
        return counts
    now = utcnow()
    base = select(Case.id).where(scope_clause(user, Case), queue_clause(user))
    states = [name for name in (queue_states(user) or STATES) if name != CLOSED]
    columns = [_capped_count(base.where(Case.state == name)).label(name) for name in states]
    columns.append(_capped_count(base.where(Case.due_at <= now, Case.paused_at.is_(None))).label("_overdue"))
    nearest = (
        select(Case.warn_at, Case.paused_at)
        .where(scope_clause(user, Case), queue_clause(user), Case.due_at > now)
        .order_by(Case.due_at)
        .limit(SOON_WINDOW)
        .subquery()
    )
    columns.append(
        select(func.count())
        .select_from(nearest)
        .where(nearest.c.warn_at <= now, nearest.c.paused_at.is_(None))
        .scalar_subquery()
        .label("_soon")
    )
    with _planned(bitmapscan=False):  # each count a capped index range scan, whatever the statistics say
        row = db.session.execute(select(*columns)).one()._mapping
    for name in states:
        if row[name]:
            counts.by_state[name] = row[name]
            counts.total += row[name]
    counts.overdue = row["_overdue"]
    counts.warning = min(row["_soon"], COUNT_CAP)
    return counts


def caller_history(user, phone: str, limit: int = 10) -> list[Case]:
    """A caller's earlier cases (newest first) that ``user`` may see, by full mobile number."""
    phone = re.sub(r"[\s-]", "", phone or "")
    if not _PHONE.match(phone):
        return []
    query = (
        select(Case)
        .where(
            scope_clause(user, Case),
            or_(
                Case.resident_phone == phone,
                Case.id.in_(select(CaseReport.case_id).where(CaseReport.resident_phone == phone)),
            ),
        )
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit)
    )
    rows = list(db.session.scalars(query))
    lookups.prime_rows(rows)
    return rows
