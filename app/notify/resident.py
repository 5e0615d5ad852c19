"""Messages to residents: the receipt, "the work is done — please confirm", and the reminder before auto-close.

Residents have no account: a message goes to the mobile number on the case, by SMS through the configured
provider (or to the console log when none is configured). No phone, no message. A number that replied
"TD" (or was opted out at the window) gets nothing. Per-recipient and per-day quotas guard against
loops and cost; a message held back by them is kept as ``skipped`` with the reason, for administrators.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, time, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Integer, and_, bindparam, exists, func, literal_column, select, text

from app.cases.models import Case
from app.core import bulk
from app.core.i18n import force_locale
from app.core.timeutil import app_tz, to_local, utcnow
from app.extensions import db
from app.notify.channels import Outgoing, sms_ready
from app.notify.models import RESIDENT_COUNTED, OutboundMessage, SmsOptOut

KINDS = ("receipt", "work_done", "signoff_reminder")
#: a resident message not sent within this time is dropped (a receipt a week late helps no one)
STALE_AFTER = timedelta(days=2)
#: replies that mean "stop sending me messages" (退订)
OPT_OUT_WORDS = {"TD", "T", "N", "QX", "STOP", "UNSUBSCRIBE", "退订", "取消", "退"}
PHONE_RE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")


def normalize_phone(value: str | None) -> str | None:
    """The 11-digit mobile number in ``value`` (spaces, dashes and +86 removed), or None."""
    match = PHONE_RE.match(re.sub(r"[\s-]", "", value or ""))
    return match.group(1) if match else None


def is_opted_out(phone: str) -> bool:
    return db.session.get(SmsOptOut, normalize_phone(phone) or phone) is not None


def opt_out(phone: str, source: str, note: str | None = None, *, now: datetime | None = None) -> bool:
    """Stop messages to ``phone``; returns False when it was already opted out. Raises ValueError for a
    number that is not a mainland mobile number."""
    number = normalize_phone(phone)
    if number is None:
        raise ValueError(_("%(phone)s is not a mobile number.", phone=phone))
    if db.session.get(SmsOptOut, number) is not None:
        return False
    db.session.add(
        SmsOptOut(phone=number, source=source[:32], note=(note or "")[:200] or None, created_at=now or utcnow())
    )
    # what is still waiting for this number is not sent either
    for message in db.session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.audience == "resident",
            OutboundMessage.recipient == number,
            OutboundMessage.status == "pending",
        )
    ):
        message.status, message.last_error = "skipped", "opted out"
    db.session.flush()
    return True


def opt_in(phone: str) -> bool:
    """Allow messages to ``phone`` again (the resident asked); returns False when it was not opted out."""
    row = db.session.get(SmsOptOut, normalize_phone(phone) or phone)
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    return True


def hold_demo_messages() -> int:
    """Mark the resident messages queued while loading demo data as not sent. Returns how many."""
    from sqlalchemy import update

    result = db.session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.audience == "resident", OutboundMessage.status == "pending")
        .values(status="skipped", last_error="demo data")
    )
    db.session.flush()
    return result.rowcount or 0


def is_stale(message: OutboundMessage, now: datetime) -> bool:
    return message.created_at < now - STALE_AFTER


def handle_reply(phone: str, text: str, source: str, *, now: datetime | None = None) -> bool:
    """A resident's SMS reply: "TD" and its variants opt the number out. Returns True when it did."""
    word = re.sub(r"[\s。.!！]", "", text or "").upper()
    if word not in OPT_OUT_WORDS or normalize_phone(phone) is None:
        return False
    return opt_out(phone, source, note=text[:200], now=now)


# ------------------------------------------------------------------------------------------ links


def public_url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"] + path


def tracking_link() -> str:
    return public_url("/track")


def signoff_link(case: Case) -> str:
    return public_url(f"/s/{case.signoff_token}")


# ------------------------------------------------------------------------------------------ queue


def _today(now: datetime) -> dict:
    """The bounds of the local day of ``now`` (the ``start`` and ``end`` of :func:`_sent_today`)."""
    start = datetime.combine(to_local(now).date(), time(0), app_tz())
    return {"start": start, "end": start + timedelta(days=1)}


def _sent_today(to_one: bool, statuses: tuple[str, ...] = ("pending", "sent")):
    """The resident messages of the day from ``start`` to ``end`` in ``statuses`` (to anyone), or if ``to_one``
    those that count towards the quota of the number ``phone`` (pending or sent), counted up to ``cap``: a
    bounded index range scan however busy the day."""
    day = (OutboundMessage.created_at >= bindparam("start"), OutboundMessage.created_at < bindparam("end"))
    if to_one:
        if statuses != ("pending", "sent"):
            raise ValueError("a number's quota counts its pending and sent messages (the partial index's condition)")
        # the partial index of the counted messages (its condition word for word): a number's standing is read
        # from at most its quota of entries, not from all of the day's messages to it — thousands when one
        # number reports all day and its receipts are skipped
        query = select(OutboundMessage.id).where(
            text(RESIDENT_COUNTED), OutboundMessage.recipient == bindparam("phone"), *day
        )
    else:
        query = select(OutboundMessage.id).where(
            OutboundMessage.audience == "resident", OutboundMessage.status.in_(statuses), *day
        )
    capped = query.limit(bindparam("cap", type_=Integer)).subquery()
    return select(func.count()).select_from(capped).scalar_subquery()


@functools.cache
def standing_query():
    """One row: whether ``phone`` opted out, and its resident messages of the day (``start``, ``end``) counted up
    to ``cap`` (built once: building it took longer than running it, and an intake asks on every request)."""
    return select(exists().where(SmsOptOut.phone == bindparam("phone")), _sent_today(True))


def standing_read(phone: str, now: datetime):
    """(expression, parameters) of ``phone``'s standing — whether it opted out, and its resident messages of the
    day counted up to its quota — as one row value, to be read with other values in one statement (an intake
    reads it with its case's id); :func:`queue` takes the value as ``standing``."""
    return _standing_row(), _standing_params(phone, now)


def _standing_params(phone: str, now: datetime) -> dict:
    return {"phone": phone, "cap": current_app.config["SMS_MAX_PER_RECIPIENT_PER_DAY"], **_today(now)}


@functools.cache
def _standing_row():
    opted_out, to_number = standing_query().selected_columns
    return func.json_build_array(opted_out, to_number)


def _refusal(phone: str, now: datetime, standing: tuple[bool, int] | None = None) -> str | None:
    """Why a message to ``phone`` must not be queued (opted out, its daily quota), or None. One statement
    of a few index entries, unless the caller read ``standing`` (opted out, messages today) already: an intake
    asks this for every resident with a mobile number.

    The system's daily total is the sender's to enforce (:class:`DailyTotal`): counting up to it here
    read up to ``SMS_MAX_PER_DAY`` index entries on every intake late in a busy day."""
    if standing is None:
        standing = db.session.execute(standing_query(), _standing_params(phone, now)).one()
    opted_out, to_number = standing
    if opted_out:
        return "opted out"
    if to_number >= current_app.config["SMS_MAX_PER_RECIPIENT_PER_DAY"]:
        return "daily quota for this number reached"
    return None


class DailyTotal:
    """The system's daily total: resident messages of today that were sent, counted once per delivery batch
    (up to ``SMS_MAX_PER_DAY``, on the audience/created index) and kept up to date as the batch sends."""

    def __init__(self, now: datetime):
        self.cap = current_app.config["SMS_MAX_PER_DAY"]
        self.count = db.session.scalar(select(_sent_today(False, statuses=("sent",))), {"cap": self.cap, **_today(now)})

    def reached(self) -> bool:
        return self.count >= self.cap


def queue(
    case: Case,
    kind: str,
    params: dict[str, str],
    *,
    now: datetime | None = None,
    standing: tuple[bool, int] | None = None,
) -> OutboundMessage | None:
    """Queue a message of ``kind`` to the case's resident; None when the case has no mobile number.

    A number that opted out, or that reached its daily quota (or the system its daily total), gets a
    ``skipped`` row saying why instead of a message. ``standing``: the number's standing as
    :func:`standing_read` gave it, read by the caller in this transaction (else it is read here).
    """
    now = now or utcnow()
    phone = normalize_phone(case.resident_phone)
    if phone is None:
        return None
    reason = _refusal(phone, now, standing)
    status = "skipped" if reason else "pending"
    message = bulk.new(
        OutboundMessage,
        notification_id=None,
        channel="sms" if sms_ready() else "log",
        audience="resident",
        case_id=case.id,
        kind=kind,
        params={"ref": case.ref, **params},
        recipient=phone,
        status=status,
        attempts=0,
        last_error=reason,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(message)  # written with the caller's next flush (an intake writes everything in one)
    return message


def case_registered(
    case: Case, now: datetime | None = None, standing: tuple[bool, int] | None = None
) -> OutboundMessage | None:
    """The receipt: the reference number and where to follow the case (``standing``: see :func:`queue`)."""
    return queue(case, "receipt", {"link": tracking_link()}, now=now, standing=standing)


def work_done(case: Case, now: datetime | None = None) -> OutboundMessage | None:
    """Completion reported: ask the resident to confirm, with the sign-off link and code."""
    return queue(case, "work_done", {"link": signoff_link(case), "code": case.signoff_token}, now=now)


def reminder_query(now: datetime, horizon: datetime, limit: int = 1000):
    """Cases waiting for a sign-off that closes itself between ``now`` and ``horizon``, not yet reminded
    since they entered that state (served by the partial index ``ix_case_signoff_due``)."""
    reminded = exists().where(
        OutboundMessage.case_id == Case.id,
        OutboundMessage.kind == "signoff_reminder",
        OutboundMessage.created_at >= Case.state_entered_at,
    )
    return (
        select(Case)
        # a literal, not a parameter: the planner must see it to use the partial index
        .where(
            Case.state == literal_column("'awaiting_signoff'"),
            Case.paused_at.is_(None),
            and_(Case.due_at.is_not(None), Case.due_at > now, Case.due_at <= horizon),
            Case.resident_phone.is_not(None),
            ~reminded,
        )
        .order_by(Case.due_at)
        .limit(limit)
    )


def queue_signoff_reminders(now: datetime | None = None, limit: int = 1000) -> int:
    """Remind residents whose unanswered sign-off closes itself within ``SIGNOFF_REMINDER_HOURS``; once per
    wait for sign-off. Returns how many were queued (flushes, does not commit)."""
    now = now or utcnow()
    horizon = now + timedelta(hours=current_app.config["SIGNOFF_REMINDER_HOURS"])
    cases = db.session.scalars(reminder_query(now, horizon, limit)).all()
    count = 0
    for case in cases:
        date_text = to_local(case.due_at).strftime("%Y-%m-%d %H:%M")
        if queue(case, "signoff_reminder", {"link": signoff_link(case), "date": date_text}, now=now) is not None:
            count += 1
    return count


# ----------------------------------------------------------------------------------------- render


def render(message: OutboundMessage) -> Outgoing:
    """The text of a resident message in the default language (the SMS provider uses the template instead)."""
    params = {k: str(v) for k, v in (message.params or {}).items()}
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        subject, body = texts(message.kind or "", params)
    return Outgoing(subject, body, message.kind, params)


def texts(kind: str, params: dict[str, str]) -> tuple[str, str]:
    """(subject, text) of a resident message of ``kind`` in the current language."""
    ref, link = params.get("ref", ""), params.get("link", "")
    if kind == "receipt":
        return (
            _("Case %(ref)s registered", ref=ref),
            _(
                "Your matter has been registered as %(ref)s. Follow it at %(link)s with this number and the "
                "last 4 digits of your mobile. Reply TD to stop messages.",
                ref=ref,
                link=link,
            ),
        )
    if kind == "work_done":
        return (
            _("Case %(ref)s: please confirm", ref=ref),
            _(
                "The work on your matter %(ref)s is reported done. Please say whether it is solved and rate it: "
                "%(link)s (code %(code)s). Reply TD to stop messages.",
                ref=ref,
                link=link,
                code=params.get("code", ""),
            ),
        )
    if kind == "signoff_reminder":
        return (
            _("Case %(ref)s: confirmation still open", ref=ref),
            _(
                "Your matter %(ref)s is waiting for your confirmation and will be closed on %(date)s without it: "
                "%(link)s. Reply TD to stop messages.",
                ref=ref,
                date=params.get("date", ""),
                link=link,
            ),
        )
    return ref, ref
