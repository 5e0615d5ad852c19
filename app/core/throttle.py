"""Slowing down guessing on public pages, per client and per (client, target), with backoff.

Failures are counted in the database (one row per key, atomic upsert), so every web process sees the
same counts. Two kinds of keys:

* **per client** (an IP address; an IPv6 /64 network): many failures across any targets in the window
  block that client for the rest of the window — enumeration of references or codes;
* **per (client, target)** (e.g. one reference number): after a few failures the same client waits
  longer and longer before the next try (30 s, 1 min, 2 min … capped at the window).

There is deliberately **no lock per target alone**: a stranger's wrong guesses must never lock a
resident out of their own case (defect 6). Use :func:`check` before the attempt, :func:`failed` after a
wrong one, :func:`succeeded` after a right one; compare secrets with :func:`same_secret`.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, delete, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Mapped, mapped_column

from app.core.timeutil import utcnow
from app.core.types import UTCDateTime
from app.extensions import db


class Throttle(db.Model):
    """Failures counted for ``key`` since ``window_start``; no new attempt before ``blocked_until``."""

    __tablename__ = "throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Guard:
    """The limits of one public form (``name`` prefixes its keys)."""

    name: str
    #: failures one client may make across all targets within ``window``
    per_client: int
    #: failures one client may make on one target before each further try waits (backoff)
    free_tries: int
    window: timedelta = timedelta(minutes=15)
    #: the first wait after ``free_tries``; it doubles with every further failure, capped at ``window``
    first_wait: timedelta = timedelta(seconds=30)

    def backoff(self, failures: int) -> timedelta | None:
        """How long a client waits after its ``failures``-th wrong try on one target (None: no wait)."""
        extra = failures - self.free_tries
        if extra < 0:
            return None
        return min(self.window, self.first_wait * (2 ** min(extra, 20)))


#: residents looking up their case with reference + last 4 digits of their phone (/track)
TRACK = Guard("track", per_client=20, free_tries=3)
#: the sign-off page opened with the code on the receipt (/s/<code>)
SIGNOFF = Guard("signoff", per_client=20, free_tries=3)
#: the sign-in form, per client address (accounts lock on their own after LOGIN_MAX_FAILURES)
LOGIN = Guard("login", per_client=30, free_tries=10**6)


def client_key(address: str | None) -> str:
    """The client part of a key: the IPv4 address, or the /64 network of an IPv6 address (one host
    usually holds a whole /64, so counting single addresses would be trivial to dodge)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address) + "/64"
    return str(ip)


def _keys(guard: Guard, client: str, target: str | None) -> tuple[str, str | None]:
    client = client_key(client)
    per_client = f"{guard.name}:c:{client}"[:120]
    per_target = f"{guard.name}:t:{client}:{target.strip().upper()}"[:120] if target else None
    return per_client, per_target


def retry_after(guard: Guard, client: str, target: str | None = None, now: datetime | None = None) -> int | None:
    """Seconds this client must wait before trying ``target`` again, or None when it may try now."""
    now = now or utcnow()
    waits = []
    keys = [key for key in _keys(guard, client, target) if key]
    rows = db.session.scalars(select(Throttle).where(Throttle.key.in_(keys)).execution_options(populate_existing=True))
    for row in rows:
        if row.blocked_until is not None and row.blocked_until > now:
            waits.append((row.blocked_until - now).total_seconds())
    return max(1, int(max(waits)) + 1) if waits else None


def check(guard: Guard, client: str, target: str | None = None, now: datetime | None = None) -> int | None:
    """Alias of :func:`retry_after`, read as "may this client try now?" (None means yes)."""
    return retry_after(guard, client, target, now)


def failed(guard: Guard, client: str, target: str | None = None, now: datetime | None = None) -> None:
    """Count one wrong try of ``client`` (on ``target``) and set the resulting waits. Flushes."""
    now = now or utcnow()
    if secrets.randbelow(100) == 0:  # now and then, forget what no longer matters
        prune(now)
    per_client, per_target = _keys(guard, client, target)
    count = record_failure(per_client, guard.window, now)
    if count >= guard.per_client:
        _block(per_client, now + guard.window)
    if per_target:
        count = record_failure(per_target, guard.window, now)
        wait = guard.backoff(count)
        if wait is not None:
            _block(per_target, now + wait)


def succeeded(guard: Guard, client: str, target: str | None = None) -> None:
    """Forget the (client, target) failures after a right answer (the per-client count stays)."""
    _per_client, per_target = _keys(guard, client, target)
    if per_target:
        db.session.execute(delete(Throttle).where(Throttle.key == per_target))


def wait_message(seconds: int) -> str:
    """What to tell someone who must wait ``seconds`` before trying again."""
    from flask_babel import gettext as _

    if seconds < 60:
        return _(
            "Too many attempts. Try again in %(seconds)d seconds, or ask at your service station.", seconds=seconds
        )
    return _(
        "Too many attempts. Try again in %(minutes)d minutes, or ask at your service station.",
        minutes=(seconds + 59) // 60,
    )


def same_secret(expected: str | None, given: str | None) -> bool:
    """Compare a stored secret (code, phone digits) with what was typed, in constant time."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(str(expected).encode(), str(given).strip().encode())


def prune(now: datetime | None = None, keep: timedelta = timedelta(days=1)) -> int:
    """Delete counters whose window and wait are long over; returns how many."""
    now = now or utcnow()
    result = db.session.execute(
        delete(Throttle).where(
            Throttle.window_start < now - keep,
            (Throttle.blocked_until.is_(None)) | (Throttle.blocked_until < now),
        )
    )
    return result.rowcount or 0


def _block(key: str, until: datetime) -> None:
    db.session.execute(
        update(Throttle)
        .where(Throttle.key == key)
        .values(blocked_until=until)
        .execution_options(synchronize_session=False)
    )


def blocked(key: str, limit: int, window: timedelta, now: datetime | None = None) -> bool:
    """Whether ``key`` has had ``limit`` failures within the current window (plain counter use)."""
    now = now or utcnow()
    row = db.session.scalar(select(Throttle).where(Throttle.key == key))
    return row is not None and row.window_start > now - window and row.count >= limit


def record_failure(key: str, window: timedelta, now: datetime | None = None) -> int:
    """Count one failure for ``key`` (a new window starts when the old one has passed); returns the count."""
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    expired = Throttle.window_start <= now - window
    statement = insert(Throttle).values(key=key[:120], window_start=now, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[Throttle.key],
        set_={
            "count": sql_case((expired, 1), else_=Throttle.count + 1),
            "window_start": sql_case((expired, now), else_=Throttle.window_start),
            "blocked_until": sql_case((expired, None), else_=Throttle.blocked_until),
        },
    ).returning(Throttle.count)
    return db.session.execute(statement).scalar_one()
