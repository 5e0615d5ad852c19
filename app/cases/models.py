"""Cases, their immutable event trail, follow-ups (sign-offs) and attachments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.core.types import UTCDateTime
from app.extensions import db
from app.reports.models import SliceColumns
from workflows import OPEN_STATES

URGENCY_NORMAL = "normal"
URGENCY_URGENT = "urgent"
URGENCIES = (URGENCY_NORMAL, URGENCY_URGENT)

CHANNELS = ("window", "phone", "grid", "online", "hotline", "api", "open311")


class Category(db.Model):
    """A kind of matter (water leak, lift fault, …): names its workflow and default urgency."""

    __tablename__ = "category"
    __table_args__ = (
        CheckConstraint("default_urgency IN ('normal', 'urgent')", name="urgency_known"),
        CheckConstraint("workflow IN ('standard', 'onsite', 'predeliberation')", name="workflow_known"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    default_urgency: Mapped[str] = mapped_column(String(16), default=URGENCY_NORMAL)
    workflow: Mapped[str] = mapped_column(String(32), default="standard")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    sort_order: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    #: extra questions asked at intake (Open311 service attributes): a list of
    #: {"code", "datatype", "required", "description_zh", "description_en", "order", "values": [{"key", "name"}]}
    attributes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    def name_for(self, locale: str | None) -> str:
        return self.name_en if (locale or "").startswith("en") else self.name_zh

    @property
    def name(self) -> str:
        from app.core.i18n import is_english

        return self.name_en if is_english() else self.name_zh

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"


class RefCounter(db.Model):
    """Per-day sequence for case reference numbers (KSM-YYYYMMDD-NNNN)."""

    __tablename__ = "ref_counter"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


#: the open-work indexes: partial (``state <> 'closed'``), so they hold only the open cases
_OPEN = "state <> 'closed'"
QUEUE_SCOPES = (
    "grid_id",
    "firm_id",
    "community_id",
    "street_id",
    "branch_id",
    "station_id",
    "compound_id",
)
#: a grid worker's own work (assigned to them, in the states where they act), by deadline
GRID_WORK = "state IN ('registered', 'grid_assigned', 'grid_handling')"
#: a property firm's own work (the states where it acts), by deadline: its queue and its "near the deadline"
#: chip read the nearest deadlines in order instead of every case of the three states then sorting
FIRM_WORK = "state IN ('firm_dispatched', 'firm_processing', 'on_hold')"
OPEN_WORK_INDEXES = (
    [
        Index(
            f"ix_case_open_{scope.removesuffix('_id')}_due",
            scope,
            "due_at",
            "id",
            postgresql_where=text(_OPEN),
            sqlite_where=text(_OPEN),
        )
        for scope in QUEUE_SCOPES
    ]
    + [
        Index(
            f"ix_case_open_{scope.removesuffix('_id')}_state",
            scope,
            "state",
            "due_at",
            "id",
            postgresql_where=text(_OPEN),
            sqlite_where=text(_OPEN),
        )
        for scope in ("grid_id", "firm_id", "community_id", "street_id", "branch_id")
    ]
    + [
        Index("ix_case_open_due", "due_at", "id", postgresql_where=text(_OPEN), sqlite_where=text(_OPEN)),
        # one state over the whole city (an administrator's chips and state filter): only that state's rows
        Index(
            "ix_case_open_state_due", "state", "due_at", "id", postgresql_where=text(_OPEN), sqlite_where=text(_OPEN)
        ),
        Index(
            "ix_case_grid_work_due",
            "assigned_grid_worker_id",
            "grid_id",  # the grid worker's scope: both equalities lead, so the rows come in deadline order
            "due_at",
            "id",
            postgresql_where=text(GRID_WORK),
            sqlite_where=text(GRID_WORK),
        ),
        Index(
            "ix_case_firm_work_due",
            "firm_id",
            "due_at",
            "id",
            postgresql_where=text(FIRM_WORK),
            sqlite_where=text(FIRM_WORK),
        ),
        # one channel's open cases by deadline (a rare channel such as the 12345 hotline in a large scope)
        Index(
            "ix_case_open_channel_due",
            "channel",
            "due_at",
            "id",
            postgresql_where=text(_OPEN),
            sqlite_where=text(_OPEN),
        ),
    ]
)

#: the search index: on PostgreSQL one GIN index over the scope columns (btree_gin) and trigrams (pg_trgm) of
#: the texts a search box matches, so "this word, in my street" is one index scan that yields only the
#: matches in the user's scope — a word common in the city but rare in the scope costs its matches there,
#: not a walk through the scope. On SQLite (development) a plain index of the same name.
SEARCH_SCOPE_COLUMNS = ("street_id", "community_id", "grid_id", "firm_id", "branch_id")
#: the texts a search word is looked for in, in this order in :func:`search_text`
TRIGRAM_COLUMNS = ("ref", "resident_name", "description", "address_text")


def search_text(entity) -> ColumnElement[str]:
    """A case's searched texts as one string: reference, resident's name, description and address, joined
    by a space (a search word has no space, so it never matches across two of them).

    The search index holds the trigrams of this expression (with the scope columns), and a query that
    compares the same expression uses it: one index scan and one ``LIKE`` per row, where four columns
    each with their own trigrams took four scans and four comparisons per row (the rows' recheck was half
    of a search's time). The constants are written into the SQL, not bound, so that a prepared
    statement's generic plan still matches the index's expression."""
    space, empty = literal_column("' '"), literal_column("''")
    joined = func.coalesce(getattr(entity, TRIGRAM_COLUMNS[0]), empty)
    for name in TRIGRAM_COLUMNS[1:]:
        joined = joined.concat(space).concat(func.coalesce(getattr(entity, name), empty))
    return joined


class Case(db.Model):
    """A resident's matter, from intake to sign-off.

    ``state`` is changed only by :func:`app.cases.services.fire`; the routing columns
    (``street_id`` … ``branch_id``) are copied from the compound at intake so scope checks and lists
    need no joins.
    """

    __tablename__ = "case"
    __table_args__ = (
        CheckConstraint("urgency IN ('normal', 'urgent')", name="urgency_known"),
        CheckConstraint("reopen_count >= 0", name="reopen_count_positive"),
        # every list is "cases in my scope, newest first": one index per scope column, in list order
        Index("ix_case_grid_created", "grid_id", "created_at", "id"),
        Index("ix_case_firm_created", "firm_id", "created_at", "id"),
        Index("ix_case_community_created", "community_id", "created_at", "id"),
        Index("ix_case_street_created", "street_id", "created_at", "id"),
        Index("ix_case_branch_created", "branch_id", "created_at", "id"),
        Index("ix_case_created", "created_at", "id"),
        Index("ix_case_assignee_state", "assigned_grid_worker_id", "state"),
        Index("ix_case_dup_hint", "compound_id", "category_id", "created_at"),
        Index(
            "ix_case_needs_routing",
            "street_id",
            postgresql_where=text("needs_routing"),
            sqlite_where=text("needs_routing"),
        ),
        # the sweep: "what is due now" is a range scan on a small partial index
        Index(
            "ix_case_next_check",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
        # supervisors' overdue and shelved lists
        Index(
            "ix_case_community_level",
            "community_id",
            "escalation_level",
            postgresql_where=text("escalation_level > 0"),
            sqlite_where=text("escalation_level > 0"),
        ),
        Index("ix_case_shelved", "street_id", postgresql_where=text("shelved"), sqlite_where=text("shelved")),
        Index(
            "ix_case_street_level",
            "street_id",
            "escalation_level",
            postgresql_where=text("escalation_level > 0"),
            sqlite_where=text("escalation_level > 0"),
        ),
        # the overdue board's "stuck" cases: open, nothing happened since
        Index(
            "ix_case_street_open_updated",
            "street_id",
            "updated_at",
            postgresql_where=text("state <> 'closed'"),
            sqlite_where=text("state <> 'closed'"),
        ),
        Index(
            "ix_case_community_open_updated",
            "community_id",
            "updated_at",
            postgresql_where=text("state <> 'closed'"),
            sqlite_where=text("state <> 'closed'"),
        ),
        # an outside system's reference (e.g. "12345:<work-order number>"): importing twice creates nothing
        Index(
            "uq_case_external_ref",
            "external_ref",
            unique=True,
            postgresql_where=text("external_ref IS NOT NULL"),
            sqlite_where=text("external_ref IS NOT NULL"),
        ),
        # residents to remind before an unanswered sign-off closes itself (every minute, a small range scan)
        Index(
            "ix_case_signoff_due",
            "due_at",
            postgresql_where=text("state = 'awaiting_signoff'"),
            sqlite_where=text("state = 'awaiting_signoff'"),
        ),
        # work queues: open cases of a scope by deadline, and of one state of a scope by deadline
        *OPEN_WORK_INDEXES,
        # search: a caller's phone, its last 4 digits
        Index("ix_case_phone", "resident_phone"),
        Index("ix_case_phone_last4", "resident_phone_last4"),
        # search: scope and "part of" comparisons in one GIN index on PostgreSQL (ix_case_search_text,
        # declared below the class: it indexes an expression of the columns)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id", ondelete="RESTRICT"))
    workflow: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(32), default="registered")
    channel: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)

    # where
    street_id: Mapped[int] = mapped_column(ForeignKey("street.id", ondelete="RESTRICT"))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id", ondelete="RESTRICT"))
    compound_id: Mapped[int | None] = mapped_column(ForeignKey("compound.id", ondelete="RESTRICT"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id", ondelete="SET NULL"))
    unit: Mapped[str | None] = mapped_column(String(50))
    address_text: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)

    # who reported
    resident_name: Mapped[str | None] = mapped_column(String(50))
    resident_phone: Mapped[str | None] = mapped_column(String(20))
    resident_phone_last4: Mapped[str | None] = mapped_column(String(4))
    #: secret in the resident's sign-off link / code on the receipt
    signoff_token: Mapped[str] = mapped_column(String(32), unique=True)

    # routing
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    firm_id: Mapped[int | None] = mapped_column(ForeignKey("property_firm.id", ondelete="RESTRICT"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("party_branch.id", ondelete="RESTRICT"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("service_station.id", ondelete="SET NULL"))
    assigned_grid_worker_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    needs_routing: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    # progress facts the rules read
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resolved_on_site: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    branch_approved: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    firm_dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(40))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))

    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state_entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # time limits of the current step (see app.sla): warn at 80 %, overdue at due_at, long overdue at red_at
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    red_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: 0 normal, 1 warned, 2 overdue (yellow card), 3 long overdue (red card)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: length of the current step's limit in minutes (business minutes when step_working)
    step_limit_minutes: Mapped[float | None] = mapped_column(Float)
    step_working: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # whole-case limit
    resolve_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    case_working: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    case_overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # clock stopped (on hold or shelved): what was left of the step and of the case, in their units
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_step_minutes: Mapped[float | None] = mapped_column(Float)
    paused_case_minutes: Mapped[float | None] = mapped_column(Float)
    # 挂账: a supervisor-approved long-running case
    shelved: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    shelved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shelve_review_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shelve_reason: Mapped[str | None] = mapped_column(Text)
    shelve_review_notified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: the earliest instant the escalation sweep has something to do for this case (NULL: nothing)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    #: optimistic lock: every write bumps it; a stale writer gets StaleDataError
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    __mapper_args__ = {"version_id_col": version}

    category: Mapped[Category] = relationship()
    street = relationship("Street")
    community = relationship("Community")
    compound = relationship("Compound")
    building = relationship("Building")
    grid = relationship("Grid")
    firm = relationship("PropertyFirm")
    branch = relationship("PartyBranch")
    station = relationship("ServiceStation")
    assigned_grid_worker = relationship("User", foreign_keys=[assigned_grid_worker_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    duplicate_of = relationship("Case", remote_side=[id])

    @property
    def firm_visible(self) -> bool:
        """Property managers see a case once it has been dispatched to their firm."""
        return self.firm_dispatched_at is not None

    @classmethod
    def firm_visible_clause(cls):
        return cls.firm_dispatched_at.is_not(None)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def masked_phone(self) -> str:
        """The resident's mobile with the middle digits hidden (for property firms)."""
        phone = self.resident_phone or ""
        return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else ("****" if phone else "")

    def __repr__(self) -> str:
        return f"<Case {self.ref} {self.state}>"


#: search: the scope columns and the trigrams of :func:`search_text` in one GIN index on PostgreSQL
#: (``btree_gin`` for the integers), so the index yields only the matches in the user's scope
SEARCH_INDEX = Index(
    "ix_case_search_text",
    *(getattr(Case, column) for column in SEARCH_SCOPE_COLUMNS),
    search_text(Case).label("search_text"),
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
)


class CaseEvent(db.Model):
    """One immutable line of a case's history: a transition or any other action.

    Rows are only ever inserted; updates and deletes are refused by the ORM and by database triggers.
    """

    __tablename__ = "case_event"
    __table_args__ = (Index("ix_case_event_case_id_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str | None] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    actor = relationship("User")

    def __repr__(self) -> str:
        return f"<CaseEvent {self.kind} {self.trigger or ''} {self.from_state}->{self.to_state}>"


@event.listens_for(CaseEvent, "before_update")
def _events_are_immutable(_mapper, _connection, target):
    raise RuntimeError("case events are immutable: add a new event instead")


@event.listens_for(CaseEvent, "before_delete")
def _events_are_never_deleted(_mapper, _connection, target):
    raise RuntimeError("case events are never deleted")


class FollowUp(SliceColumns, db.Model):
    """A resident's sign-off answers (回访): the raw data of the three rates.

    The slice columns are those of the case when the answer was given, with ``firm_id`` set only when the
    property firm completed the work being judged (see :mod:`app.reports.facts`). A supervisor may mark a
    follow-up invalid (e.g. the resident could not be reached) with a reason; it then counts in no rate.
    """

    __tablename__ = "follow_up"
    __table_args__ = (
        CheckConstraint("satisfaction IN ('satisfied', 'basic', 'unsatisfied')", name="satisfaction_known"),
        Index("ix_follow_up_created", "created_at"),
        *(
            Index(f"ix_follow_up_{column}_created", column, "created_at")
            for column in ("street_id", "community_id", "grid_id", "firm_id", "branch_id")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_event.id", ondelete="RESTRICT"))
    contacted: Mapped[bool] = mapped_column(Boolean)
    resolved: Mapped[bool] = mapped_column(Boolean)
    satisfaction: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    #: resident (self-service link) or the role of the staff member who phoned
    channel: Mapped[str] = mapped_column(String(16))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    #: the linked caller's report this follow-up answers (None: the case's own caller)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("case_report.id", ondelete="RESTRICT"), index=True)
    valid: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    #: whose work the resident judged: firm | grid
    party: Mapped[str | None] = mapped_column(String(16))
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    invalidated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseReport(db.Model):
    """Another caller's report of a matter already open as a case (one case, many callers).

    The caller gets their own reference, receipt, tracking and sign-off; the handling is the main case's.
    A supervisor may undo the link: the report then becomes a case of its own (same reference and code).
    """

    __tablename__ = "case_report"
    __table_args__ = (Index("ix_case_report_case", "case_id", "id"), Index("ix_case_report_phone", "resident_phone"))

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    signoff_token: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(50))
    resident_name: Mapped[str | None] = mapped_column(String(50))
    resident_phone: Mapped[str | None] = mapped_column(String(20))
    resident_phone_last4: Mapped[str | None] = mapped_column(String(4))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("service_station.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: set when a supervisor undid the link; the report then lives on as ``split_case_id``
    unlinked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    split_case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))

    case = relationship("Case", foreign_keys=[case_id])
    station = relationship("ServiceStation")

    @property
    def active(self) -> bool:
        return self.unlinked_at is None

    @property
    def masked_phone(self) -> str:
        phone = self.resident_phone or ""
        return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else ("****" if phone else "")


class Attachment(db.Model):
    """A photo or document stored under ``UPLOAD_DIR``; only its metadata lives here."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_event.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(200))
    stored_name: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
