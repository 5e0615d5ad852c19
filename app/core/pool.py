"""The connection pool's liveness check: ping a connection at check-out only when it has been idle a while.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` before every check-out: one more round trip for every
request, most of which take a connection that was handed back a few milliseconds earlier (issue 12: a
sixth of an intake's round trips). Here a connection is pinged only when it was last checked in (or opened)
at least ``DB_PING_AFTER_IDLE_SECONDS`` ago (default 1 s), as HikariCP does with its ``aliveBypassWindowMs``.

What that leaves: after a database or PgBouncer restart, a connection idle for less than the window is not
pinged, so a request that takes it within that second fails once (a 500 or the API's 503); the error marks
the whole pool invalid and the next requests reconnect. Without the window the same restart fails the
requests in flight at that moment anyway. Set the window to 0 to ping at every check-out.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

DEFAULT_WINDOW_SECONDS = 1.0
_IDLE_SINCE = "ksm_idle_since"


def watch(engine: Engine, window: float) -> None:
    """Ping ``engine``'s connections at check-out after ``window`` seconds of rest; a dead one is replaced."""
    dialect = engine.dialect

    def rested(dbapi_connection, record, *_proxy) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection, record, proxy) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since < window:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # the pool drops this connection and checks out a fresh one (SQLAlchemy's documented contract)
                raise exc.DisconnectionError() from error
            raise

    event.listen(engine, "connect", rested)
    event.listen(engine, "checkin", rested)
    event.listen(engine, "checkout", checkout)


def init_app(app: Flask) -> None:
    from app.extensions import db

    window = float(app.config.get("DB_PING_AFTER_IDLE_SECONDS", DEFAULT_WINDOW_SECONDS))
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        watch(engine, window)
