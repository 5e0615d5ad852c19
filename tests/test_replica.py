"""Figures read from a PostgreSQL streaming replica (issue 12).

The test builds its own throwaway primary and hot-standby replica in a temporary directory on loopback
ports (``initdb``, ``pg_basebackup -R``, ``pg_ctl`` as the ``postgres`` system user), migrates and
seeds the primary, and checks that with ``REPLICA_DATABASE_URL`` set the dashboard, the bulletin and
the ``flask bulletin`` export read from the replica: with the replica's replay paused, a change on the
primary is not in what they read, and the pages say "figures as of …". The firm rating reads its
figures on the replica only once the replica has replayed the primary's position (a paused replica means
the primary) and writes the ratings on the primary; the large exports (12345 return sheet, dashboard and
bulletin downloads, administration CSV) read the replica and write their audit line on the primary.
Skipped where the server binaries, root (to act as ``postgres``) or PostgreSQL tests are not available.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from tests.conftest import IS_POSTGRES, csrf_token

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.own_app,
    pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL"),
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason=f"no PostgreSQL server binaries in {PG_BIN}"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to run as postgres"),
]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(*command: str, timeout: float = 120) -> None:
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command[0]} failed: {result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def cluster():
    """(primary URL, replica URL): a primary and a streaming hot standby, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ksm-replica-", dir="/tmp"))
    shutil.chown(base, "postgres")
    primary, replica = base / "primary", base / "replica"
    ports = _port(), _port()
    options = "-c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=30"
    started = []
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(primary), "-l", str(base / "primary.log"), "-w", "-t", "60",
            "-o", f"-p {ports[0]} -k {base} {options}", "start",
        )  # fmt: skip
        started.append(primary)
        _as_postgres(
            str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "postgres",
            "-D", str(replica), "-R", "-X", "stream",
        )  # fmt: skip
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(replica), "-l", str(base / "replica.log"), "-w", "-t", "60",
            "-o", f"-p {ports[1]} -k {base} {options} -c hot_standby=on", "start",
        )  # fmt: skip
        started.append(replica)
        yield tuple(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres" for port in ports)
    finally:
        for directory in reversed(started):
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(directory), "-m", "immediate",
                 "-w", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _wait_replayed(primary_url: str, replica_url: str, seconds: float = 30) -> None:
    primary, replica = create_engine(primary_url), create_engine(replica_url)
    try:
        with primary.connect() as connection:
            target = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with replica.connect() as connection:
                done = connection.execute(
                    text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"), {"lsn": target}
                ).scalar()
            if done:
                return
            time.sleep(0.2)
        raise AssertionError("the replica did not catch up")
    finally:
        primary.dispose()
        replica.dispose()


@pytest.fixture(scope="module")
def replica_app(cluster, tmp_path_factory):
    """The application on the throwaway primary (migrated, demo organisation) with the replica configured."""
    from flask_migrate import upgrade

    from app import create_app
    from app.demo.seed import seed_demo
    from app.extensions import db
    from config import TestingConfig

    primary_url, replica_url = cluster
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=primary_url,
        REPLICA_DATABASE_URL=replica_url,
        REPLICA_CATCH_UP_SECONDS=5,
        UPLOAD_DIR=str(tmp_path_factory.mktemp("uploads")),
        CLI_LOCALE="en",
    )
    with app.app_context():
        upgrade()
        seed_demo(with_cases=False)
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()
        found = app.extensions.pop("ksm_replica_engine", None)
        if found is not None:
            found.dispose()


@pytest.fixture
def replica(replica_app, cluster):
    """Per test: the replica configured again afterwards (a test may point it at a dead port)."""
    from app.core import replica as replica_module

    yield replica_module
    replica_app.config["REPLICA_DATABASE_URL"] = cluster[1]
    replica_app.extensions.pop(replica_module.EXTENSION, None)


@contextmanager
def _replay_paused(replica_url: str):
    """The replica stops replaying the primary's WAL within the block (it still receives it)."""
    standby = create_engine(replica_url)
    try:
        with standby.connect() as connection:
            connection.execute(text("SELECT pg_wal_replay_pause()"))
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_wal_replay_resume()"))
                connection.commit()
    finally:
        standby.dispose()


def _on_primary(primary_url: str, sql: str, **params):
    """Run one statement on the primary in its own committed transaction (not the app's session)."""
    engine = create_engine(primary_url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return result.all() if result.returns_rows else None
    finally:
        engine.dispose()


def _login(client, username="supervisor1"):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"username": username, "password": "Demo@2026", "csrf_token": token})
    assert response.status_code == 302


def test_reports_read_from_the_replica_and_say_as_of_when(cluster, replica_app, replica, tmp_path):
    from app.extensions import db
    from app.org.models import Community

    primary_url, replica_url = cluster
    app = replica_app
    with app.app_context():
        from app.auth.models import User
        from app.cases import services

        clerk = db.session.scalar(select(User).where(User.username == "clerk1"))
        case = services.register_case(
            services.Intake(
                category="water_leak", description="副本测试：楼道漏水", compound="X01",
                resident_name="陈先生", resident_phone="13812345678",
            ),
            clerk,
        )  # fmt: skip
        db.session.commit()
        community = db.session.get(Community, case.community_id)
        old_name = community.name
    _wait_replayed(primary_url, replica_url)

    # pause the replica's replay, then change the primary: the replica keeps the old name
    with create_engine(replica_url).connect() as standby:
        standby.execute(text("SELECT pg_wal_replay_pause()"))
        standby.commit()
        with app.app_context():
            db.session.get(Community, community.id).name = "改名后的社区"
            db.session.commit()
            with replica.reading_from_replica() as as_of:
                assert as_of is not None
                assert db.session.scalar(select(Community.name).where(Community.id == community.id)) == old_name
            assert db.session.scalar(select(Community.name).where(Community.id == community.id)) == "改名后的社区"
            assert replica.lag_seconds() is not None

        client = app.test_client()
        _login(client, "street1")  # sees every community of the street; the heading names the street
        page = client.get("/reports/dashboard?group=community", headers={"Accept-Language": "en"})
        html = page.get_data(as_text=True).split("<main", 1)[1]  # the menu shows the user, read from the primary
        assert page.status_code == 200 and "data-replica-as-of=" in html
        assert "served from the read replica" in html or "来自只读副本" in html
        assert "改名后的社区" not in html
        listed_before = old_name in html
        assert listed_before, "the street dashboard lists its communities"
        bulletin = client.get("/reports/bulletin")
        assert bulletin.status_code == 200 and "data-replica-as-of=" in bulletin.get_data(as_text=True)
        # pages that are not figures are read from the primary, and say nothing about a replica
        cases = client.get("/cases")
        assert cases.status_code == 200 and "data-replica-as-of=" not in cases.get_data(as_text=True)
        health = client.get("/healthz").get_json()
        assert health["status"] == "ok" and health["replica"]["configured"] is True
        assert health["replica"]["lag_seconds"] is not None

        out = tmp_path / "bulletin.csv"
        month = time.strftime("%Y-%m")
        result = app.test_cli_runner().invoke(args=["bulletin", "--month", month, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert old_name in out.read_text(encoding="utf-8-sig") or out.stat().st_size > 0

        standby.execute(text("SELECT pg_wal_replay_resume()"))
        standby.commit()
    _wait_replayed(primary_url, replica_url)
    html = client.get("/reports/dashboard?group=community").get_data(as_text=True).split("<main", 1)[1]
    assert ("改名后的社区" in html) == listed_before

    # a replica that is gone: the figures come from the primary, without the "as of" note
    app.config["REPLICA_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    app.extensions.pop(replica.EXTENSION, None)
    page = client.get("/reports/dashboard?group=community")
    assert page.status_code == 200 and "data-replica-as-of=" not in page.get_data(as_text=True)


# ------------------------------------------------------------------------------- the firm rating


def _november_case() -> int:
    """A case of F01 done in November 2026 and signed off "satisfied"; returns its id (app context)."""
    from app.cases import services
    from app.core.timeutil import app_tz
    from app.extensions import db
    from tests.factories import load, make_case, user

    tz = app_tz()
    ref = make_case("firm_processing", now=datetime(2026, 11, 10, 10, tzinfo=tz))
    services.fire(load(ref), "firm_complete", user("firm1"), inputs={"result": "已修复"},
                  now=datetime(2026, 11, 10, 11, tzinfo=tz))  # fmt: skip
    services.fire(
        load(ref), "signoff", user("grid1"), inputs={"contacted": True, "resolved": True, "satisfaction": "satisfied"},
        now=datetime(2026, 11, 10, 15, tzinfo=tz),
    )  # fmt: skip
    db.session.commit()
    return load(ref).id


def _f01_follow_ups(ratings) -> int:
    from app.extensions import db
    from app.org.models import PropertyFirm

    f01 = db.session.scalar(select(PropertyFirm.id).where(PropertyFirm.code == "F01"))
    return next(r for r in ratings if r.firm_id == f01).components["counts"]["follow_ups"]


def _last_rating_audit():
    from app.audit.models import AuditEvent
    from app.extensions import db

    return db.session.scalar(
        select(AuditEvent).where(AuditEvent.action.like("rating.%")).order_by(AuditEvent.id.desc())
    )


def test_the_rating_reads_the_replica_once_it_has_caught_up_and_writes_on_the_primary(
    cluster, replica_app, replica, monkeypatch, caplog
):
    from flask import g

    from app.core.timeutil import app_tz
    from app.extensions import db
    from app.reports import rating
    from tests.factories import user

    primary_url, replica_url = cluster
    after_november = datetime(2026, 12, 2, 9, tzinfo=app_tz())
    invalidate = "UPDATE follow_up SET valid = false WHERE case_id = :id"
    with replica_app.app_context():
        case_id = _november_case()
    _wait_replayed(primary_url, replica_url)

    # 1. The replica has replayed the primary's position: the rating reads the replica. To see it, the
    #    replica's replay is paused right after that check and the month's follow-up is invalidated on the
    #    primary (a write committed after the rating began, as if it came a moment later): the frozen
    #    rating still counts it — the replica's view — while the primary no longer does.
    checked = replica._why_not_caught_up
    paused = []

    def caught_up_then_paused(session, position, wait):
        why = checked(session, position, wait)
        assert why is None, why
        pause = _replay_paused(replica_url)
        pause.__enter__()
        paused.append(pause)
        _on_primary(primary_url, invalidate, id=case_id)
        return why

    monkeypatch.setattr(replica, "_why_not_caught_up", caught_up_then_paused)
    try:
        with replica_app.app_context():
            ratings, computed = rating.compute_month("2026-11", user("street1"), now=after_november)
            db.session.commit()
            assert computed and paused
            assert _f01_follow_ups(ratings) == 1  # the replica's view: the follow-up still valid there
            as_of = g.rating_figures_as_of
            assert as_of is not None
            audit = _last_rating_audit()
            assert audit.action == "rating.computed" and audit.details["figures"] == "replica"
            assert audit.details["figures_as_of"] == as_of.isoformat()
    finally:
        for pause in paused:
            pause.__exit__(None, None, None)
    monkeypatch.undo()
    assert _on_primary(primary_url, "SELECT valid FROM follow_up WHERE case_id = :id", id=case_id) == [(False,)]
    # the ratings and the audit line were written on the primary (the replica is read-only anyway)
    stored = _on_primary(primary_url, "SELECT count(*) FROM firm_rating WHERE month = '2026-11'")[0][0]
    firms = _on_primary(primary_url, "SELECT count(*) FROM property_firm")[0][0]
    assert stored == firms > 0
    _wait_replayed(primary_url, replica_url)

    # 2. A replica that has not replayed the primary's last facts is not used for a frozen figure: with
    #    its replay paused, the follow-up is made valid again on the primary; the recompute reads the
    #    primary (and counts it), and the log says why.
    with _replay_paused(replica_url):
        _on_primary(primary_url, "UPDATE follow_up SET valid = true WHERE case_id = :id", id=case_id)
        started = time.monotonic()
        with replica_app.app_context(), caplog.at_level("WARNING", logger="ksm.replica"):
            ratings, computed = rating.compute_month(
                "2026-11", user("street1"), recompute=True, reason="回访复核", now=after_november
            )
            db.session.commit()
            assert computed and _f01_follow_ups(ratings) == 1  # the primary's view
            assert g.rating_figures_as_of is None
            audit = _last_rating_audit()
            assert audit.action == "rating.recomputed" and audit.details["figures"] == "primary"
            assert audit.details["figures_as_of"] is None
        assert time.monotonic() - started < 5  # a paused replay is seen at once, not waited for
        assert any("paused" in record.getMessage() for record in caplog.records)
    _wait_replayed(primary_url, replica_url)

    # 3. Caught up again: the CLI's recompute reads the replica and says "figures as of …"; the replica
    #    now holds the same figures as the primary.
    _on_primary(primary_url, invalidate, id=case_id)
    result = replica_app.test_cli_runner().invoke(
        args=["rating", "compute", "--month", "2026-11", "--recompute", "--reason", "回访复核"]
    )
    assert result.exit_code == 0, result.output
    assert "Figures as of" in result.output and "served from the read replica" in result.output
    with replica_app.app_context():
        audit = _last_rating_audit()
        assert audit.details["figures"] == "replica"
    assert _on_primary(primary_url, "SELECT count(*) FROM firm_rating WHERE month = '2026-11'")[0][0] == firms

    # 4. The ratings page: a frozen month is read on the primary (no note); a month not rated yet is the
    #    provisional rating, computed on the replica and saying so.
    client = replica_app.test_client()
    _login(client, "street1")
    frozen = client.get("/reports/ratings?month=2026-11").get_data(as_text=True).split("<main", 1)[1]
    assert "data-replica-as-of=" not in frozen
    provisional = client.get("/reports/ratings?month=2026-10")
    assert provisional.status_code == 200
    assert "data-replica-as-of=" in provisional.get_data(as_text=True).split("<main", 1)[1]
    # the recompute from the page flashes where the figures came from
    token = csrf_token(client, "/reports/ratings?month=2026-11")
    response = client.post(
        "/reports/ratings/compute",
        data={"month": "2026-11", "recompute": "1", "reason": "页面复核", "csrf_token": token},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "data-replica-as-of=" not in response.get_data(as_text=True).split("<main", 1)[1]
    assert "只读副本" in response.get_data(as_text=True) or "read replica" in response.get_data(as_text=True)

    # 5. The replica is down: the primary serves the rating, the log says the replica is unreachable.
    replica_app.config["REPLICA_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    replica_app.extensions.pop(replica.EXTENSION, None)
    caplog.clear()
    with replica_app.app_context(), caplog.at_level("WARNING", logger="ksm.replica"):
        ratings, computed = rating.compute_month(
            "2026-11", user("street1"), recompute=True, reason="副本故障时复核", now=after_november
        )
        db.session.commit()
        assert computed and _f01_follow_ups(ratings) == 0  # the primary's view: the follow-up invalid again
        assert _last_rating_audit().details["figures"] == "primary"
    assert any("unreachable" in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------------------------------ large exports


def _hotline_case(order_no: str) -> None:
    from app.cases import services
    from app.extensions import db
    from tests.factories import user

    services.register_case(
        services.Intake(
            category="water_leak", description="12345 转来：楼道漏水", compound="X01", channel="hotline",
            resident_name="陈先生", resident_phone="13812345678", external_ref=f"12345:{order_no}",
        ),
        user("clerk1"),
    )  # fmt: skip
    db.session.commit()


def _sheet_orders(body: bytes) -> set[str]:
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    return {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}


def test_large_exports_read_the_replica_and_audit_on_the_primary(cluster, replica_app, replica, tmp_path):
    from app.core.timeutil import to_local, utcnow

    primary_url, replica_url = cluster
    with replica_app.app_context():
        _hotline_case("WO-BEFORE")
        today = to_local(utcnow()).date().isoformat()
    _wait_replayed(primary_url, replica_url)
    street, admin = replica_app.test_client(), replica_app.test_client()
    _login(street, "street1")
    _login(admin, "admin")
    exported = "SELECT count(*) FROM audit_event WHERE action = 'data.exported'"

    with _replay_paused(replica_url):
        with replica_app.app_context():
            _hotline_case("WO-PAUSED")  # committed on the primary, not replayed on the replica
        # the 12345 return sheet (web and CLI): the replica's rows
        sheet = street.get(f"/hotline/export?from={today}&to={today}")
        assert sheet.status_code == 200
        orders = _sheet_orders(sheet.data)
        assert "WO-BEFORE" in orders and "WO-PAUSED" not in orders
        out = tmp_path / "return.xlsx"
        result = replica_app.test_cli_runner().invoke(
            args=["export-12345", "--from", today, "--to", today, "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "Figures as of" in result.output
        assert _sheet_orders(out.read_bytes()) == orders

        # the dashboard and bulletin downloads: read on the replica, their audit line on the primary
        before = _on_primary(primary_url, exported)[0][0]
        table = street.get("/reports/dashboard.csv?group=community&table=detail")
        assert table.status_code == 200 and table.mimetype == "text/csv"
        month = time.strftime("%Y-%m")
        for ext in ("csv", "xlsx"):
            download = street.get(f"/reports/bulletin.{ext}?month={month}")
            assert download.status_code == 200, download.get_data(as_text=True)[:300]
        assert _on_primary(primary_url, exported)[0][0] == before + 3

        # an administration CSV export (the audit log) reads the replica: the lines just written on the
        # primary are not in it yet; its own audit line goes to the primary
        audit_csv = admin.get("/admin/auditevent/export/csv/?search=data.exported")
        assert audit_csv.status_code == 200
        rows = list(csv.reader(io.StringIO(audit_csv.get_data(as_text=True).lstrip("\ufeff"))))[1:]
        assert len(rows) == before  # the replica's lines, not the primary's before + 3
        assert _on_primary(primary_url, exported)[0][0] == before + 4

    _wait_replayed(primary_url, replica_url)
    orders = _sheet_orders(street.get(f"/hotline/export?from={today}&to={today}").data)
    assert {"WO-BEFORE", "WO-PAUSED"} <= orders

    # the replica is down: the exports come from the primary
    with _replay_paused(replica_url):
        with replica_app.app_context():
            _hotline_case("WO-DOWN")
        replica_app.config["REPLICA_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/none"
        replica_app.extensions.pop(replica.EXTENSION, None)
        orders = _sheet_orders(street.get(f"/hotline/export?from={today}&to={today}").data)
        assert {"WO-BEFORE", "WO-PAUSED", "WO-DOWN"} <= orders
        assert street.get("/reports/dashboard.csv?group=community&table=detail").status_code == 200
