"""The migrations build the schema the models describe, from an empty database, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import Column, inspect, text
from sqlalchemy.schema import CreateIndex

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
                expression_indexes = _expression_indexes()
                if connection.dialect.name == "postgresql":
                    # Alembic compares an index of an expression by its text, which PostgreSQL rewrites
                    # (casts, parentheses): compare the server's own definitions instead
                    for index in expression_indexes.values():
                        assert _definition(connection, index, from_model=False) == _definition(
                            connection, index, from_model=True
                        ), f"the migrations' {index.name} differs from the model's"
                    diff = [d for d in diff if not (d[0] in _INDEX_DIFFS and d[1].name in expression_indexes)]
            assert diff == [], f"models and migrations differ: {diff}"
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            db.engine.dispose()


def test_scratch_databases_get_unique_names():
    """Two runs (or two engineers) on one server must not drop each other's database (issue 9, defect 7)."""
    names = {unique_name("migration_check") for _ in range(50)}
    assert len(names) == 50 and all(name.startswith("ksm_migration_check_") for name in names)


_INDEX_DIFFS = ("add_index", "remove_index")


def _expression_indexes() -> dict:
    """The model's indexes that index an expression (not only columns), by name."""
    return {
        index.name: index
        for table in db.metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(element, Column) for element in index.expressions)
    }


def _definition(connection, index, *, from_model: bool) -> str:
    """``pg_get_indexdef`` of ``index`` as the migrations made it, or as the model's DDL makes it (built
    under another name in a transaction that is rolled back); the name is left out."""
    name = index.name
    connection.rollback()
    if from_model:
        name = "model_copy_of_" + index.name
        ddl = str(CreateIndex(index).compile(dialect=connection.dialect))
        connection.execute(text(ddl.replace(f"INDEX {index.name} ", f"INDEX {name} ", 1)))
    found = connection.execute(text("SELECT pg_get_indexdef(CAST(:name AS regclass))"), {"name": name}).scalar()
    connection.rollback()
    return found.replace(name, "<index>")
