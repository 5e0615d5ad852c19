"""Test fixtures: one migrated database per run, a rolled-back transaction per test.

SQLite always; PostgreSQL when ``TEST_DATABASE_URL`` is set (``make test`` runs both). The demo
organisation and users are loaded once and committed; every test runs inside a transaction that is
rolled back, so tests cannot see each other's writes. Tests that need real commits from several
connections (concurrency) use the ``committed`` fixture instead.
"""

from __future__ import annotations

import os
import re

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from app import create_app
from app.extensions import db
from config import TestingConfig

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
IS_POSTGRES = bool(TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgresql"))
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + TEST_DATABASE_URL if IS_POSTGRES else 'SQLite (file)'}"


def reset_database(app) -> None:
    """Empty the test database and upgrade it with the migrations (the schema under test)."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("app")
    url = TEST_DATABASE_URL or f"sqlite:///{base / 'test.db'}"
    application = create_app(
        TestingConfig, SQLALCHEMY_DATABASE_URI=url, UPLOAD_DIR=str(base / "uploads"), CLI_LOCALE="en"
    )
    reset_database(application)
    import tests.factories

    tests.factories._TEST_APP = application
    with application.app_context():
        from app.demo.seed import seed_demo

        seed_demo(with_cases=False)
        db.session.commit()
        db.session.remove()
    return application


@pytest.fixture(autouse=True)
def _transaction(request, app):
    """Run the test inside an outer transaction that is rolled back afterwards.

    Every session the app opens (one per app context) joins that transaction through a savepoint,
    so the code's own ``commit()`` and ``rollback()`` behave as in production.
    """
    if "committed" in request.fixturenames or request.node.get_closest_marker("own_app"):
        yield
        return
    with app.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, class_=Session, join_transaction_mode="create_savepoint", expire_on_commit=True
    )
    original = db.session
    db.session = scoped_session(factory, scopefunc=original.registry.scopefunc)
    # No application context stays pushed during the test: each request (and each ``ctx`` block) gets
    # its own, as in production, so ``g`` (Flask-Login's user) does not leak between requests.
    try:
        yield
    finally:
        db.session = original  # each context's session was closed at its teardown
        if outer.is_active:
            outer.rollback()
        connection.close()
        # the per-process settings cache may hold rows of the rolled-back transaction (a calendar
        # imported by the test): the rollback happened under the session's feet, so empty it here
        from app.core import settings_cache

        settings_cache.clear()


KEEP_TABLES = {
    "street",
    "community",
    "grid",
    "compound",
    "building",
    "service_station",
    "property_firm",
    "firm_contract",
    "party_branch",
    "user",
    "category",
    "alembic_version",
    "time_limit_policy",
    "business_hours",
    "open311_key",
    "settings_version",
}


def clean_committed_rows(app) -> None:
    """Delete what tests committed for real (cases, events, …), leaving the seeded organisation.

    Case events refuse deletion by trigger: PostgreSQL's TRUNCATE does not fire row triggers; on
    SQLite the triggers are dropped and recreated around the delete.
    """
    from app.extensions import Base

    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in KEEP_TABLES]
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
                return
            triggers = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            for name, _sql in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
            for table in tables:
                connection.execute(text(f'DELETE FROM "{table}"'))
            for _name, sql in triggers:
                connection.execute(text(sql))


@pytest.fixture
def committed(app):
    """Real commits on the shared database; rows created by the test are deleted afterwards.

    Tests using this fixture must not change organisation data or users.
    """
    clean_committed_rows(app)
    yield
    clean_committed_rows(app)


@pytest.fixture
def ctx(app):
    """An application context for calling services directly."""
    with app.app_context():
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(client, path: str = "/login") -> str:
    """Fetch a page with a form and return its CSRF token (the token is tied to the client's session)."""
    response = client.get(path)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class AuthActions:
    """Sign in and out through the real login form, CSRF token included."""

    def __init__(self, client):
        self._client = client

    def login(self, username: str = "admin", password: str = "Demo@2026"):
        token = csrf_token(self._client, "/login")
        return self._client.post("/login", data={"username": username, "password": password, "csrf_token": token})

    def logout(self):
        token = csrf_token(self._client, "/profile")
        return self._client.post("/logout", data={"csrf_token": token})

    def post(self, path: str, data: dict | None = None, form_page: str | None = None, **kwargs):
        """POST a form with a fresh CSRF token taken from ``form_page`` (default: the profile page)."""
        data = dict(data or {})
        data.setdefault("csrf_token", csrf_token(self._client, form_page or "/profile"))
        return self._client.post(path, data=data, **kwargs)


@pytest.fixture
def auth(client):
    return AuthActions(client)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``postgres`` when the run is on SQLite."""
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set TEST_DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
