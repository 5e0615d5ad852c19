"""Reads on a PostgreSQL streaming replica (issue 12).

When ``REPLICA_DATABASE_URL`` is set, the figures — dashboards, the bulletin and its downloads, the
``flask bulletin`` export — read from the replica: :func:`reads_from_replica` (a view decorator) and
:func:`reading_from_replica` (a context manager) put a session bound to a second engine in place of
``db.session`` for the duration, so the report code is unchanged. Writes never go there: the replica
is read-only and nothing in those views writes.

Pages served from the replica say "figures as of …" (the time of the last transaction the replica
has replayed; templates read ``replica_as_of``). When the replica cannot be reached, or lags more than
``REPLICA_MAX_LAG_SECONDS`` (default 300), the primary serves the request and the log says why.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from functools import wraps

from flask import Flask, current_app, g, has_app_context, has_request_context
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.core.timeutil import utcnow
from app.extensions import db

log = logging.getLogger("ksm.replica")
EXTENSION = "ksm_replica_engine"
LAG_SQL = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() ELSE now() END"
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
        found = create_engine(
            app.config["REPLICA_DATABASE_URL"],
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=3,
            connect_args={"connect_timeout": 3},
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


@contextmanager
def reading_from_replica():
    """Within the block, ``db.session`` reads from the replica (when configured and healthy).

    Yields the time the replica's data is as of, or None when the primary is used.
    """
    replica = engine()
    if replica is None:
        yield None
        return
    session = Session(bind=replica, autoflush=False)
    try:
        lag, as_of = _state(session.connection())
    except DBAPIError:
        session.close()
        log.warning("replica unreachable: reading from the primary", exc_info=True)
        yield None
        return
    limit = float(current_app.config.get("REPLICA_MAX_LAG_SECONDS", 300))
    if lag > limit:
        session.close()
        log.warning("replica %.0f s behind (limit %.0f s): reading from the primary", lag, limit)
        yield None
        return
    previous = db.session.registry()
    db.session.registry.set(session)
    as_of = as_of or utcnow()
    if has_request_context():
        g.replica_as_of = as_of
    try:
        yield as_of
    finally:
        session.rollback()
        session.close()
        db.session.registry.set(previous)


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
