"""Reads on a PostgreSQL streaming replica (issue 12).

When ``REPLICA_DATABASE_URL`` is set, the figures — dashboards, the bulletin and its downloads, the
``flask bulletin`` export — read from the replica: :func:`reads_from_replica` (a view decorator) and
:func:`reading_from_replica` (a context manager) put a session bound to a second engine in place of
``db.session`` for the duration, so the report code is unchanged. Writes never go there: the replica
is read-only and nothing in those views writes.

Pages served from the replica say "figures as of …" (the time of the last transaction the replica
has replayed; templates read ``replica_as_of``). When the replica cannot be reached, or lags more than
``REPLICA_MAX_LAG_SECONDS`` (default 300), the primary serves the request and the log says why.

Figures that are frozen once computed (the firm rating) need more than "recent enough": a rating of a
month read from a replica that has not yet replayed the month's last facts would freeze wrong numbers.
``reading_from_replica(caught_up=True)`` therefore takes the primary's WAL position first and uses the
replica only once it has replayed up to it (waiting at most ``REPLICA_CATCH_UP_SECONDS``, default 10):
the replica then holds everything the primary had committed when the computation began — the very
figures the primary would give. A paused, disconnected or slower replica means the primary is read.

Writes never belong inside the block: do the reads inside it and write (audit lines included) after it,
on the primary session that the block puts back.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime
from functools import wraps

from flask import Flask, current_app, g, has_app_context, has_request_context
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.core.timeutil import utcnow
from app.extensions import db
from config import pg_options

log = logging.getLogger("ksm.replica")
EXTENSION = "ksm_replica_engine"
MARK = "ksm_replica_as_of"  # in a replica session's ``info``: the time its data is as of
LAG_SQL = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() ELSE now() END"
)
PRIMARY_POSITION_SQL = text("SELECT pg_current_wal_lsn()")
CAUGHT_UP_SQL = text(
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() >= CAST(:position AS pg_lsn) END"
)


def configured() -> bool:
    return has_app_context() and bool(current_app.config.get("REPLICA_DATABASE_URL"))


def engine():
    """The replica's engine (one per application), or None when no replica is configured."""
    if not configured():
        return None
    app = current_app._get_current_object()
    found = app.extensions.get(EXTENSION)
    if found is None:
        startup = pg_options(app.config)
        found = create_engine(
            app.config["REPLICA_DATABASE_URL"],
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=3,
            connect_args={
                "connect_timeout": 3,
                **({"options": startup} if startup else {}),
            },
        )
        app.extensions[EXTENSION] = found
    return found


def _state(connection) -> tuple[float, datetime | None]:
    lag, as_of = connection.execute(LAG_SQL).one()
    return float(lag or 0), as_of


def lag_seconds() -> float | None:
    """Replay lag of the replica in seconds (0 when it has replayed everything it received), or None
    when no replica is configured or it cannot be reached."""
    replica = engine()
    if replica is None:
        return None
    try:
        with replica.connect() as connection:
            return round(_state(connection)[0], 3)
    except DBAPIError:
        log.warning("replica unreachable for the lag check", exc_info=True)
        return None


def _primary_position() -> str | None:
    """The primary's current WAL position, or None when the primary is not PostgreSQL."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    return str(db.session.execute(PRIMARY_POSITION_SQL).scalar())


def _why_not_caught_up(session: Session, position: str, wait: float) -> str | None:
    """None once the replica has replayed the primary's WAL up to ``position`` (polling up to ``wait``
    seconds), else the reason it cannot be used."""
    deadline = time.monotonic() + wait
    while True:
        in_recovery, paused, replayed = session.execute(CAUGHT_UP_SQL, {"position": position}).one()
        session.commit()  # end the read transaction: the next poll and the reads that follow see newer data
        if not in_recovery:
            return "it is not a standby (not in recovery), so it cannot be shown to hold the primary's data"
        if replayed:
            return None
        if paused:
            return f"its replay is paused before the primary's position {position}"
        if time.monotonic() >= deadline:
            return f"it had not replayed the primary's position {position} after {wait:.0f} s"
        time.sleep(0.1)


@contextmanager
def reading_from_replica(*, caught_up: bool = False):
    """Within the block, ``db.session`` reads from the replica (when configured and healthy).

    With ``caught_up``, the replica is used only once it has replayed everything the primary had
    written when the block began (see the module docstring) — for figures that are frozen. A nested
    block reads where the outer one does. Yields the
    time the replica's data is as of, or None when the primary is used (the log says why). Never raises
    for an unreachable or lagging replica.
    """
    outer = db.session.registry()
    if MARK in outer.info:  # nested: read where the outer block reads
        yield outer.info[MARK]
        return
    replica = engine()
    if replica is None:
        yield None
        return
    position = None
    if caught_up:
        try:
            position = _primary_position()
        except DBAPIError:
            log.warning("primary WAL position unavailable: reading from the primary", exc_info=True)
            yield None
            return
        if position is None:
            yield None
            return
    session = Session(bind=replica, autoflush=False)
    try:
        why = None
        if position is not None:
            why = _why_not_caught_up(session, position, float(current_app.config.get("REPLICA_CATCH_UP_SECONDS", 10)))
        lag, as_of = _state(session.connection())
    except DBAPIError:
        session.close()
        log.warning("replica unreachable: reading from the primary", exc_info=True)
        yield None
        return
    if why is not None:
        session.close()
        log.warning("replica not caught up with the primary (%s): reading from the primary", why)
        yield None
        return
    limit = float(current_app.config.get("REPLICA_MAX_LAG_SECONDS", 300))
    if lag > limit:
        session.close()
        log.warning("replica %.0f s behind (limit %.0f s): reading from the primary", lag, limit)
        yield None
        return
    as_of = as_of or utcnow()
    session.info[MARK] = as_of
    db.session.registry.set(session)
    if has_request_context():
        g.replica_as_of = as_of
    try:
        yield as_of
    finally:
        # close (which ends the read transaction) without expiring: rows read here stay readable after
        session.close()
        db.session.registry.set(outer)


def reads_from_replica(view):
    """Serve a read-only view from the replica (see the module docstring)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        with reading_from_replica():
            return view(*args, **kwargs)

    return wrapped


def init_app(app: Flask) -> None:
    @app.context_processor
    def _replica_context():
        return {"replica_as_of": g.get("replica_as_of")}
