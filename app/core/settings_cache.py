"""A per-process cache of settings and organisation look-ups, invalidated across processes.

Intake reads the same few rows on every request: the category, the compound with its community and
street, the compound's contract and branch, the time limits and the working calendar. They change
when an administrator edits them, which is rare; reading them from the database on every request
was a third of an intake's statements (issue 12). This module keeps them per process.

Invalidation:

- **In this process**, at once: any flush or ORM ``INSERT``/``UPDATE``/``DELETE`` that touches one of
  the cached tables (:data:`CACHED_TABLES`) empties the cache, and so does the end (commit or
  rollback) of a transaction that touched them, so nothing read inside an uncommitted transaction
  outlives it.
- **In other processes**: the same writes bump the single row of ``settings_version`` in the writing
  transaction. Each process reads that number at most once per ``SETTINGS_CHECK_SECONDS`` (default
  1 s) and empties its cache when it changed. So another web or scheduler process sees an
  administrator's change at most that long after the commit. Changes made outside the application
  (``psql``) are not seen until ``flask settings-cache bump`` or a restart.

Cached values are plain values or *detached* ORM instances (loaded in a private session with the
relationships their readers use). :func:`attach` merges one into the request's session without SQL
(``merge(load=False)``) and keeps it referenced until the request ends, so lazy many-to-one loads of
a case (``case.compound``, ``case.firm`` …) find it in the identity map instead of querying.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flask import current_app, g, has_app_context
from sqlalchemy import Integer, event, inspect, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.extensions import db

#: tables whose rows may sit in the cache; a write to any of them invalidates it
CACHED_TABLES = frozenset(
    {
        "category",
        "street",
        "community",
        "grid",
        "compound",
        "building",
        "service_station",
        "property_firm",
        "firm_contract",
        "party_branch",
        "time_limit_policy",
        "business_hours",
        "holiday_override",
        "calendar_year",
    }
)
DEFAULT_CHECK_SECONDS = 1.0
_TOUCHED = "ksm_settings_touched"
_ATTACHED = "ksm_settings_attached"
_BUMP = text("UPDATE settings_version SET version = version + 1 WHERE id = 1")


class SettingsVersion(db.Model):
    """One row whose number goes up with every change of a cached table (read by other processes)."""

    __tablename__ = "settings_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[Any, Any] = {}
        self.version: int | None = None
        self.checked_at = 0.0
        self.hits = 0
        self.misses = 0


_cache = _Cache()


def clear() -> None:
    """Empty this process's cache (the next look-ups read the database).

    The remembered version is forgotten too: it may have been read inside a transaction that then rolled
    back, and keeping it would hide the next change another process commits under that same number.
    """
    with _cache.lock:
        _cache.values.clear()
        _cache.version = None
        _cache.checked_at = float("-inf")


def _check_seconds() -> float:
    if has_app_context():
        return float(current_app.config.get("SETTINGS_CHECK_SECONDS", DEFAULT_CHECK_SECONDS))
    return DEFAULT_CHECK_SECONDS


def _check_version() -> None:
    """Empty the cache when another process changed the settings (read at most once a second)."""
    now = time.monotonic()
    if now - _cache.checked_at < _check_seconds():
        return
    version = db.session.connection().execute(text("SELECT version FROM settings_version WHERE id = 1")).scalar()
    with _cache.lock:
        if version != _cache.version:
            _cache.values.clear()
            _cache.version = version
        _cache.checked_at = now


def get(key: Any, loader: Callable[[Session], Any], *, keep_none: bool = True) -> Any:
    """The cached value of ``key``; on a miss ``loader(session)`` computes it. ``keep_none=False``
    does not remember a ``None`` (look-ups of what a client typed: unknown codes must not fill memory).

    The loader gets a private session on the request's connection (so it sees the request's
    transaction); ORM instances it returns are detached when it ends — load eagerly what readers use.
    """
    _check_version()
    try:
        value = _cache.values[key]
        _cache.hits += 1
        return value
    except KeyError:
        pass
    _cache.misses += 1
    with Session(bind=db.session.connection(), autoflush=False, expire_on_commit=False) as private:
        value = loader(private)
    if value is None and not keep_none:
        return None
    with _cache.lock:
        _cache.values[key] = value
    return value


def attach(obj):
    """``obj`` (a cached, detached instance) as an instance of the request's session, without SQL.

    The merged instance stays referenced until the app context ends, so relationship loads of other
    objects in the request find it in the session's (weak) identity map.
    """
    if obj is None:
        return None
    session = db.session()
    # this same cached instance attached earlier in the request: the instance the merge gave then, if the session
    # still holds it unexpired — without the merge's copy of every attribute and cascade (an intake attaches a
    # dozen rows, a third of them twice). A cache emptied since hands out new instances, which are merged.
    attached = session.info.setdefault(_ATTACHED, {})
    earlier = attached.get(id(obj))
    if earlier is not None and earlier[0] is obj:
        merged = earlier[1]
        state = inspect(merged)
        if state.session_id == session.hash_key and not state.expired_attributes:
            return merged
    merged = session.merge(obj, load=False)
    keep_alive(merged)
    attached[id(obj)] = (obj, merged)
    return merged


def keep_alive(obj) -> None:
    """Hold a strong reference to ``obj`` until the app context ends."""
    if obj is not None and has_app_context():
        g.setdefault("ksm_keep_alive", []).append(obj)


def stats() -> dict[str, int]:
    return {"entries": len(_cache.values), "hits": _cache.hits, "misses": _cache.misses}


# --------------------------------------------------------------------------------- invalidation


def _touched(session: Session) -> None:
    if not session.info.get(_TOUCHED):
        session.info[_TOUCHED] = True
    session.connection().execute(_BUMP)
    clear()


def _is_cached(obj) -> bool:
    table = getattr(type(obj), "__tablename__", None)
    return table in CACHED_TABLES


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    if any(_is_cached(obj) for obj in (*session.new, *session.dirty, *session.deleted)):
        _touched(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in CACHED_TABLES:
        _touched(state.session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _after_transaction(session: Session) -> None:
    if session.info.pop(_TOUCHED, False):
        clear()


def bump() -> None:
    """Invalidate every process's cache (after editing cached tables outside the application)."""
    session = db.session
    if session.scalar(select(SettingsVersion.id).where(SettingsVersion.id == 1)) is None:
        session.add(SettingsVersion(id=1, version=1))
        session.flush()
    session.connection().execute(_BUMP)
    clear()
