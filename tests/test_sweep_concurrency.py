"""Two sweeps at once — threads, and two real scheduler processes — escalate every case exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.cases.models import Case, CaseEvent
from app.extensions import db
from app.notify.models import Notification
from app.sla import services as sla
from tests.conftest import TEST_DATABASE_URL
from tests.factories import make_case

TZ = ZoneInfo("Asia/Shanghai")
CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
SWEEP_AT = datetime(2026, 11, 25, 11, 30, tzinfo=TZ)  # every case: warning and yellow card due
ROOT = Path(__file__).resolve().parent.parent


def _make_due_cases(count: int) -> None:
    for index in range(count):
        make_case(now=CREATED, compound=("X01", "X03", "X05")[index % 3])


def _escalation_counts(app):
    with app.app_context():
        rows = db.session.execute(
            select(CaseEvent.case_id, CaseEvent.payload).where(CaseEvent.kind == "escalation")
        ).all()
        per_case: dict[int, list[int]] = {}
        for case_id, payload in rows:
            per_case.setdefault(case_id, []).append(payload["level"])
        total_cases = db.session.scalar(select(func.count()).select_from(Case))
        notifications = db.session.scalar(select(func.count()).select_from(Notification))
        return per_case, total_cases, notifications


@pytest.mark.postgres
def test_two_concurrent_sweeps_escalate_each_case_once(app, committed):
    _make_due_cases(120)
    results = []
    barrier = threading.Barrier(2)

    def run():
        with app.app_context():
            barrier.wait()
            results.append(sla.run_sweep(SWEEP_AT, batch=25))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(not r.errors for r in results)
    assert sum(r.warned for r in results) == 120 and sum(r.yellow for r in results) == 120
    assert all(r.examined > 0 for r in results), "both sweeps did share the work"
    per_case, total, notifications = _escalation_counts(app)
    assert total == 120 and len(per_case) == 120
    assert all(sorted(levels) == [1, 2] for levels in per_case.values())
    # a third sweep finds nothing
    with app.app_context():
        assert sla.run_sweep(SWEEP_AT).examined == 0


@pytest.mark.postgres
def test_two_scheduler_processes_do_not_double_fire(app, committed):
    _make_due_cases(60)
    env = {
        **os.environ,
        "DATABASE_URL": TEST_DATABASE_URL,
        "SCHEDULER": "off",
        "CLI_LOCALE": "en",
        "APP_ENV": "development",
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--now", SWEEP_AT.isoformat(), "--batch", "10"]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    per_case, total, _notifications = _escalation_counts(app)
    assert len(per_case) == 60 and all(sorted(levels) == [1, 2] for levels in per_case.values())
    warned = sum(int(out.split("warned ")[1].split(",")[0]) for out, _err in outputs)
    assert warned == 60
