"""The pool's liveness check (app/core/pool.py): a connection is pinged at check-out only after it has rested
``DB_PING_AFTER_IDLE_SECONDS``; a dead one found by the ping is replaced without failing the request."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from app import create_app
from app.core import pool
from app.extensions import db
from config import ProductionConfig, TestingConfig
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL


def _engine(tmp_path, window: float):
    url = TEST_DATABASE_URL if IS_POSTGRES else f"sqlite:///{tmp_path / 'pool.db'}"
    engine = create_engine(url, pool_size=1, max_overflow=0)
    pool.watch(engine, window)
    return engine


def _count_pings(engine, monkeypatch) -> list:
    pings = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection):
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


def _one(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar()


def test_a_connection_used_a_moment_ago_is_not_pinged(tmp_path, monkeypatch):
    engine = _engine(tmp_path, 60)
    pings = _count_pings(engine, monkeypatch)
    try:
        for _ in range(5):
            assert _one(engine) == 1
        assert pings == []  # a new connection, then the same one handed back and taken again at once
    finally:
        engine.dispose()


def test_a_connection_that_rested_past_the_window_is_pinged(tmp_path, monkeypatch):
    engine = _engine(tmp_path, 0.05)
    pings = _count_pings(engine, monkeypatch)
    try:
        _one(engine)
        time.sleep(0.1)
        _one(engine)
        assert len(pings) == 1
        _one(engine)  # used again at once: trusted
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_the_application_uses_the_window_instead_of_a_ping_per_checkout(monkeypatch):
    assert "pool_pre_ping" not in ProductionConfig.SQLALCHEMY_ENGINE_OPTIONS
    assert ProductionConfig.DB_PING_AFTER_IDLE_SECONDS == 1.0
    application = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", DB_PING_AFTER_IDLE_SECONDS=0)
    with application.app_context():
        engine = db.engine
        pings = _count_pings(engine, monkeypatch)
        try:
            _one(engine)
            _one(engine)
            assert len(pings) == 2  # window 0: every check-out, as pool_pre_ping did
        finally:
            engine.dispose()


def _terminate_backend_of(engine) -> None:
    """End the server process behind the pooled connection, as a database restart would."""
    with engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = create_engine(TEST_DATABASE_URL)
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    finally:
        killer.dispose()
    time.sleep(0.05)


@pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL")
def test_a_dead_connection_found_by_the_ping_is_replaced(tmp_path):
    engine = _engine(tmp_path, 0.05)
    try:
        _terminate_backend_of(engine)
        time.sleep(0.1)  # past the window: the check-out pings, finds it dead, opens a new one
        assert _one(engine) == 1
    finally:
        engine.dispose()


@pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL")
def test_inside_the_window_a_dead_connection_fails_once_then_the_pool_reconnects(tmp_path):
    """The trade documented in app/core/pool.py: one failure, not a run of them."""
    engine = _engine(tmp_path, 60)
    try:
        _terminate_backend_of(engine)
        with pytest.raises(DBAPIError) as raised:
            _one(engine)
        assert raised.value.connection_invalidated
        assert _one(engine) == 1
    finally:
        engine.dispose()
