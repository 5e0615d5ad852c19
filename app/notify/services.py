"""Creating notifications (inbox + outbox) and delivering the outbox with retries.

A notification is written in the same transaction as the action that caused it; outbound delivery
happens later (the scheduler's delivery job), so a slow or failing mail server never breaks or delays
a transition, and a failed send never loses the in-app notification.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from app.auth import roles
from app.auth.models import User
from app.core.bulk import insert_rows
from app.core.i18n import force_locale
from app.core.timeutil import utcnow
from app.extensions import db
from app.notify.channels import CHANNELS, DeliveryError, Outgoing, enabled_channels, group_robots
from app.notify.models import ChannelPreference, Notification, OutboundMessage

log = logging.getLogger("ksm.notify")

#: minutes to wait before the 2nd, 3rd, … attempt
RETRY_BACKOFF_MINUTES = (1, 5, 15, 60, 240)
MAX_ATTEMPTS = len(RETRY_BACKOFF_MINUTES) + 1

Render = Callable[[], tuple[str, str]]


def _locale_of(user: User) -> str:
    languages = current_app.config["LANGUAGES"]
    return user.locale if user.locale in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def next_working_moment(now: datetime) -> datetime:
    """When a non-urgent staff message may go out: now in business hours, else the next business moment."""
    from app.sla.calendar import CalendarError
    from app.sla.services import load_calendar

    try:
        return load_calendar().add_business_minutes(now, 0)
    except CalendarError:
        return now


def _urgent_cases(case_ids: Iterable[int | None]) -> set[int]:
    from app.cases.models import Case

    ids = {i for i in case_ids if i}
    if not ids:
        return set()
    # a case of this session not yet written (an intake notifies before its rows go out): its own urgency
    pending = {obj.id: obj.urgency for obj in db.session.new if isinstance(obj, Case) and obj.id in ids}
    urgent = {number for number, urgency in pending.items() if urgency == "urgent"}
    rest = ids - pending.keys()
    if rest:
        urgent |= set(db.session.scalars(select(Case.id).where(Case.id.in_(rest), Case.urgency == "urgent")))
    return urgent


def _preferences(users: Iterable[User]) -> dict[int, set[str]]:
    """user id → the outbound channels the user chose (users without a choice get every enabled channel)."""
    ids = {u.id for u in users}
    if not ids:
        return {}
    rows = db.session.scalars(select(ChannelPreference).where(ChannelPreference.user_id.in_(ids)))
    return {row.user_id: {c for c in row.channels.split(",") if c} for row in rows}


def _insert(rows: list[dict], owners: list[User], now: datetime) -> int:
    """Insert notifications and their outbox rows: a few statements whatever the number.

    Outbound copies of non-urgent messages wait for working time (quiet hours); messages about urgent
    cases go at once. The inbox row is always written at once.
    """
    if not rows:
        return 0
    channels = enabled_channels()
    queued = [c for c in channels if not c.immediate]
    ids = insert_rows(Notification, rows, return_ids=bool(queued))
    outbox = []
    if queued:
        chosen = _preferences(owners)
        urgent = _urgent_cases(row["case_id"] for row in rows)
        later = next_working_moment(now)
    for index, (user, row) in enumerate(zip(owners, rows, strict=True)):
        for channel in channels:
            address = channel.address_of(user)
            if not address:
                continue
            if channel.immediate:
                # sent once the transaction commits: a rolled-back action notifies no one
                db.session.info.setdefault("immediate_sends", []).append(
                    (channel, address, row["title"], row["body"] or row["title"])
                )
            elif user.id not in chosen or channel.name in chosen[user.id]:
                outbox.append(
                    {
                        "notification_id": ids[index],
                        "channel": channel.name,
                        "audience": "staff",
                        "case_id": row["case_id"],
                        "kind": row["kind"],
                        "recipient": address,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now if row["case_id"] in urgent else later,
                        "created_at": now,
                    }
                )
    insert_rows(OutboundMessage, outbox)
    return len(rows)


#: notification kinds that a community's group robot also receives (yellow and red cards)
GROUP_KINDS = ("escalation_2", "escalation_3")


def _queue_group_messages(items, now: datetime) -> None:
    """Yellow and red cards also go to the community's staff group robot (when one is configured)."""
    wanted = [(kind, render, case_id) for _users, kind, render, case_id in items if kind in GROUP_KINDS and case_id]
    if not wanted:
        return
    robots = group_robots()
    if not robots:
        return
    from app.cases.models import Case
    from app.org.models import Community

    codes = dict(
        db.session.execute(
            select(Case.id, Community.code)
            .join(Community, Community.id == Case.community_id)
            .where(Case.id.in_({case_id for _k, _r, case_id in wanted}))
        ).all()
    )
    urgent = _urgent_cases(codes)
    later = next_working_moment(now)
    outbox, seen = [], set()
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        for kind, render, case_id in wanted:
            code = codes.get(case_id)
            if code not in robots or (case_id, kind) in seen:
                continue
            seen.add((case_id, kind))
            title, body = render()
            outbox.append(
                {
                    "notification_id": None,
                    "channel": "robot",
                    "audience": "group",
                    "case_id": case_id,
                    "kind": kind,
                    "params": {"subject": title[:200], "body": body or ""},
                    "recipient": code,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now if case_id in urgent else later,
                    "created_at": now,
                }
            )
    insert_rows(OutboundMessage, outbox)


def notify(
    users: Iterable[User], kind: str, render: Render, *, case_id: int | None = None, now: datetime | None = None
) -> int:
    """Put a notification in each user's inbox and queue it for every enabled outbound channel.

    ``render`` returns (title, body) and is called once per language, inside ``force_locale``.
    Returns how many notifications were created.
    """
    batch = Bulk()
    batch.add(users, kind, render, case_id)
    return batch.flush(now or utcnow())


@dataclass
class Bulk:
    """Notifications gathered during a sweep, written with two statements in all."""

    items: list[tuple[list[User], str, Render, int | None]]

    def __init__(self):
        self.items = []

    def add(self, users: Iterable[User], kind: str, render: Render, case_id: int | None) -> None:
        self.items.append((list(users), kind, render, case_id))

    def flush(self, now: datetime) -> int:
        # one force_locale per language, not per notification: the sweep renders thousands at once
        by_locale: dict[str, list[tuple[list[User], str, Render, int | None]]] = defaultdict(list)
        for users, kind, render, case_id in self.items:
            groups: dict[str, list[User]] = defaultdict(list)
            for user in {u.id: u for u in users if u is not None and u.is_active}.values():
                groups[_locale_of(user)].append(user)
            for locale, people in groups.items():
                by_locale[locale].append((people, kind, render, case_id))
        _queue_group_messages(self.items, now)
        rows, owners = [], []
        for locale, items in by_locale.items():
            with force_locale(locale):
                for people, kind, render, case_id in items:
                    title, body = render()
                    for user in people:
                        rows.append(
                            {
                                "user_id": user.id,
                                "case_id": case_id,
                                "kind": kind,
                                "title": title[:200],
                                "body": body,
                                "created_at": now,
                            }
                        )
                        owners.append(user)
        self.items = []
        return _insert(rows, owners, now)


# ----------------------------------------------------------------------------------------- recipients


def users_where(*conditions) -> list[User]:
    return list(db.session.scalars(select(User).where(User.active.is_(True), *conditions).order_by(User.id)))


def grid_workers_for(case) -> list[User]:
    if case.assigned_grid_worker_id:
        worker = db.session.get(User, case.assigned_grid_worker_id)
        if worker is not None and worker.is_active:
            return [worker]
    if case.grid_id:
        return users_where(User.role == roles.GRID_WORKER, User.grid_id == case.grid_id)
    return []


def firm_managers_for(case) -> list[User]:
    return users_where(User.role == roles.PROPERTY_MANAGER, User.firm_id == case.firm_id) if case.firm_id else []


def branch_secretaries_for(case) -> list[User]:
    return users_where(User.role == roles.BRANCH_SECRETARY, User.branch_id == case.branch_id) if case.branch_id else []


def community_supervisors_for(case) -> list[User]:
    people = (
        users_where(User.role == roles.SUPERVISOR, User.community_id == case.community_id) if case.community_id else []
    )
    return people or street_supervisors_for(case)


def street_supervisors_for(case) -> list[User]:
    return users_where(User.role == roles.SUPERVISOR, User.street_id == case.street_id)


def handlers_for(case) -> list[User]:
    """Whoever is expected to act on the case at its current step."""
    if case.state in ("grid_assigned", "grid_handling", "awaiting_signoff"):
        return grid_workers_for(case)
    if case.state == "branch_review":
        return branch_secretaries_for(case)
    if case.state in ("firm_dispatched", "firm_processing", "on_hold"):
        return firm_managers_for(case)
    if case.state == "registered":
        return community_supervisors_for(case)
    return []


# ------------------------------------------------------------------------------------------- inbox


def unread_count(user) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def mark_read(user, notification_ids: Iterable[int] | None = None, now: datetime | None = None) -> int:
    """Mark some (or, with None, all) of the user's notifications read. Returns how many changed."""
    statement = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if notification_ids is not None:
        statement = statement.where(Notification.id.in_(list(notification_ids)))
    result = db.session.execute(statement.values(read_at=now or utcnow()))
    return result.rowcount or 0


# ---------------------------------------------------------------------------------------- delivery


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def deliver_pending(now: datetime | None = None, limit: int = 200) -> DeliveryResult:
    """Send due outbound messages; failures are retried with back-off, then marked failed.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so two scheduler processes never send one twice.
    """
    from app.notify.resident import DailyTotal  # resident imports this module

    now = now or utcnow()
    result = DeliveryResult()
    messages = db.session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.status == "pending", OutboundMessage.next_attempt_at <= now)
        .order_by(OutboundMessage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    daily_total = None
    for message in messages:
        channel_class = CHANNELS.get(message.channel)
        try:
            outgoing = _outgoing(message, now)
            if outgoing is None:
                continue
            if message.audience == "resident":
                daily_total = daily_total or DailyTotal(now)
                if daily_total.reached():
                    message.status, message.last_error = "skipped", "daily SMS quota reached"
                    continue
            if channel_class is None:
                raise DeliveryError(f"unknown channel {message.channel}")
            channel_class().deliver(message.recipient, outgoing)
        except Exception as error:  # noqa: BLE001 - any failure of a channel means "try again later"
            message.attempts += 1
            message.last_error = str(error)[:1000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = "failed"
                result.failed += 1
                log.error("giving up on %s message %s to %s: %s", message.channel, message.id, message.recipient, error)
            else:
                message.next_attempt_at = now + timedelta(minutes=RETRY_BACKOFF_MINUTES[message.attempts - 1])
                result.retried += 1
        else:
            message.attempts += 1
            message.status = "sent"
            message.sent_at = now
            result.sent += 1
            if message.audience == "resident" and daily_total is not None:
                daily_total.count += 1
    db.session.flush()
    return result


def _outgoing(message: OutboundMessage, now: datetime) -> Outgoing | None:
    """What to send for an outbox row; None (and the row marked skipped) when it must not go out."""
    if message.audience == "resident":
        from app.notify import resident

        if resident.is_opted_out(message.recipient):
            message.status = "skipped"
            message.last_error = "opted out"
            return None
        if resident.is_stale(message, now):
            message.status = "skipped"
            message.last_error = "not sent within 2 days; dropped as stale"
            return None
        return resident.render(message)
    if message.notification_id is None:
        params = message.params or {}
        return Outgoing(params.get("subject", ""), params.get("body", ""), message.kind, {})
    notification = message.notification
    ref = notification.case.ref if notification.case_id and notification.case is not None else ""
    return Outgoing(
        notification.title,
        notification.body or notification.title,
        notification.kind,
        {"ref": ref, "title": notification.title},
    )


@event.listens_for(Session, "after_commit")
def _send_immediate(session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released: wait for the real commit (a dry run rolls everything back)
    for channel, address, title, body in session.info.pop("immediate_sends", []):
        try:
            channel.send(address, title, body)
        except Exception:  # noqa: BLE001 - an immediate channel must never break the request
            log.exception("immediate notification to %s failed", address)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session, transaction) -> None:
    if transaction.nested:
        # what was queued before this SAVEPOINT survives its rollback; what comes after does not
        session.info.setdefault("immediate_marks", {})[id(transaction)] = len(session.info.get("immediate_sends", []))


@event.listens_for(Session, "after_soft_rollback")
def _drop_immediate(session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop("immediate_sends", None)
        session.info.pop("immediate_marks", None)
        return
    mark = session.info.get("immediate_marks", {}).pop(id(previous_transaction), None)
    if previous_transaction.nested and mark is not None and "immediate_sends" in session.info:
        del session.info["immediate_sends"][mark:]


# ---------------------------------------------------------------------------------------- preferences


def chosen_channels(user, available: Iterable[str]) -> list[str]:
    """The user's outbound channels among ``available`` (all of them until the user chooses)."""
    row = db.session.get(ChannelPreference, user.id)
    available = list(available)
    if row is None:
        return available
    picked = {c for c in row.channels.split(",") if c}
    return [c for c in available if c in picked]


def set_preferences(user, channels: Iterable[str], now: datetime | None = None) -> None:
    """Keep ``channels`` as the user's outbound channels (an empty list: the inbox only)."""
    from app.notify.channels import PERSONAL_CHANNELS

    value = ",".join(sorted({c for c in channels if c in PERSONAL_CHANNELS}))
    row = db.session.get(ChannelPreference, user.id)
    if row is None:
        db.session.add(ChannelPreference(user_id=user.id, channels=value, updated_at=now or utcnow()))
    else:
        row.channels, row.updated_at = value, now or utcnow()
    db.session.flush()
