"""A real multi-process deployment on one PostgreSQL database (issue 12).

Two gunicorn web servers (``gunicorn.conf.py``, ``SCHEDULER=off``) and two ``flask scheduler``
processes (sweeping every second) on loopback ports. Over HTTP a clerk registers cases on both web
servers; some are then put past their deadlines (as if time had passed) while a grid worker and a
firm move the others along, alternating between the servers. Checks: every request succeeded, every
overdue case was escalated to each level exactly once (two schedulers, no double work), nobody got
the same notification twice, and the web processes swept nothing.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from app.auth.services import create_token
from app.cases.models import Case, CaseEvent
from app.core.heartbeat import JobRun
from app.core.timeutil import utcnow
from app.extensions import db
from app.notify.models import Notification
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.factories import user

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OVERDUE = 8
MOVING = 8
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not IS_POSTGRES, reason="needs PostgreSQL")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_http(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"web process on {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"web process on {port} did not answer within {seconds} s")


def _call(port: int, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept-Language": "en"}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@pytest.fixture
def deployment(app, committed, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": TEST_DATABASE_URL,
        "APP_ENV": "production",
        "SECRET_KEY": "deployment-test-" + "k" * 40,
        "SWEEP_INTERVAL_SECONDS": "1",
        "NOTIFY_CHANNELS": "log",
        "WEB_CONCURRENCY": "1",
        "CLI_LOCALE": "en",
    }
    env.pop("SCHEDULER", None)
    processes, logs = [], []

    def start(name, command, extra):
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        logs.append(log)
        process = subprocess.Popen(
            command, cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(process)
        return process

    ports = [_free_port(), _free_port()]
    try:
        webs = [
            start(
                f"web{i}",
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                {"WEB_BIND": f"127.0.0.1:{port}"},
            )
            for i, port in enumerate(ports)
        ]
        for i in range(2):
            start(f"scheduler{i}", [str(BIN / "flask"), "--app", "wsgi", "scheduler"], {})
        for port, web in zip(ports, webs, strict=True):
            _wait_http(port, web)
        yield ports, tmp_path
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def test_two_web_servers_and_two_schedulers_escalate_each_case_exactly_once(app, deployment):
    ports, logs = deployment
    with app.app_context():
        tokens = {name: create_token(user(name), "deployment test")[1] for name in ("clerk1", "grid1", "firm1")}
        db.session.commit()
    intake = {
        "category": "water_leak",
        "compound": "X01",
        "resident_name": "陈先生",
        "resident_phone": "13812345678",
        "channel": "phone",
    }

    def register(index):
        body = {**intake, "description": f"多进程测试第{index}件：楼道水管漏水"}
        return _call(ports[index % 2], "POST", "/api/v1/cases", tokens["clerk1"], body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(register, range(OVERDUE + MOVING)))
    assert [status for status, _body in created] == [201] * (OVERDUE + MOVING), created
    refs = [body["ref"] for _status, body in created]
    late, moving = refs[:OVERDUE], refs[OVERDUE:]

    # time passes for the first group: warned half an hour ago, overdue five minutes ago
    now = utcnow()
    with app.app_context():
        db.session.execute(
            update(Case)
            .where(Case.ref.in_(late))
            .values(
                warn_at=now - timedelta(minutes=30),
                due_at=now - timedelta(minutes=5),
                red_at=now + timedelta(hours=2),
                next_check_at=now - timedelta(minutes=5),
            )
        )
        db.session.commit()

    # meanwhile the grid worker and the firm move the others along, on both servers, in parallel
    steps = (("grid1", "grid_accept"), ("grid1", "dispatch_to_firm"), ("firm1", "firm_accept"))

    def drive(index):
        ref, outcomes = moving[index], []
        for number, (who, trigger) in enumerate(steps):
            port = ports[(index + number) % 2]
            outcomes.append(_call(port, "POST", f"/api/v1/cases/{ref}/transitions", tokens[who], {"trigger": trigger}))
        return outcomes

    with ThreadPoolExecutor(max_workers=4) as pool:
        driven = [outcome for outcomes in pool.map(drive, range(MOVING)) for outcome in outcomes]
    assert [status for status, _body in driven] == [200] * len(driven), [b for s, b in driven if s != 200]
    assert {body["case"]["state"] for _status, body in driven[2::3]} == {"firm_processing"}

    # the schedulers sweep every second: wait for the escalations, then a few more sweeps
    deadline = time.monotonic() + 60
    with app.app_context():
        while time.monotonic() < deadline:
            levels = db.session.scalars(select(Case.escalation_level).where(Case.ref.in_(late))).all()
            db.session.rollback()
            if levels == [2] * OVERDUE:
                break
            time.sleep(0.5)
        assert levels == [2] * OVERDUE, f"escalation levels {levels}; scheduler logs in {logs}"
        time.sleep(3)
        late_ids = db.session.scalars(select(Case.id).where(Case.ref.in_(late))).all()
        escalations = db.session.execute(
            select(CaseEvent.case_id, CaseEvent.payload).where(
                CaseEvent.kind == "escalation", CaseEvent.case_id.in_(late_ids)
            )
        ).all()
        per_level = Counter((case_id, payload.get("level")) for case_id, payload in escalations)
        assert set(per_level) == {(case_id, level) for case_id in late_ids for level in (1, 2)}
        assert set(per_level.values()) == {1}, per_level
        # the moving cases were never escalated
        moving_ids = db.session.scalars(select(Case.id).where(Case.ref.in_(moving))).all()
        assert not db.session.scalar(
            select(CaseEvent.id).where(CaseEvent.kind == "escalation", CaseEvent.case_id.in_(moving_ids)).limit(1)
        )
        # nobody got the same notification twice
        notes = db.session.execute(
            select(Notification.user_id, Notification.case_id, Notification.kind).where(
                Notification.case_id.in_(late_ids + moving_ids)
            )
        ).all()
        repeated = [key for key, count in Counter(notes).items() if count > 1 and key[2].startswith("escalation")]
        assert repeated == []
        assert sum(1 for note in notes if note.kind == "escalation_2") >= OVERDUE
        # a scheduler recorded its successful sweeps (for /healthz); the web processes did not sweep
        sweep = db.session.get(JobRun, "sweep")
        assert sweep is not None and utcnow() - sweep.last_success_at < timedelta(seconds=30)
        assert db.session.execute(text("SELECT count(*) FROM job_run WHERE job <> 'sweep'")).scalar() >= 0
    web_logs = "".join((logs / f"web{i}.log").read_text(errors="replace") for i in range(2))
    assert "scheduler" not in web_logs.lower() and "Traceback" not in web_logs
    scheduler_logs = "".join((logs / f"scheduler{i}.log").read_text(errors="replace") for i in range(2))
    assert "Traceback" not in scheduler_logs, scheduler_logs[-3000:]
