"""Two or more users acting on one case at once: exactly one wins, the others get a clear conflict."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.cases import services
from app.cases.models import Case, CaseEvent
from app.core.errors import Conflict
from app.extensions import db
from tests.factories import make_case, user

THREADS = 20


def _race(app, work, threads=THREADS):
    barrier = threading.Barrier(threads)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(index):
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                outcome = ("ok", work(index))
                db.session.commit()
            except (services.WorkflowRefused, Conflict) as refused:
                db.session.rollback()
                outcome = ("refused", f"{refused.code}: {refused.message}")
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                outcome = ("error", repr(error))
            finally:
                db.session.remove()
            with lock:
                results.append(outcome)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return results


@pytest.mark.postgres
def test_twenty_threads_fire_the_same_trigger_exactly_one_wins(app, committed):
    ref = make_case("grid_assigned")
    with app.app_context():
        before = db.session.scalar(select(Case.version).where(Case.ref == ref))

    def accept(_index):
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        services.fire(case, "grid_accept", user("grid1"))
        return case.state

    results = _race(app, accept)
    assert [r for r in results if r[0] == "error"] == []
    winners = [r for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] == "refused"]
    assert len(winners) == 1 and len(refused) == THREADS - 1
    # the losers are told what happened: the case is now with the grid worker
    assert all("trigger_not_allowed" in message and "Grid worker handling" in message for _k, message in refused)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        accepts = db.session.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.case_id == case.id, CaseEvent.trigger == "grid_accept")
        )
        # one write for the one accept (the case is written once at intake, already routed)
        assert case.state == "grid_handling" and accepts == 1 and case.version == before + 1


@pytest.mark.postgres
def test_concurrent_different_actions_with_the_version_seen_one_wins(app, committed):
    ref = make_case("firm_dispatched")
    with app.app_context():
        seen = db.session.scalar(select(Case.version).where(Case.ref == ref))

    def act(index):
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        if index % 2:
            services.fire(case, "firm_accept", user("firm1"), expected_version=seen)
        else:
            services.fire(
                case,
                "firm_return",
                user("firm1"),
                expected_version=seen,
                inputs={"reason": "other", "note": "重复派单"},
            )
        return case.state

    results = _race(app, act, threads=10)
    assert [r for r in results if r[0] == "error"] == []
    assert len([r for r in results if r[0] == "ok"]) == 1
    assert all("version_conflict" in m for k, m in results if k == "refused")


@pytest.mark.postgres
def test_concurrent_intakes_get_distinct_reference_numbers(app, committed):
    def register(index):
        case = services.register_case(
            services.Intake(
                category="garbage",
                description=f"垃圾未清运 #{index}",
                compound="X01",
                resident_name="居民",
                resident_phone="13800000000",
            ),
            user("clerk1"),
        )
        return case.ref

    results = _race(app, register, threads=12)
    refs = [value for kind, value in results if kind == "ok"]
    assert len(refs) == 12 and len(set(refs)) == 12
