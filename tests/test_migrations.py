"""The migrations build the schema the models describe, from an empty database, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from app import create_app
from app.extensions import db
from config import TestingConfig
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL


def _fresh_app(tmp_path):
    if IS_POSTGRES:
        admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS ksm_migration_check"))
            connection.execute(text("CREATE DATABASE ksm_migration_check"))
        admin.dispose()
        url = TEST_DATABASE_URL.rsplit("/", 1)[0] + "/ksm_migration_check"
    else:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    return create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)


@pytest.mark.own_app
def test_upgrade_from_empty_matches_the_models_and_downgrades(tmp_path):
    app = _fresh_app(tmp_path)
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"street", "community", "compound", "user", "category", "api_token"} <= tables
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), db.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()
    if IS_POSTGRES:
        admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS ksm_migration_check"))
        admin.dispose()
