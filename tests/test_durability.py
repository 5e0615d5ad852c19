"""Durability, proven: backup and restore, a server killed mid-stream, an interrupted sweep.

All on loopback and in scratch databases with unique names (``tests/scratch.py``), bounded in time.
"""

from __future__ import annotations

import http.client
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.cases.models import Case, CaseEvent
from app.extensions import db
from config import TestingConfig
from tests.conftest import IS_POSTGRES
from tests.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.own_app


def _counts(app) -> dict[str, int]:
    from app.audit.models import AuditEvent
    from app.auth.models import User

    with app.app_context():
        counts = {
            "cases": db.session.scalar(select(func.count(Case.id))),
            "events": db.session.scalar(select(func.count(CaseEvent.id))),
            "users": db.session.scalar(select(func.count(User.id))),
            "audit": db.session.scalar(select(func.count(AuditEvent.id))),
            "refs": hash(tuple(db.session.scalars(select(Case.ref).order_by(Case.ref)))),
        }
        db.session.remove()
        db.engine.dispose()
    return counts


def _prepared_app(url: str, tmp_path: Path):
    from flask_migrate import upgrade

    from app.audit.services import record_audit
    from app.demo.seed import seed_demo

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, UPLOAD_DIR=str(tmp_path / "uploads"))
    with app.app_context():
        upgrade()
        seed_demo(with_cases=True)
        record_audit(None, "config.changed", target="backup test")
        db.session.commit()
        db.session.remove()
    return app


def _restore_postgres(dump: Path, url: str) -> None:
    from sqlalchemy.engine import make_url

    target = make_url(url)
    command = ["pg_restore", "--no-owner", "--exit-on-error", "--dbname", target.database, str(dump)]
    for flag, value in (("--host", target.host), ("--port", target.port), ("--username", target.username)):
        if value:
            command += [flag, str(value)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def test_backup_restores_into_a_fresh_database_that_passes_db_check(tmp_path):
    with scratch_database("backup_source", tmp_path) as source_url:
        source = _prepared_app(source_url, tmp_path)
        before = _counts(source)
        assert before["cases"] > 10 and before["audit"] >= 1
        dump = tmp_path / ("ksm.dump" if IS_POSTGRES else "ksm-backup.db")
        result = source.test_cli_runner().invoke(args=["backup", str(dump)])
        assert result.exit_code == 0, result.output
        assert dump.stat().st_size > 10_000
        again = source.test_cli_runner().invoke(args=["backup", str(dump)])
        assert again.exit_code != 0 and "exists" in again.output  # never overwrites a backup
        with scratch_database("backup_restore", tmp_path) as restore_url:
            if IS_POSTGRES:
                _restore_postgres(dump, restore_url)
            else:
                restore_url = f"sqlite:///{dump}"
            restored = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=restore_url)
            check = restored.test_cli_runner().invoke(args=["db", "check"])
            assert check.exit_code == 0, check.output
            assert _counts(restored) == before


def test_backup_refuses_what_it_cannot_copy(tmp_path):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.db")])
    assert result.exit_code != 0 and "in-memory" in result.output


# --- a server killed with SIGKILL in the middle of a stream of creations ------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(url: str, tmp_path: Path, port: int) -> subprocess.Popen:
    import sys
    import time
    import urllib.request

    env = {
        **os.environ,
        "DATABASE_URL": url,
        "APP_ENV": "development",
        "SCHEDULER": "off",
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / f"server-{port}.log", "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start: " + (tmp_path / f"server-{port}.log").read_text()[-2000:])


def _create(port: int, secret: str, key: str, n: int):
    import json
    import urllib.error
    import urllib.request

    body = json.dumps(
        {
            "category": "water_leak",
            "description": f"{n}号楼道水管漏水，地面积水",
            "compound": "X01",
            "resident_name": "测试",
            "resident_phone": "13800000000",
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/cases",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def test_sigkill_during_api_creations_loses_or_doubles_nothing(tmp_path):
    import signal
    import threading
    import time

    from app.auth.services import create_token
    from tests.factories import user

    with scratch_database("sigkill", tmp_path) as url:
        app = _prepared_app(url, tmp_path)
        with app.app_context():
            _token, secret = create_token(user("clerk1"), "stream")
            before = db.session.scalar(select(func.count(Case.id)))
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        port = _free_port()
        server = _start_server(url, tmp_path, port)
        acknowledged: dict[str, str] = {}  # idempotency key → reference answered with 201
        attempted: dict[str, int] = {}  # idempotency key → the request's number (its body)
        lock = threading.Lock()
        stop = threading.Event()

        def stream(worker: int):
            n = 0
            while not stop.is_set():
                key = f"w{worker}-{n}"
                with lock:
                    attempted[key] = n
                try:
                    status, body = _create(port, secret, key, n)
                except (OSError, http.client.HTTPException):
                    # the server is gone (killed before or while answering: no complete 201, not acknowledged)
                    return
                if status == 201:
                    with lock:
                        acknowledged[key] = body["ref"]
                n += 1

        workers = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        server.wait(timeout=10)
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
        assert len(acknowledged) >= 25, "the stream ran"
        # the clients retry what was never acknowledged, with the same keys, on a new server
        server = _start_server(url, tmp_path, port)
        try:
            retried = {}
            for key, n in attempted.items():
                if key not in acknowledged:
                    status, body = _create(port, secret, key, n)  # the same key with the same body
                    assert status in (200, 201), status  # 200: it was saved before the kill, replayed
                    retried[key] = body["ref"]
        finally:
            server.terminate()
            server.wait(timeout=10)
        check = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
        with check.app_context():
            refs = list(db.session.scalars(select(Case.ref).where(Case.id > 0)))
            assert len(refs) == len(set(refs)), "no reference twice"
            for ref in acknowledged.values():
                assert refs.count(ref) == 1, ref
            # one case per idempotency key, no more: every attempt ends as exactly one case
            assert len(refs) - before == len(set(acknowledged.values()) | set(retried.values())) == len(attempted)
            # nothing half-written: every case has its registration event
            without_event = db.session.scalar(
                select(func.count(Case.id)).where(~select(CaseEvent.id).where(CaseEvent.case_id == Case.id).exists())
            )
            assert without_event == 0
            db.session.remove()
            db.engine.dispose()


# --- a sweep interrupted half-way ---------------------------------------------------------------------


def test_an_interrupted_sweep_resumes_without_double_escalation(app, committed, monkeypatch):
    """Batch 1 commits, batch 2 dies after writing its escalations (as a killed process would: its
    transaction is never committed), the next run finishes: every case has each card exactly once."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from app.notify import services as notify
    from app.sla import services as sla
    from tests.factories import make_case

    tz = ZoneInfo("Asia/Shanghai")
    registered = datetime(2026, 11, 25, 9, 0, tzinfo=tz)
    later = datetime(2026, 11, 27, 9, 0, tzinfo=tz)  # warning, yellow and red are all due
    with app.app_context():
        refs = [make_case(now=registered) for _ in range(12)]
        db.session.remove()
    calls = {"n": 0}
    real_flush = notify.Bulk.flush

    def dying_flush(self, now):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed in the middle of batch 2")
        return real_flush(self, now)

    monkeypatch.setattr(notify.Bulk, "flush", dying_flush)
    with app.app_context():
        first = sla.run_sweep(later, batch=5)
        db.session.remove()
    assert first.errors and first.examined == 5  # batch 1 done, batch 2 lost
    monkeypatch.setattr(notify.Bulk, "flush", real_flush)
    with app.app_context():
        second = sla.run_sweep(later, batch=5)
        assert not second.errors and second.examined == 7
        assert sla.run_sweep(later, batch=5).examined == 0  # nothing left, nothing repeated
        for ref in refs:
            case_id = db.session.scalar(select(Case.id).where(Case.ref == ref))
            levels = [
                event.payload.get("level")
                for event in db.session.scalars(
                    select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == "escalation")
                )
                if "level" in (event.payload or {})
            ]
            assert sorted(levels) == [1, 2, 3], (ref, levels)
        db.session.remove()
