"""The read replica's rules that do not need a replica (SQLite and PostgreSQL alike, issue 12).

Without ``REPLICA_DATABASE_URL`` everything reads the primary exactly as before; with a replica that
cannot be reached or lags too far, the primary serves and the log says why; nested blocks read where the
outer one does. The throwaway primary + streaming replica tests are in ``tests/test_replica.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import g
from sqlalchemy import create_engine, select

from app.audit.models import AuditEvent
from app.core import replica
from app.extensions import db
from app.reports import rating
from tests.factories import user
from tests.test_rating import DEC2, november  # noqa: F401 - the fixture: a month of F01's and F02's cases

DEAD_REPLICA = "postgresql+psycopg://postgres@127.0.0.1:1/none"


@pytest.fixture
def replica_at(app, monkeypatch):
    """Point the app at a replica URL for one test (its engine is dropped afterwards)."""

    def configure(url):
        monkeypatch.setitem(app.config, "REPLICA_DATABASE_URL", url)
        app.extensions.pop(replica.EXTENSION, None)

    yield configure
    found = app.extensions.pop(replica.EXTENSION, None)
    if found is not None:
        found.dispose()


def _rating_audit():
    return db.session.scalar(
        select(AuditEvent).where(AuditEvent.action.like("rating.%")).order_by(AuditEvent.id.desc())
    )


def test_without_a_replica_the_rating_reads_and_writes_the_primary(november, ctx):  # noqa: F811
    ratings, computed = rating.compute_month("2026-11", user("street1"), now=DEC2)
    assert computed and len(ratings) >= 2
    assert g.rating_figures_as_of is None
    audit = _rating_audit()
    assert audit.details["figures"] == "primary" and audit.details["figures_as_of"] is None
    with replica.reading_from_replica(caught_up=True) as as_of:
        assert as_of is None
        assert replica.MARK not in db.session.registry().info  # the primary's session, untouched


def test_without_a_replica_the_cli_says_nothing_about_one(november, runner, ctx):  # noqa: F811
    db.session.commit()
    result = runner.invoke(args=["rating", "compute", "--month", "2026-11"])
    assert result.exit_code == 0, result.output
    assert "replica" not in result.output.lower() and "F01" in result.output


def test_an_unreachable_replica_means_the_primary_and_a_logged_reason(november, replica_at, caplog, ctx):  # noqa: F811
    replica_at(DEAD_REPLICA)
    with caplog.at_level("WARNING", logger="ksm.replica"):
        ratings, computed = rating.compute_month("2026-11", user("street1"), now=DEC2)
        with replica.reading_from_replica() as as_of:
            assert as_of is None
    assert computed and g.rating_figures_as_of is None
    assert _rating_audit().details["figures"] == "primary"
    f01 = next(r for r in ratings if r.firm.code == "F01")
    assert f01.score == 98.0  # the same figures as without a replica (tests/test_rating.py)
    assert any("unreachable" in record.getMessage() for record in caplog.records)


def test_the_ratings_page_and_cli_with_a_dead_replica_read_the_primary(november, replica_at, client, auth, runner):  # noqa: F811
    replica_at(DEAD_REPLICA)
    auth.login("street1")
    page = client.get("/reports/ratings?month=2026-11")  # not rated yet: the provisional rating
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "data-replica-as-of=" not in html and "F01" in html
    result = runner.invoke(args=["rating", "compute", "--month", "2026-11"])
    assert result.exit_code == 0, result.output
    # (the CLI speaks the locale the test's earlier request left behind: either language is fine here)
    assert "The read replica was behind or unreachable" in result.output or "只读副本滞后或无法连接" in result.output


@pytest.fixture
def fake_replica(monkeypatch, tmp_path):
    """A "replica" engine that connects (an empty SQLite file); tests fake its replay state."""
    engine = create_engine(f"sqlite:///{tmp_path / 'replica.db'}")
    monkeypatch.setattr(replica, "engine", lambda: engine)
    yield engine
    engine.dispose()


def test_a_replica_too_far_behind_is_not_used(app, fake_replica, monkeypatch, caplog, ctx):
    monkeypatch.setitem(app.config, "REPLICA_MAX_LAG_SECONDS", 60)
    monkeypatch.setattr(replica, "_state", lambda connection: (61.0, datetime(2026, 11, 30, tzinfo=UTC)))
    primary = db.session.registry()
    with caplog.at_level("WARNING", logger="ksm.replica"), replica.reading_from_replica() as as_of:
        assert as_of is None and db.session.registry() is primary
    assert any("61 s behind" in record.getMessage() for record in caplog.records)


def test_a_nested_block_reads_where_the_outer_one_does(fake_replica, monkeypatch, ctx):
    as_of = datetime(2026, 11, 30, 8, tzinfo=UTC)
    monkeypatch.setattr(replica, "_state", lambda connection: (0.0, as_of))
    primary = db.session.registry()
    with replica.reading_from_replica() as outer:
        reading = db.session.registry()
        assert outer == as_of and reading is not primary and reading.info[replica.MARK] == as_of
        # a frozen figure asked for inside: no second replica session, no primary position asked of a standby
        with replica.reading_from_replica(caught_up=True) as inner:
            assert inner == as_of and db.session.registry() is reading
        assert db.session.registry() is reading
    assert db.session.registry() is primary
