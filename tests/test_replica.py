"""Figures read from a PostgreSQL streaming replica (issue 12).

The test builds its own throwaway primary and hot-standby replica in a temporary directory on loopback
ports (``initdb``, ``pg_basebackup -R``, ``pg_ctl`` as the ``postgres`` system user), migrates and
seeds the primary, and checks that with ``REPLICA_DATABASE_URL`` set the dashboard, the bulletin and
the ``flask bulletin`` export read from the replica: with the replica's replay paused, a change on the
primary is not in what they read, and the pages say "figures as of …". Skipped where the server
binaries, root (to act as ``postgres``) or PostgreSQL tests are not available.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
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


def _login(client, username="supervisor1"):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"username": username, "password": "Demo@2026", "csrf_token": token})
    assert response.status_code == 302


def test_reports_read_from_the_replica_and_say_as_of_when(cluster, tmp_path):
    from flask_migrate import upgrade

    from app import create_app
    from app.core import replica
    from app.demo.seed import seed_demo
    from app.extensions import db
    from app.org.models import Community
    from config import TestingConfig

    primary_url, replica_url = cluster
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=primary_url,
        REPLICA_DATABASE_URL=replica_url,
        UPLOAD_DIR=str(tmp_path / "uploads"),
        CLI_LOCALE="en",
    )
    with app.app_context():
        upgrade()
        seed_demo(with_cases=False)
        db.session.commit()
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
