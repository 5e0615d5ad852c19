"""PostgreSQL connections start with the application's session options (JIT off), unless told otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app import create_app
from app.extensions import db
from config import TestingConfig, pg_options
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL


def test_the_options_follow_the_configuration():
    assert pg_options({"PG_OPTIONS": "-c jit=off"}) == "-c jit=off"
    assert pg_options({"PG_OPTIONS": "  "}) is None  # the server's settings
    assert pg_options({"PG_OPTIONS": "-c jit=off", "PGBOUNCER": True}) is None  # set on the role instead
    sqlite = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
    assert "options" not in sqlite.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {})


def _jit(application) -> tuple[str, str]:
    """(jit's value, where it came from) on a new connection of ``application``."""
    with application.app_context():
        engine = db.engine  # a connection of its own, outside the test's transaction
        try:
            with engine.connect() as connection:
                return tuple(
                    connection.execute(text("SELECT setting, source FROM pg_settings WHERE name = 'jit'")).one()
                )
        finally:
            engine.dispose()


@pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL")
def test_jit_is_off_on_the_application_connections():
    assert _jit(create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=TEST_DATABASE_URL)) == ("off", "client")
    # with no options the server's own setting applies, whatever it is
    assert _jit(create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=TEST_DATABASE_URL, PG_OPTIONS=""))[1] != "client"


def test_a_deployed_app_freezes_its_long_lived_objects_out_of_the_collector():
    """Full garbage collections walked ~370,000 objects the process keeps for its life (the category picker's
    pinyin dictionary alone about 200,000): ~200 ms in one list page of twenty. A deployed app freezes them
    once built; the test suite, which builds many apps, does not."""
    import gc

    from config import Config

    assert Config.GC_FREEZE is True and TestingConfig.GC_FREEZE is False
    assert gc.get_freeze_count() == 0
    create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
    assert gc.get_freeze_count() == 0
    try:
        create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", GC_FREEZE=True)
        assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()  # the rest of the suite's objects stay collectable
