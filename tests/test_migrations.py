"""The migrations build the schema the models describe, from an empty database, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from config import TestingConfig
from tests.scratch import scratch_database, unique_name


@pytest.mark.own_app
def test_upgrade_from_empty_matches_the_models_and_downgrades(tmp_path):
    with scratch_database("migration_check", tmp_path) as url:
        app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            upgrade()
            tables = set(inspect(db.engine).get_table_names())
            assert {"street", "community", "compound", "user", "category", "api_token", "audit_event"} <= tables
            with db.engine.connect() as connection:
                diff = compare_metadata(
                    MigrationContext.configure(connection, opts={"compare_type": True}), db.metadata
                )
            assert diff == [], f"models and migrations differ: {diff}"
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            db.engine.dispose()


def test_scratch_databases_get_unique_names():
    """Two runs (or two engineers) on one server must not drop each other's database (issue 9, defect 7)."""
    names = {unique_name("migration_check") for _ in range(50)}
    assert len(names) == 50 and all(name.startswith("ksm_migration_check_") for name in names)
