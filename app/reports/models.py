"""The facts behind the figures (DESIGN §5), written when they happen, and the frozen firm ratings.

- :class:`StepFact` — one row per step a case passes through: who was responsible (grid worker, firm,
  branch), the organisation, category, urgency and channel at that time, when the step was entered, its
  deadline, when and by which trigger it was left, whether it was on time, the highest escalation level
  reached, working time used and time paused. A ``closed`` step is the case's closure (its resolution and
  handling time); leaving it by ``reopen`` is a supervisor's reopen.
- :class:`ActionFact` — one row per yellow/red card, urge and shelving, with the party it was against.
- follow-ups (:class:`app.cases.models.FollowUp`) carry the same slice columns.

The slice columns (``street_id`` … ``branch_id``) describe the case at the time; ``firm_id`` is set only
on facts the property firm answers for (its own steps, the sign-off of work it completed, cards against
it), so a firm is judged on its own steps even if the case later moves to another firm.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime
from app.extensions import db


class SliceColumns:
    """Who and what a fact is about, frozen at the time it happened."""

    street_id: Mapped[int | None] = mapped_column(Integer)
    community_id: Mapped[int | None] = mapped_column(Integer)
    compound_id: Mapped[int | None] = mapped_column(Integer)
    grid_id: Mapped[int | None] = mapped_column(Integer)
    grid_worker_id: Mapped[int | None] = mapped_column(Integer)
    firm_id: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(Integer)
    category_id: Mapped[int | None] = mapped_column(Integer)
    urgency: Mapped[str | None] = mapped_column(String(16))
    #: how the case came in (window, phone, hotline, …)
    intake_channel: Mapped[str | None] = mapped_column(String(16))


def _slice_indexes(table: str, time_column: str) -> tuple[Index, ...]:
    """``period × slice`` indexes: one per scope column a list or figure is limited by."""
    return tuple(
        Index(f"ix_{table}_{column}_{time_column}", column, time_column)
        for column in ("street_id", "community_id", "grid_id", "firm_id", "branch_id")
    ) + (Index(f"ix_{table}_{time_column}", time_column),)


class StepFact(SliceColumns, db.Model):
    """One step of one case (see module docstring)."""

    __tablename__ = "fact_step"
    __table_args__ = (
        *_slice_indexes("fact_step", "left_at"),
        Index("ix_fact_step_case", "case_id", "id"),
        # volume and closures are counted by when a step was entered
        Index("ix_fact_step_street_state_entered", "street_id", "state", "entered_at"),
        Index("ix_fact_step_community_state_entered", "community_id", "state", "entered_at"),
        Index("ix_fact_step_state_entered", "state", "entered_at"),
        # the backlog now: the steps cases are in (a closed case's last step stays open: not here)
        Index(
            "ix_fact_step_open",
            "street_id",
            "community_id",
            "due_at",
            postgresql_where=text("left_at IS NULL AND state <> 'closed'"),
            sqlite_where=text("left_at IS NULL AND state <> 'closed'"),
        ),
        # room on each page for the sweep's raising of an open step's level: a HOT update, no index touched
        # (migration 0016)
        {"postgresql_with": {"fillfactor": 90}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(32))
    #: grid | firm | branch | resident | system — whose move the step waits for
    party: Mapped[str] = mapped_column(String(16))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entered_trigger: Mapped[str | None] = mapped_column(String(32))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_trigger: Mapped[str | None] = mapped_column(String(32))
    #: accept | handle | None: which on-time figure the step counts in (see app.reports.facts)
    kind: Mapped[str | None] = mapped_column(String(8))
    #: counts in its on-time figure (left by the party's own action, or late whatever ended it)
    timed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    max_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    working_minutes: Mapped[float | None] = mapped_column(Float)
    paused_minutes: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: the clock of this step stopped at (on hold, shelved); None while running
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # on a ``closed`` step: the closure
    resolution: Mapped[str | None] = mapped_column(String(40))
    handling_minutes: Mapped[float | None] = mapped_column(Float)
    case_on_time: Mapped[bool | None] = mapped_column(Boolean)
    # on an ``awaiting_signoff`` step left by the resident: sent back to handling
    sent_back: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    def __repr__(self) -> str:
        return f"<StepFact case={self.case_id} {self.state} {self.party} {self.entered_at:%Y-%m-%d}>"


class ActionFact(SliceColumns, db.Model):
    """A yellow or red card, an urge, or a shelving (``ended_at`` when taken off the shelf)."""

    __tablename__ = "fact_action"
    __table_args__ = (
        *_slice_indexes("fact_action", "at"),
        Index("ix_fact_action_case", "case_id"),
        # shelvings in force at an instant (the backlog): few rows, whatever the number of cards
        Index(
            "ix_fact_action_shelvings",
            "street_id",
            "at",
            postgresql_where=text("kind = 'shelve'"),
            sqlite_where=text("kind = 'shelve'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id", ondelete="RESTRICT"))
    #: yellow | red | urge | shelve
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str | None] = mapped_column(String(32))
    #: the party the card or urge was against
    party: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ------------------------------------------------------------------------------------ monthly rollup

#: the steps whose on-time figures are also kept per step
TIMED_STEPS = ("grid_assigned", "grid_handling", "branch_review", "firm_dispatched", "firm_processing")
#: the additive counts every figure is derived from (see app.reports.indicators)
COUNTERS = (
    "follow_ups",
    "contacted",
    "resolved",
    "satisfied",
    "basic",
    "unsatisfied",
    "invalid_follow_ups",
    "accept_steps",
    "accept_on_time",
    "handle_steps",
    "handle_on_time",
    "signoff_steps",
    "sent_back",
    "reopens",
    "volume",
    "firm_orders",
    "closed",
    "auto_closed",
    "handling_count",
    "handling_minutes_sum",
    "yellow_cards",
    "red_cards",
    "urges",
    "backlog_open",
    "backlog_overdue",
    "backlog_shelved",
    *(f"{prefix}_{state}" for state in TIMED_STEPS for prefix in ("steps", "on_time")),
)
FLOAT_COUNTERS = frozenset({"handling_minutes_sum"})

#: The counts of one reporting month per combination of slice values, refreshed from the facts by the
#: scheduler (app.reports.rollup): dashboards and bulletins read a few hundred rows instead of millions.
fact_rollup = Table(
    "fact_rollup",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("month", String(7), nullable=False),
    Column("street_id", Integer),
    Column("community_id", Integer),
    Column("compound_id", Integer),
    Column("grid_id", Integer),
    Column("grid_worker_id", Integer),
    Column("firm_id", Integer),
    Column("branch_id", Integer),
    Column("category_id", Integer),
    Column("urgency", String(16)),
    Column("intake_channel", String(16)),
    *(
        Column(name, Float if name in FLOAT_COUNTERS else Integer, nullable=False, server_default="0")
        for name in COUNTERS
    ),
    *(
        Index(f"ix_fact_rollup_month_{column}", "month", column)
        for column in ("street_id", "community_id", "grid_id", "firm_id", "branch_id")
    ),
)


class RollupMonth(db.Model):
    """When a month's rollup was refreshed, with which cut-off day, and whether it is out of date."""

    __tablename__ = "rollup_month"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    cutoff_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: refreshed after the month ended: its counts (and end-of-month backlog) are final
    complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: a fact of the month changed after the refresh (e.g. a follow-up marked invalid)
    dirty: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# ------------------------------------------------------------------------------------- firm ratings


class FirmRating(db.Model):
    """A firm's credit rating of one month, frozen when computed (DESIGN §6)."""

    __tablename__ = "firm_rating"
    __table_args__ = (UniqueConstraint("month", "firm_id"), Index("ix_firm_rating_firm_month", "firm_id", "month"))

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    firm_id: Mapped[int] = mapped_column(ForeignKey("property_firm.id", ondelete="RESTRICT"))
    #: score from the firm's own figures before adjustments (None: nothing to rate this month)
    base_score: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str | None] = mapped_column(String(1))
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    rated_on: Mapped[date] = mapped_column(Date)
    restricted_until: Mapped[date | None] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    computed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    firm = relationship("PropertyFirm")


class RatingAdjustment(db.Model):
    """A supervisor's adjustment of a firm's monthly score: points, reason, who, when."""

    __tablename__ = "rating_adjustment"
    __table_args__ = (Index("ix_rating_adjustment_month_firm", "month", "firm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    firm_id: Mapped[int] = mapped_column(ForeignKey("property_firm.id", ondelete="RESTRICT"))
    points: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
