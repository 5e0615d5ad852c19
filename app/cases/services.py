"""Case rules: intake and routing, firing workflow triggers, notes, reassignment, sign-off.

Every interface (web, REST API, Open311, CLI, scheduler) calls these functions with an explicit
``actor``. They flush and leave the commit to the caller; any exception means the caller rolls back
and nothing of the unit of work remains.
"""

from __future__ import annotations

import functools
import itertools
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, func, select, union_all
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm.exc import StaleDataError

from app.auth import roles
from app.auth.models import User
from app.auth.permissions import in_scope, is_admin, scope_clause
from app.cases import attachments, refs
from app.cases import labels as L
from app.cases.actors import SYSTEM_ACTOR, ResidentActor, is_person
from app.cases.models import CHANNELS, URGENCIES, URGENCY_URGENT, Case, CaseEvent, Category, FollowUp, RefCounter
from app.core import bulk, throttle
from app.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationError
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.notify import resident as resident_messages
from app.notify.models import OutboundMessage
from app.org import lookups
from app.org.models import Building, Compound, PartyBranch, PropertyFirm, Street
from app.reports import facts
from app.reports.models import StepFact
from app.sla import services as sla
from workflows import OPEN_STATES
from workflows import definitions as d
from workflows.engine import (
    ConditionFailed,
    InputInvalid,
    RoleNotAllowed,
    TriggerNotAllowed,
    UnknownTrigger,
    WorkflowError,
    get_engine,
)
from workflows.rules import RULES

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
REF_PREFIX = "KSM"
DUPLICATE_WINDOW_DAYS = 7
#: possible duplicates shown at intake (the newest open ones, same building first)
DUPLICATES_SHOWN = 5
STAFF_CHANNELS = ("window", "phone", "grid")
MAX_DESCRIPTION = 4000  # Open311 allows 4000 characters
MAX_NOTE = 2000


class FieldErrors(ValidationError):
    """Several inputs are wrong at once; ``details["fields"]`` maps each to its message."""

    def __init__(self, errors: dict[str, str]):
        first = next(iter(errors.values()))
        super().__init__(
            first if len(errors) == 1 else _("Please correct the marked fields."),
            field=next(iter(errors)),
            details={"fields": errors},
        )
        self.errors = errors


class WorkflowRefused(DomainError):
    """A workflow refusal with a message for people and the allowed actions for programs."""

    def __init__(self, message: str, *, code: str, http_status: int, details: dict[str, Any]):
        super().__init__(message, code=code, details=details)
        self.http_status = http_status


# ------------------------------------------------------------------------------------ look-ups


def get_visible_case(user, ref: str) -> Case:
    """The case with reference ``ref`` if ``user`` may see it. Raises :class:`NotFound` otherwise
    (whether it does not exist or lies outside the user's scope is not revealed)."""
    case = db.session.scalar(select(Case).where(Case.ref == (ref or "").strip().upper()))
    if case is None or not can_view(user, case):
        raise NotFound(_("No case %(ref)s in your area.", ref=ref))
    return case


def can_view(user, case: Case) -> bool:
    if isinstance(user, ResidentActor):
        return user.case_id == case.id
    return in_scope(user, case)


def visible_cases(user):
    """A ``select(Case)`` limited to what ``user`` may see."""
    return select(Case).where(scope_clause(user, Case))


# --------------------------------------------------------------------------------- reference numbers


def next_ref(now: datetime | None = None) -> str:
    """Allocate the next reference number of the local day, e.g. ``KSM-20261125-0001``.

    PostgreSQL: ``nextval`` of the day's sequence (:mod:`app.cases.refs`), which takes no lock that
    lasts to the commit, so intakes run in parallel. A number taken by an intake that then fails is
    not reused: references of a day may have gaps. SQLite (one writer at a time anyway): an atomic
    upsert on the day's counter row.
    """
    day = to_local(now or utcnow()).date()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        number = refs.next_number(day)
        return f"{REF_PREFIX}-{day:%Y%m%d}-{number:04d}"
    from sqlalchemy.dialects.sqlite import insert

    statement = insert(RefCounter).values(day=day, last=1)
    statement = statement.on_conflict_do_update(
        index_elements=[RefCounter.day], set_={"last": RefCounter.last + 1}
    ).returning(RefCounter.last)
    number = db.session.execute(statement).scalar_one()
    return f"{REF_PREFIX}-{day:%Y%m%d}-{number:04d}"


def _allocate(
    now: datetime,
    *,
    need_ref: bool,
    need_code: bool,
    ids: dict[str, int],
    also: Mapping | None = None,
    join: tuple | None = None,
) -> tuple[int | None, str | None, str | None, bulk.IdPool, dict[str, Any] | None]:
    """The new case's id (PostgreSQL; None on SQLite, where the INSERT gives it), if ``need_ref`` its
    reference number, if ``need_code`` a sign-off code no one uses, the ``ids`` of the rows written with
    the case, the values of ``also`` and the rows of ``join`` (under ``"joined"``; see
    :func:`app.cases.refs.allocate`) — on PostgreSQL all in one statement (a fresh code is checked there; only
    a clash, rare, costs a second look-up). On SQLite the last is None: the caller reads those on its own."""
    if db.session.get_bind().dialect.name != "postgresql":
        code = unique_signoff_code() if need_code else None
        return None, (next_ref(now) if need_ref else None), code, bulk.IdPool(), None
    day = to_local(now).date()
    candidate = new_signoff_code() if need_code else None
    case_id, number, taken, pool, extra = refs.allocate(day if need_ref else None, candidate, ids, also, join)
    code = unique_signoff_code() if taken else candidate
    return case_id, (f"{REF_PREFIX}-{day:%Y%m%d}-{number:04d}" if need_ref else None), code, pool, extra


# ------------------------------------------------------------------------------------------ intake


@dataclass
class Intake:
    """What a clerk, an integration or Open311 gives to register a case."""

    category: int | str | None = None
    description: str | None = None
    channel: str = "window"
    compound: int | str | None = None
    building: int | str | None = None
    unit: str | None = None
    urgency: str | None = None
    resident_name: str | None = None
    resident_phone: str | None = None
    address_text: str | None = None
    latitude: float | str | None = None
    longitude: float | str | None = None
    street: int | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: an outside system's reference, unique (e.g. "12345:<work-order number>")
    external_ref: str | None = None


def _find(model, ref, *, by_name: bool = True):
    # cached per process (issue 12): categories and organisation rows change only by an administrator
    return lookups.find(model, ref, by_name=by_name)


def validate_intake(data: Intake, actor) -> dict[str, Any]:
    """Check an intake; returns the cleaned values. Raises :class:`FieldErrors` listing every problem."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}

    category = _find(Category, data.category)
    if category is None:
        errors["category"] = _("Choose a category.")
    elif not category.active:
        errors["category"] = _("The category %(name)s is no longer in use; choose another.", name=category.name)
    clean["category"] = category

    description = (data.description or "").strip()
    if len(description) < 5:
        errors["description"] = _("Describe the matter in at least 5 characters.")
    elif len(description) > MAX_DESCRIPTION:
        errors["description"] = _("The description is longer than %(max)d characters.", max=MAX_DESCRIPTION)
    clean["description"] = description

    channel = (data.channel or "").strip()
    if channel not in CHANNELS:
        errors["channel"] = _("Unknown channel; use one of %(channels)s.", channels=", ".join(CHANNELS))
    clean["channel"] = channel

    urgency = (data.urgency or "").strip() or (category.default_urgency if category else "normal")
    if urgency not in URGENCIES:
        errors["urgency"] = _("Urgency is normal or urgent.")
    clean["urgency"] = urgency

    compound = _find(Compound, data.compound)
    if data.compound not in (None, "") and compound is None:
        errors["compound"] = _("No compound %(ref)s.", ref=data.compound)
    clean["compound"] = compound
    building = None
    if data.building not in (None, ""):
        building = _find(Building, data.building, by_name=False)
        if building is None and compound is not None:
            building = lookups.building_in(compound.id, str(data.building))
        if building is None or (compound is not None and building.compound_id != compound.id):
            errors["building"] = _("This building is not in the chosen compound.")
    clean["building"] = building
    clean["unit"] = (data.unit or "").strip()[:50] or None
    clean["address_text"] = (data.address_text or "").strip()[:200] or None

    for name, low, high in (("latitude", -90, 90), ("longitude", -180, 180)):
        raw = getattr(data, name)
        if raw in (None, ""):
            clean[name] = None
            continue
        try:
            value = float(raw)
            if not low <= value <= high:
                raise ValueError
            clean[name] = value
        except (TypeError, ValueError):
            errors[name] = _("%(name)s must be a number between %(low)d and %(high)d.", name=name, low=low, high=high)

    if compound is None and "compound" not in errors:
        if channel in STAFF_CHANNELS:
            errors["compound"] = _("Choose the compound where the matter is.")
        elif not clean["address_text"] and clean.get("latitude") is None:
            errors["compound"] = _("Give the compound, an address or a location.")

    street = compound.community.street if compound is not None else _find(Street, data.street)
    if street is None and compound is None and "compound" not in errors:
        streets = db.session.scalars(select(Street).limit(2)).all()
        street = streets[0] if len(streets) == 1 else None
        if street is None:
            errors["street"] = _("Say which street the matter belongs to.")
    clean["street"] = street

    name = (data.resident_name or "").strip()
    phone = re.sub(r"[\s-]", "", data.resident_phone or "")
    if len(name) > 50:
        errors["resident_name"] = _("The name is longer than 50 characters.")
    if phone and not MOBILE_RE.match(phone):
        errors["resident_phone"] = _("A mobile number has 11 digits and starts with 1.")
    if channel in STAFF_CHANNELS:
        if not name:
            errors["resident_name"] = _("Enter the resident's name.")
        if not phone:
            errors["resident_phone"] = _("Enter the resident's mobile number (for the follow-up call).")
    clean["resident_name"] = name or None
    clean["resident_phone"] = phone or None

    if errors:
        raise FieldErrors(errors)
    return clean


def _duplicate_conditions() -> tuple:
    """What makes a case a possible duplicate of an intake: open, same compound and category, from the last
    :data:`DUPLICATE_WINDOW_DAYS` days (parameters from :func:`_duplicate_params`)."""
    return (
        Case.compound_id == bindparam("dup_compound"),
        Case.category_id == bindparam("dup_category"),
        Case.created_at >= bindparam("dup_since"),
        Case.state != "closed",
    )


def _duplicate_params(category_id: int, compound_id: int, now: datetime | None) -> dict:
    return {
        "dup_compound": compound_id,
        "dup_category": category_id,
        "dup_since": (now or utcnow()) - timedelta(days=DUPLICATE_WINDOW_DAYS),
    }


@functools.cache
def _duplicate_query(columns, excluding: bool) -> Select:
    """The statement of :func:`_duplicates`, built once per (columns, with an excluded case): building one took
    longer than running it."""
    query = (
        select(*columns)
        .where(*_duplicate_conditions())
        .order_by(Case.created_at.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    return query.where(Case.id != bindparam("exclude_id")) if excluding else query


def _duplicates(columns, category_id: int, compound_id: int | None, building_id, now, exclude_id, limit: int) -> list:
    """Rows (of ``columns``, which include ``building_id``) of the open cases of the same category in the same
    compound from the last 7 days, newest first, same building first."""
    if compound_id is None:
        return []
    params = {**_duplicate_params(category_id, compound_id, now), "limit": limit * 3}
    if exclude_id is not None:
        params["exclude_id"] = exclude_id
    query = _duplicate_query(columns, exclude_id is not None)
    found = list(db.session.scalars(query, params) if len(columns) == 1 else db.session.execute(query, params))
    found.sort(key=lambda row: (building_id is None or row.building_id != building_id,))
    return found[:limit]


@functools.cache
def _duplicate_refs_column(same_building_first: bool) -> ColumnElement:
    """The references :func:`possible_duplicate_refs` gives, as one array (PostgreSQL): read by an intake in
    the statement that allocates its case (parameters: ``dup_compound``, ``dup_category``, ``dup_since``,
    ``dup_building``)."""
    recent = (
        select(Case.ref, Case.building_id, Case.created_at)
        .where(*_duplicate_conditions())
        .order_by(Case.created_at.desc())
        .limit(DUPLICATES_SHOWN * 3)
        .subquery()
    )
    newest = recent.c.created_at.desc()
    if same_building_first:
        other = recent.c.building_id.is_distinct_from(bindparam("dup_building", type_=Integer)).label("other")
        shown = select(recent.c.ref, recent.c.created_at, other).order_by(other, newest)
    else:
        shown = select(recent.c.ref, recent.c.created_at).order_by(newest)
    shown = shown.limit(DUPLICATES_SHOWN).subquery()
    order = (shown.c.other,) if same_building_first else ()
    ordered = aggregate_order_by(shown.c.ref, *order, shown.c.created_at.desc())
    return select(func.array_agg(ordered)).scalar_subquery()  # NULL when there is none


def duplicate_refs_read(category_id: int, compound_id: int, building_id: int | None, now: datetime):
    """(expression, parameters) of the references :func:`possible_duplicate_refs` gives for a case about to be
    written (none excluded), to be read with other values in one statement."""
    params = _duplicate_params(category_id, compound_id, now)
    if building_id is not None:
        params["dup_building"] = building_id
    return _duplicate_refs_column(building_id is not None), params


def possible_duplicates(
    category_id: int,
    compound_id: int | None,
    building_id: int | None = None,
    now: datetime | None = None,
    exclude_id: int | None = None,
    limit: int = DUPLICATES_SHOWN,
) -> list[Case]:
    """Open cases of the same category in the same compound from the last 7 days, same building first."""
    return _duplicates((Case,), category_id, compound_id, building_id, now, exclude_id, limit)


def possible_duplicate_refs(
    category_id: int,
    compound_id: int | None,
    building_id: int | None = None,
    now: datetime | None = None,
    exclude_id: int | None = None,
    limit: int = DUPLICATES_SHOWN,
) -> list[str]:
    """The references of :func:`possible_duplicates` (what an intake records and answers: two columns of up to
    15 rows instead of 15 whole cases)."""
    rows = _duplicates((Case.ref, Case.building_id), category_id, compound_id, building_id, now, exclude_id, limit)
    return [row.ref for row in rows]


#: open cases counted per grid worker when routing; beyond it a worker counts as full (issue 12)
ROUTING_LOAD_CAP = 200
_routing_turn = itertools.count()


@functools.cache
def _routing_parts() -> tuple[tuple, ColumnElement, tuple]:
    """The active grid workers of a grid (``routing_grid``) with their open cases, each counted up to
    ``routing_cap`` — and only when the grid has more than one worker (most grids have one: nothing to compare):
    the columns ``(User, load)``, the condition on ``User``, the order. Read on their own (:func:`_routing_query`)
    or with an intake's allocation (:func:`app.cases.refs.allocate`)."""
    capped = (
        # open states only: the (assignee, state) index then skips the worker's closed history; no other column,
        # so the index alone can answer
        select(Case.assigned_grid_worker_id)
        .where(Case.assigned_grid_worker_id == User.id, Case.state.in_(OPEN_STATES))
        .limit(bindparam("routing_cap", type_=Integer))
        .correlate(User)
        .subquery()
    )
    open_load = select(func.count()).select_from(capped).scalar_subquery()
    load = sql_case((func.count().over() > 1, open_load), else_=0)
    condition = and_(User.role == roles.GRID_WORKER, User.grid_id == bindparam("routing_grid"), User.active.is_(True))
    return (User, load), condition, (User.id,)


@functools.cache
def _routing_query() -> Select:
    columns, condition, order = _routing_parts()
    return select(*columns).where(condition).order_by(*order)


def _routing_params(grid_id: int) -> dict[str, int]:
    # named apart from the other reads of the allocation statement (the SMS standing has its own "cap")
    return {"routing_grid": grid_id, "routing_cap": ROUTING_LOAD_CAP}


def route_targets(compound: Compound, day, workers: list | None = None) -> dict[str, Any]:
    """Who a case in ``compound`` goes to: the grid and its least-loaded worker, the firm, the branch.

    The load of each worker is counted up to :data:`ROUTING_LOAD_CAP` open cases (an index range of at
    most that many entries per worker, however many cases the grid has); ties go to the lower id, and
    among workers who are all full the cases go round in turn. ``workers``: the ``(user, load)`` rows of the
    grid when already read (an intake reads them with its allocation). The firm and the branch come from the
    per-process cache of :mod:`app.org.lookups`.
    """
    targets: dict[str, Any] = {"grid_id": compound.grid_id, "grid_worker": None, "firm_id": None, "branch_id": None}
    if compound.grid_id is not None:
        if workers is None:
            workers = db.session.execute(_routing_query(), _routing_params(compound.grid_id)).all()
        if workers:
            least = min(load for _user, load in workers)
            candidates = [user for user, load in workers if load == least]
            turn = next(_routing_turn) if least >= ROUTING_LOAD_CAP else 0
            targets["grid_worker"] = candidates[turn % len(candidates)]
            lookups.keep_alive(targets["grid_worker"])  # the response names the worker: no reload
    if compound.id is not None:
        targets["firm_id"], targets["branch_id"] = lookups.routing_of(compound.id, day)
        lookups.get(PropertyFirm, targets["firm_id"])
        lookups.get(PartyBranch, targets["branch_id"])
    return targets


def register_case(
    data: Intake, actor, *, now: datetime | None = None, ref: str | None = None, signoff_token: str | None = None
) -> Case:
    """Register a case and route it (compound → grid worker, contract → firm, compound → branch).

    The case moves to ``grid_assigned`` when the compound has an active grid worker; otherwise it
    stays ``registered`` with ``needs_routing`` set for a supervisor. Raises :class:`FieldErrors`.
    """
    now = now or utcnow()
    clean = validate_intake(data, actor)
    category, compound = clean["category"], clean["compound"]
    # the rows written with the case: "created" and "route" events, the two steps, the resident's receipt
    # (a receipt only to a mobile number: see app.notify.resident.queue)
    phone = resident_messages.normalize_phone(clean["resident_phone"])
    written = {"case_event": 2, "fact_step": 2, "outbound_message": 1 if phone else 0}
    # read with the allocation (PostgreSQL): the possible duplicates and the resident's SMS standing
    also = {}
    if compound is not None:
        building = clean["building"].id if clean["building"] else None
        also["duplicates"] = duplicate_refs_read(category.id, compound.id, building, now)
    if phone is not None:
        also["standing"] = resident_messages.standing_read(phone, now)
    # and the grid's workers with their loads, for the routing
    grid_id = compound.grid_id if compound is not None else None
    join = (*_routing_parts(), _routing_params(grid_id)) if grid_id is not None else None
    case_id, new_ref, new_code, pool, read = _allocate(
        now, need_ref=ref is None, need_code=not signoff_token, ids=written, also=also, join=join
    )
    case = bulk.new(
        Case,
        ref=ref or new_ref,
        category_id=category.id,
        workflow=category.workflow,
        urgency=clean["urgency"],
        state="registered",
        channel=clean["channel"],
        external_ref=(data.external_ref or None),
        description=clean["description"],
        street_id=clean["street"].id,
        community_id=compound.community_id if compound else None,
        compound_id=compound.id if compound else None,
        building_id=clean["building"].id if clean["building"] else None,
        unit=clean["unit"],
        address_text=clean["address_text"],
        latitude=clean["latitude"],
        longitude=clean["longitude"],
        resident_name=clean["resident_name"],
        resident_phone=clean["resident_phone"],
        resident_phone_last4=clean["resident_phone"][-4:] if clean["resident_phone"] else None,
        signoff_token=signoff_token or new_code,
        station_id=getattr(actor, "station_id", None) if getattr(actor, "role", None) == roles.CLERK else None,
        created_by_id=getattr(actor, "id", None),
        created_at=now,
        updated_at=now,
        state_entered_at=now,
        needs_routing=True,
    )
    if compound is not None:
        targets = route_targets(compound, to_local(now).date(), read["joined"] if read is not None and join else None)
        case.grid_id = targets["grid_id"]
        case.firm_id = targets["firm_id"]
        case.branch_id = targets["branch_id"]
        if targets["grid_worker"] is not None:
            case.assigned_grid_worker_id = targets["grid_worker"].id
    sla.on_registered(case, now)  # timers are part of the first INSERT
    # Nothing is written until the case is complete (issue 12): it is routed in memory, and the case (in
    # its routed state: no UPDATE), its two events, its two steps, the resident's receipt and the handlers'
    # notifications go out together. On PostgreSQL that is one statement (the case's id comes with the
    # reference number); SQLite inserts the case first to learn its id, the rest in one flush.
    with bulk.staging():
        with db.session.no_autoflush:
            if case_id is not None:
                case.id = case_id
                db.session.add(case)
            else:
                db.session.add(case)
                db.session.flush()
            if read is not None:
                duplicates = list(read.get("duplicates") or [])
            else:
                duplicates = possible_duplicate_refs(
                    category.id, case.compound_id, case.building_id, now, exclude_id=case.id
                )
            record_event(
                case,
                actor,
                "created",
                now=now,
                payload={
                    "channel": case.channel,
                    "category": category.code,
                    "urgency": case.urgency,
                    "possible_duplicates": duplicates,
                    **({"extra": data.extra} if data.extra else {}),
                },
                flush=False,
            )
            facts.enter_step(case, None, now)
            # the receipt by SMS (nothing without a mobile number)
            resident_messages.case_registered(case, now, standing=tuple(read["standing"]) if read and phone else None)
            if case.assigned_grid_worker_id is not None:
                case.needs_routing = False
                routed = fire(case, "route", SYSTEM_ACTOR, now=now, lock=False, flush=False)
                sla.notify_transition(case, routed)  # set-based rows: staged, written with the case
        if not bulk.write_new((Case, CaseEvent, StepFact, OutboundMessage), pool):
            db.session.flush()  # SQLite, or anything unexpected in the session: the unit of work
    if case.urgency == URGENCY_URGENT:
        alert_urgent(case, now)
    case.possible_duplicates = duplicates  # their references, for the caller to show; not stored
    return case


def alert_urgent(case: Case, now: datetime) -> None:
    """Urgent matters (lift entrapment, water/power/gas, safety): the firm on contract and the community
    supervisor hear of it at registration, not only once the grid worker accepts."""
    from app.notify import services as notify

    place = " ".join(filter(None, [case.compound.name if case.compound else case.address_text, case.unit or ""]))

    def render():
        return (
            _("Urgent case %(ref)s: %(category)s", ref=case.ref, category=case.category.name),
            _("%(place)s — %(text)s", place=place, text=case.description[:200]),
        )

    people = notify.firm_managers_for(case) + notify.community_supervisors_for(case)
    notify.notify(people, "urgent", render, case_id=case.id, now=now)


# ------------------------------------------------------------------------------------------ events


def actor_name(actor) -> str:
    if actor.role == d.SYSTEM:
        return "system"
    if actor.role == d.RESIDENT:
        return "resident"
    return actor.display_name


def record_event(
    case: Case,
    actor,
    kind: str,
    *,
    now: datetime | None = None,
    trigger: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
    payload: Mapping[str, Any] | None = None,
    flush: bool = True,
) -> CaseEvent:
    """Append an immutable event to the case's history (``flush=False``: written with the caller's next
    flush; its id is unknown until then)."""
    row = bulk.new(
        CaseEvent,
        case_id=case.id,
        created_at=now or utcnow(),
        kind=kind,
        actor_id=getattr(actor, "id", None),
        actor_role=actor.role,
        actor_name=actor_name(actor)[:64],
        trigger=trigger,
        from_state=from_state,
        to_state=to_state,
        note=note,
        payload=dict(payload) if payload else None,
    )
    db.session.add(row)
    if flush:
        db.session.flush()
    return row


def events_of(case: Case) -> list[CaseEvent]:
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)))


# ------------------------------------------------------------------------------------ the workflow


def context_for(case: Case, now: datetime) -> dict[str, Any]:
    """Facts about the case that the workflow rules read."""
    return {
        "reopen_count": case.reopen_count,
        "resolved_on_site": case.resolved_on_site,
        "branch_approved": case.branch_approved,
        "closed_at": case.closed_at,
        "now": now,
    }


def allowed_triggers(user, case: Case, now: datetime | None = None) -> list[str]:
    """The actions ``user`` may take on ``case`` now (role, scope, state and case rules)."""
    if user is None or not getattr(user, "is_active", False) or not can_view(user, case):
        return []
    engine = get_engine(case.workflow)
    return engine.possible(case.state, user.role, context_for(case, now or utcnow()))


def _list_sep() -> str:
    return "、" if L.lang() == "zh" else ", "


def _names(triggers: Iterable[str]) -> str:
    return _list_sep().join(L.trigger_label(t) for t in triggers)


def explain(error: WorkflowError, case: Case) -> WorkflowRefused:
    """Turn an engine refusal into a message naming the case's state and what is allowed."""
    allowed = list(getattr(error, "allowed", []) or [])
    details: dict[str, Any] = {"state": case.state, "allowed": allowed, "version": case.version}
    allowed_text = _names(allowed) if allowed else _("nothing for you at this step")
    if isinstance(error, UnknownTrigger):
        return WorkflowRefused(
            _("Unknown action %(trigger)s. Possible now: %(allowed)s.", trigger=error.trigger, allowed=allowed_text),
            code=error.code,
            http_status=422,
            details=details,
        )
    if isinstance(error, TriggerNotAllowed):
        return WorkflowRefused(
            _(
                "“%(action)s” is not possible: case %(ref)s is now “%(state)s”. Possible now: %(allowed)s.",
                action=L.trigger_label(error.trigger),
                ref=case.ref,
                state=L.state_label(case.state),
                allowed=allowed_text,
            ),
            code=error.code,
            http_status=409,
            details=details,
        )
    if isinstance(error, RoleNotAllowed):
        details["roles"] = error.roles
        return WorkflowRefused(
            _(
                "A %(role)s cannot “%(action)s”; that is for: %(roles)s. You can: %(allowed)s.",
                role=L.role_label(error.role),
                action=L.trigger_label(error.trigger),
                roles=", ".join(L.role_label(r) for r in error.roles),
                allowed=allowed_text,
            ),
            code=error.code,
            http_status=403,
            details=details,
        )
    if isinstance(error, ConditionFailed):
        rule = RULES.get(error.rule or "")
        reason = (
            (rule.en if L.lang() == "en" else rule.zh)
            if rule and rule.zh
            else _("The case's rules do not allow it now.")
        )
        details["rule"] = error.rule
        return WorkflowRefused(
            _(
                "“%(action)s” refused: %(reason)s Possible now: %(allowed)s.",
                action=L.trigger_label(error.trigger),
                reason=reason,
                allowed=allowed_text,
            ),
            code=error.code,
            http_status=409,
            details=details,
        )
    if isinstance(error, InputInvalid):
        fields = {}
        spec = d.TRIGGERS[error.trigger]
        for name, problem in error.errors.items():
            label = L.input_label(error.trigger, name)
            if problem == "required" and spec.input(name).kind == "choice":
                options = _list_sep().join(
                    L.choice_label(error.trigger, name, code) for code, _zh, _en in spec.input(name).choices
                )
                fields[name] = _("%(field)s is required: choose one of %(options)s.", field=label, options=options)
            elif problem == "required":
                fields[name] = _("%(field)s is required.", field=label)
            elif problem == "too_long":
                fields[name] = _(
                    "%(field)s is too long (at most %(max)d characters).", field=label, max=spec.input(name).max_length
                )
            elif problem == "invalid_choice":
                # labels only: users never see the internal option codes (API clients get them in details)
                options = _list_sep().join(
                    L.choice_label(error.trigger, name, code) for code, _zh, _en in spec.input(name).choices
                )
                fields[name] = _("%(field)s: choose one of %(options)s.", field=label, options=options)
            else:
                fields[name] = _("%(field)s: answer yes or no.", field=label)
        details["fields"] = fields
        details["choices"] = {
            name: [code for code, _zh, _en in spec.input(name).choices]
            for name in error.errors
            if spec.input(name) is not None and spec.input(name).kind == "choice"
        }
        message = (
            next(iter(fields.values()))
            if len(fields) == 1
            else _("Please correct: %(fields)s", fields=" ".join(fields.values()))
        )
        return WorkflowRefused(message, code="validation_error", http_status=422, details=details)
    return WorkflowRefused(str(error), code=error.code, http_status=409, details=details)  # pragma: no cover


def lock_case(case_id: int) -> Case:
    """Reload a case under a row lock (PostgreSQL ``FOR UPDATE``; SQLite serialises writers)."""
    case = db.session.scalar(
        select(Case).where(Case.id == case_id).with_for_update(of=Case).execution_options(populate_existing=True)
    )
    if case is None:
        raise NotFound(_("The case no longer exists."))
    return case


def _check_actor_scope(actor, case: Case) -> None:
    if actor.role == d.SYSTEM:
        return
    if isinstance(actor, ResidentActor):
        if actor.case_id != case.id:
            raise PermissionDenied(_("This sign-off link belongs to another case."))
        return
    if not getattr(actor, "is_active", False):
        raise PermissionDenied(_("This account is disabled."))
    if not in_scope(actor, case):
        raise PermissionDenied(
            _(
                "Case %(ref)s is outside your area (%(scope)s).",
                ref=case.ref,
                scope=getattr(actor, "scope_label", "") or "-",
            )
        )


def _conflict(case: Case, expected_version: int) -> Conflict:
    last = db.session.scalar(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id.desc()).limit(1)
    )
    who = last.actor_name if last else "?"
    return Conflict(
        _(
            "Case %(ref)s was changed by %(who)s while you were looking at it; it is now “%(state)s”. "
            "Reload the case and check before acting.",
            ref=case.ref,
            who=who,
            state=L.state_label(case.state),
        ),
        code="version_conflict",
        details={"state": case.state, "version": case.version, "expected_version": expected_version},
    )


def fire(
    case: Case,
    trigger: str,
    actor,
    *,
    inputs: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
    photos: Iterable[tuple[str, bytes]] = (),
    lock: bool = True,
    flush: bool = True,
) -> CaseEvent:
    """Fire ``trigger`` on ``case`` for ``actor`` with the trigger's ``inputs``; returns the event.

    The case is re-read under a row lock, so of two users acting at once exactly one wins. Raises
    :class:`WorkflowRefused` (wrong state 409, wrong role 403, failed rule 409, bad input 422),
    :class:`Conflict` when ``expected_version`` is stale, :class:`PermissionDenied` outside the
    actor's scope, :class:`ValidationError` for bad photos or a bad duplicate reference.
    ``flush=False`` (with ``lock=False``, for a case the caller is still building): nothing is written
    and no one is notified yet; the caller flushes, then calls ``sla.notify_transition(case, event)``.
    """
    now = now or utcnow()
    inputs = dict(inputs or {})
    if lock:
        case = lock_case(case.id)
    if expected_version is not None and case.version != int(expected_version):
        raise _conflict(case, int(expected_version))
    _check_actor_scope(actor, case)
    engine = get_engine(case.workflow)
    try:
        outcome = engine.fire(case.state, trigger, actor.role, inputs, context_for(case, now))
    except WorkflowError as error:
        raise explain(error, case) from None
    photos = list(photos)
    if photos and not d.TRIGGERS[trigger].accepts_photos:
        raise ValidationError(
            _("Photos cannot be attached to “%(action)s”.", action=L.trigger_label(trigger)), field="photos"
        )
    if len(photos) > attachments.MAX_FILES_PER_ACTION:
        raise ValidationError(_("At most %(n)d photos per action.", n=attachments.MAX_FILES_PER_ACTION), field="photos")
    # one UPDATE of the case per action: no autoflush while its state and timers change
    with db.session.no_autoflush:
        payload = _apply_effects(case, outcome, actor, now)
        payload.update(sla.leaving_step(case, case.state, outcome.dest, now))
        source = case.state
        was_shelved = case.shelved
        left_step = facts.before_leaving(case, trigger, source, outcome.dest, now)
        case.state = outcome.dest
        case.state_entered_at = now
        case.updated_at = now
        if outcome.dest == "closed":
            case.closed_at = now
            case.resolution = outcome.resolution
        elif source == "closed":
            case.closed_at = None
            case.resolution = None
        sla.enter_state(case, source, now)  # timers go into the same UPDATE as the state
    note = (
        outcome.inputs.get("note")
        or outcome.inputs.get("result")
        or outcome.inputs.get("reply")
        or (outcome.inputs.get("reason") if trigger == "reopen" else None)
        or outcome.inputs.get("comment")
    )
    event_payload = {k: v for k, v in outcome.inputs.items() if k not in ("note", "result", "reply")}
    event_payload.update(payload)
    if outcome.resolution:
        event_payload["resolution"] = outcome.resolution
    event = record_event(
        case,
        actor,
        "transition",
        now=now,
        trigger=trigger,
        from_state=source,
        to_state=outcome.dest,
        note=note,
        payload=event_payload or None,
        flush=trigger == "signoff" or bool(photos),  # the follow-up and the photos refer to the event's id
    )
    facts.on_transition(case, source, trigger, now)
    if trigger == "close_invalid" and case.duplicate_of_id is not None:
        from app.cases import reports as case_reports  # reports imports this module

        case_reports.link_duplicate(case, db.session.get(Case, case.duplicate_of_id), actor, now=now)
    if was_shelved and not case.shelved:
        facts.end_shelving(case, now)
    if trigger == "signoff" and outcome.dest != "closed":
        facts.mark_sent_back(left_step)
    if trigger == "signoff":
        db.session.add(
            FollowUp(
                case_id=case.id,
                event_id=event.id,
                contacted=outcome.inputs["contacted"],
                resolved=outcome.inputs["resolved"],
                satisfaction=outcome.inputs["satisfaction"],
                comment=outcome.inputs.get("comment"),
                channel="resident" if actor.role == d.RESIDENT else actor.role,
                recorded_by_id=getattr(actor, "id", None),
                valid=True,
                created_at=now,
                **facts.follow_up_slice(case),
            )
        )
    for filename, data in photos:
        attachments.store(case, data, filename, actor, event)
    if not flush:
        return event
    sla.notify_transition(case, event)
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(
            _("Case %(ref)s was changed by someone else at the same moment. Reload and try again.", ref=case.ref),
            code="version_conflict",
        ) from None
    return event


def _apply_effects(case: Case, outcome, actor, now: datetime) -> dict[str, Any]:
    """Side effects of particular triggers on the case's facts; returns extra event payload.

    Raises :class:`WorkflowRefused` or :class:`ValidationError` when the case lacks what the trigger
    needs (no firm under contract, no party branch, an unknown original for a duplicate).
    """
    trigger = outcome.trigger
    extra: dict[str, Any] = {}
    if trigger == "grid_accept" and is_person(actor):
        if case.assigned_grid_worker_id != actor.id:
            extra["assigned_from"] = case.assigned_grid_worker_id
        case.assigned_grid_worker_id = actor.id
    elif trigger == "resolve_on_site":
        case.resolved_on_site = True
    elif trigger in ("dispatch_to_firm", "branch_approve"):
        if case.firm_id is None:
            raise WorkflowRefused(
                _("No property firm has a contract for this compound. Ask a supervisor to assign a firm first."),
                code="no_firm",
                http_status=409,
                details={"state": case.state},
            )
        if case.firm_dispatched_at is None:
            case.firm_dispatched_at = now
        case.resolved_on_site = False
        if trigger == "branch_approve":
            case.branch_approved = True
        extra["firm_id"] = case.firm_id
    elif trigger == "refer_to_branch":
        if case.branch_id is None:
            raise WorkflowRefused(
                _("This compound has no party branch to deliberate. Ask an administrator to add one."),
                code="no_branch",
                http_status=409,
                details={"state": case.state},
            )
    elif trigger == "close_invalid" and outcome.inputs.get("reason") == "duplicate":
        original = db.session.scalar(select(Case).where(Case.ref == outcome.inputs["duplicate_of"]))
        if original is None or original.id == case.id or original.street_id != case.street_id:
            raise ValidationError(
                _("No other case %(ref)s in this street to mark as the original.", ref=outcome.inputs["duplicate_of"]),
                field="duplicate_of",
            )
        case.duplicate_of_id = original.id
        extra["duplicate_of"] = original.ref
    elif trigger == "signoff" and outcome.dest != "closed":
        case.reopen_count += 1
    elif trigger == "reopen":
        case.reopen_count += 1
        case.resolved_on_site = False
    return extra


# --------------------------------------------------------------------------------- other actions


def add_note(
    case: Case, actor, text: str, *, contact: Mapping[str, str] | None = None, now: datetime | None = None
) -> CaseEvent:
    """Add a note to the case's history; ``contact`` (name, phone) records another resident reporting the
    same matter, kept out of property firms' sight. Raises :class:`ValidationError` or
    :class:`PermissionDenied`."""
    _check_actor_scope(actor, case)
    text = (text or "").strip()
    if not text:
        raise ValidationError(_("Write the note first."), field="note")
    if len(text) > MAX_NOTE:
        raise ValidationError(_("The note is longer than %(max)d characters.", max=MAX_NOTE), field="note")
    payload = None
    if contact and (contact.get("name") or contact.get("phone")):
        phone = re.sub(r"[\s-]", "", contact.get("phone") or "")
        if phone and not MOBILE_RE.match(phone):
            raise ValidationError(_("A mobile number has 11 digits and starts with 1."), field="contact_phone")
        payload = {"contact": {"name": (contact.get("name") or "").strip()[:50], "phone": phone}}
    case = lock_case(case.id)
    case.updated_at = now or utcnow()
    return record_event(case, actor, "note", now=now, note=text, payload=payload)


def attach(
    case: Case, actor, files: Iterable[tuple[str, bytes]], *, note: str | None = None, now: datetime | None = None
) -> CaseEvent:
    """Attach photos/documents to a case outside a transition (an event records it)."""
    _check_actor_scope(actor, case)
    files = list(files)
    if not files:
        raise ValidationError(_("Choose at least one file."), field="photos")
    if len(files) > attachments.MAX_FILES_PER_ACTION:
        raise ValidationError(_("At most %(n)d photos per action.", n=attachments.MAX_FILES_PER_ACTION), field="photos")
    case = lock_case(case.id)
    event = record_event(
        case,
        actor,
        "attachment",
        now=now,
        note=(note or "").strip()[:MAX_NOTE] or None,
        payload={"files": [name for name, _data in files]},
    )
    for filename, data in files:
        attachments.store(case, data, filename, actor, event)
    case.updated_at = now or utcnow()
    return event


REASSIGN_ROLES = (roles.SUPERVISOR, roles.ADMIN)


def reassign(
    case: Case,
    actor,
    *,
    grid_worker: int | str | None = None,
    firm: int | str | None = None,
    compound: int | str | None = None,
    note: str | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> CaseEvent:
    """Change who handles a case (supervisors of its area, administrators).

    ``compound`` corrects the location and re-derives the routing; ``grid_worker`` hands the grid
    work to another worker (in another grid too); ``firm`` changes the property firm before the
    firm has accepted. A case waiting for routing is routed as soon as it has a grid worker.
    Raises :class:`PermissionDenied`, :class:`ValidationError` or :class:`Conflict`.
    """
    now = now or utcnow()
    if not is_person(actor) or actor.role not in REASSIGN_ROLES:
        raise PermissionDenied(_("Only supervisors and administrators reassign cases."))
    _check_actor_scope(actor, case)
    case = lock_case(case.id)
    if expected_version is not None and case.version != int(expected_version):
        raise _conflict(case, int(expected_version))
    if case.state == "closed":
        raise Conflict(_("Case %(ref)s is closed; reopen it before reassigning.", ref=case.ref))
    note = (note or "").strip()
    if not note:
        raise ValidationError(_("Say why the case is reassigned."), field="note")
    changes: dict[str, Any] = {}

    if compound not in (None, ""):
        target = _find(Compound, compound)
        if target is None:
            raise ValidationError(_("No compound %(ref)s.", ref=compound), field="compound")
        if case.state not in ("registered", "grid_assigned", "grid_handling"):
            raise Conflict(_("The location can only be corrected before the case reaches the firm."))
        if not is_admin(actor) and not in_scope(actor, _RoutingView(target)):
            raise PermissionDenied(_("The compound %(name)s is outside your area.", name=target.name))
        targets = route_targets(target, to_local(now).date())
        changes["compound"] = [case.compound_id, target.id]
        case.compound_id = target.id
        case.community_id = target.community_id
        case.street_id = target.community.street_id
        if targets["firm_id"] != case.firm_id:
            case.firm_dispatched_at = None  # a firm sees only what was dispatched to it
        case.grid_id, case.firm_id, case.branch_id = targets["grid_id"], targets["firm_id"], targets["branch_id"]
        case.building_id = None
        if grid_worker in (None, "") and targets["grid_worker"] is not None:
            grid_worker = targets["grid_worker"].id

    if grid_worker not in (None, ""):
        worker = _find(User, grid_worker, by_name=False) or db.session.scalar(
            select(User).where(User.username == str(grid_worker))
        )
        if worker is None or worker.role != roles.GRID_WORKER or not worker.is_active:
            raise ValidationError(_("Choose an active grid worker."), field="grid_worker")
        if not is_admin(actor) and worker.grid is not None and not in_scope(actor, _RoutingView.of_grid(worker)):
            raise PermissionDenied(_("That grid worker works outside your area."))
        changes["grid_worker"] = [case.assigned_grid_worker_id, worker.id]
        case.assigned_grid_worker_id = worker.id
        if worker.grid_id != case.grid_id:
            changes["grid"] = [case.grid_id, worker.grid_id]
            case.grid_id = worker.grid_id

    if firm not in (None, ""):
        target_firm = _find(PropertyFirm, firm)
        if target_firm is None:
            raise ValidationError(_("No property firm %(ref)s.", ref=firm), field="firm")
        if case.state in ("firm_processing", "on_hold"):
            raise Conflict(_("The firm has accepted this case; it must return it before another firm takes over."))
        changes["firm"] = [case.firm_id, target_firm.id]
        case.firm_id = target_firm.id
        # the new firm sees the case only once it is dispatched to it
        case.firm_dispatched_at = now if case.state == "firm_dispatched" else None

    if not changes:
        raise ValidationError(_("Choose a new grid worker, firm or compound."), field="grid_worker")
    case.updated_at = now
    party = facts.PARTY_OF_STATE.get(case.state)
    routing = case.state == "registered" and case.assigned_grid_worker_id is not None
    handler_changed = not routing and (
        "compound" in changes
        or ("grid_worker" in changes and party == "grid")
        or ("firm" in changes and party == "firm")
    )
    payload = dict(changes)
    if handler_changed:  # the old handler's step ends here: was it on time?
        payload.update(sla.leaving_step(case, case.state, case.state, now))
    event = record_event(case, actor, "reassign", now=now, note=note, payload=payload)
    if routing:
        case.needs_routing = False
        fire(case, "route", SYSTEM_ACTOR, now=now, lock=False)
    paused_since = facts.leave_for_reassignment(case, now) if handler_changed else None
    sla.on_reassigned(case, event, now)
    if handler_changed:
        facts.enter_after_reassignment(case, now, paused_since)
    return event


class _RoutingView:
    """Routing columns of a prospective location, to check a supervisor's scope before moving a case."""

    firm_id = None
    branch_id = None
    firm_visible = True

    def __init__(self, compound: Compound | None = None):
        self.street_id = compound.community.street_id if compound else None
        self.community_id = compound.community_id if compound else None
        self.grid_id = compound.grid_id if compound else None

    @classmethod
    def of_grid(cls, worker: User) -> _RoutingView:
        view = cls()
        view.grid_id = worker.grid_id
        view.community_id = worker.grid.community_id
        view.street_id = worker.grid.community.street_id
        return view


# ------------------------------------------------------------------------------------- residents


#: sign-off codes are read aloud and typed: no 0/O, 1/I/L look-alikes (31 symbols, 8 of them ≈ 8.5e11)
SIGNOFF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
SIGNOFF_CODE_LENGTH = 8


def new_signoff_code() -> str:
    """A random sign-off code for the receipt, e.g. ``K7MQ2XPA``."""
    return "".join(secrets.choice(SIGNOFF_ALPHABET) for _ in range(SIGNOFF_CODE_LENGTH))


def unique_signoff_code() -> str:
    """A sign-off code no case and no linked report uses yet (8.5e11 codes: a clash is rare, not impossible)."""
    from app.cases.models import CaseReport

    while True:
        code = new_signoff_code()
        taken = union_all(
            select(Case.id).where(Case.signoff_token == code),
            select(CaseReport.id).where(CaseReport.signoff_token == code),
        ).limit(1)
        if db.session.execute(taken).first() is None:  # one statement for both tables
            return code


def normalize_signoff_code(text: str) -> str:
    """What a resident typed (``k7mq-2xpa``, ``K7MQ 2XPA``) as a stored code (``K7MQ2XPA``)."""
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())[:32]


def format_signoff_code(code: str) -> str:
    """A short code in two groups for reading aloud (``K7MQ-2XPA``); older long tokens unchanged."""
    return f"{code[:4]}-{code[4:]}" if len(code) == SIGNOFF_CODE_LENGTH else code


def case_for_signoff_token(token: str) -> Case:
    """The case a resident's sign-off link or typed code points to. Raises :class:`NotFound`.

    Older receipts carry a longer, case-sensitive token: it is tried as it is first. The stored code is
    compared in constant time.
    """
    token = (token or "").strip()[:64]
    matched = token
    case = db.session.scalar(select(Case).where(Case.signoff_token == token)) if token else None
    if case is None and token:
        code = normalize_signoff_code(token)
        if code and code != token:
            case = db.session.scalar(select(Case).where(Case.signoff_token == code))
            matched = code
    if case is None or not throttle.same_secret(case.signoff_token, matched):
        raise NotFound(_("This sign-off link is not valid. Check the code on your receipt."))
    return case


def resident_signoff(token: str, inputs: Mapping[str, Any], *, now: datetime | None = None) -> CaseEvent:
    """Record a resident's own sign-off through the link on the receipt."""
    case = case_for_signoff_token(token)
    return fire(case, "signoff", ResidentActor(case.id), inputs=inputs, now=now)


def case_for_resident(ref: str, last4: str) -> Case:
    """A case looked up by a resident with its reference and the last 4 digits of their phone.

    Raises :class:`NotFound` with the same message whether the reference or the digits are wrong.
    """
    case = db.session.scalar(select(Case).where(Case.ref == (ref or "").strip().upper()))
    if case is None or not throttle.same_secret(case.resident_phone_last4, last4):  # constant time
        raise NotFound(_("No case matches this reference number and phone digits."))
    return case
