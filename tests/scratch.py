"""Scratch databases with unique names, so two test runs on one server never destroy each other.

On PostgreSQL a database ``ksm_<purpose>_<random>`` is created next to ``TEST_DATABASE_URL``'s and
dropped afterwards (``WITH (FORCE)``: a leftover connection cannot keep it alive); on SQLite a file
in the test's temporary directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL


def unique_name(purpose: str) -> str:
    return f"ksm_{purpose}_{uuid.uuid4().hex[:12]}"


@contextmanager
def scratch_database(purpose: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    name = unique_name(purpose)
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / (name + '.db')}"
        return
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
