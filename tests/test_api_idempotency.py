"""Idempotency under concurrency: integrations retry, and retries arrive at the same time as the original.

Real commits from several threads (the ``committed`` fixture): on PostgreSQL the second insert of the
same (user, key) waits for the first transaction and then fails on the unique constraint, so it replays
the stored case; on SQLite writers are serialised and the later request finds the stored case.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.api.models import IdempotencyRecord
from app.cases.models import Case
from app.extensions import db
from tests.test_api import INTAKE, token_for

THREADS = 8


def _race(app, threads: int, headers: dict, bodies: list[dict]):
    barrier = threading.Barrier(threads)
    responses: list = [None] * threads

    def run(index: int):
        client = app.test_client()
        barrier.wait(timeout=30)
        responses[index] = client.post("/api/v1/cases", json=bodies[index % len(bodies)], headers=headers)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return responses


def _counts(app) -> tuple[int, int]:
    with app.app_context():
        cases = db.session.scalar(select(func.count()).select_from(Case))
        records = db.session.scalar(select(func.count()).select_from(IdempotencyRecord))
        db.session.remove()
        return cases, records


@pytest.mark.parametrize("run", [pytest.param("postgres", marks=pytest.mark.postgres), "any database"])
def test_concurrent_creations_with_the_same_key_produce_one_case(app, committed, run):
    secret = token_for(app, "clerk1")
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "12345-WO-2026-0042"}
    responses = _race(app, THREADS, headers, [INTAKE])
    assert [r.status_code for r in responses] == [201] * THREADS, [r.get_json() for r in responses]
    refs = {r.get_json()["ref"] for r in responses}
    assert len(refs) == 1
    originals = [r for r in responses if r.headers.get("Idempotent-Replayed") != "true"]
    assert len(originals) == 1
    assert _counts(app) == (1, 1)


def test_concurrent_different_bodies_with_one_key_create_one_case_and_refuse_the_rest(app, committed):
    secret = token_for(app, "clerk1")
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "12345-WO-2026-0043"}
    other = {**INTAKE, "description": "另一件事：3栋楼道灯不亮"}
    responses = _race(app, 4, headers, [INTAKE, other])
    statuses = sorted(r.status_code for r in responses)
    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 422]
    assert len(created) + len(refused) == 4, statuses
    assert len({r.get_json()["ref"] for r in created}) == 1
    assert all(r.get_json()["error"]["code"] == "idempotency_key_reused" for r in refused) and len(refused) == 2
    assert _counts(app) == (1, 1)
