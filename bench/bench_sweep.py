"""The escalation sweep on a large database: nothing due, and 1,000 cases due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from bench.common import summary, timer

SWEEP_SQL = 'SELECT id FROM "case" WHERE next_check_at <= :now ORDER BY next_check_at LIMIT 1000 FOR UPDATE SKIP LOCKED'


def _counts(app):
    from app.extensions import db

    with app.app_context():
        row = db.session.execute(
            text("SELECT count(*), count(*) FILTER (WHERE state <> 'closed'), count(next_check_at) FROM \"case\"")
        ).one()
        return {"cases": row[0], "open": row[1], "with_next_check": row[2]}


def _make_due(count: int, now, kind: str) -> None:
    """Make ``count`` open (non-sign-off) cases due now, inside the current transaction."""
    from app.extensions import db

    if kind == "warn":
        sql = (
            'UPDATE "case" SET warn_at = :past, next_check_at = :past WHERE id IN (SELECT id FROM "case" '
            "WHERE state IN ('grid_handling', 'firm_processing', 'firm_dispatched', 'grid_assigned') "
            "AND escalation_level = 0 ORDER BY id LIMIT :n)"
        )
    else:  # already warned, now overdue: yellow cards
        sql = (
            'UPDATE "case" SET escalation_level = 1, warn_at = :past, due_at = :past, next_check_at = :past '
            "WHERE id IN (SELECT id FROM \"case\" WHERE state IN ('grid_handling', 'firm_processing', "
            "'firm_dispatched', 'grid_assigned') AND escalation_level = 0 ORDER BY id LIMIT :n)"
        )
    db.session.execute(text(sql), {"past": now - timedelta(minutes=1), "n": count})


def run(app, repeats_nothing: int = 50, repeats_due: int = 5) -> dict:
    from app.core.timeutil import utcnow
    from app.extensions import db
    from app.sla.services import sweep_batch

    result = {"counts": _counts(app)}
    now = utcnow()
    with app.app_context():
        sweep_batch(now)  # warm caches (calendar, policies, plans)
        db.session.rollback()
        samples = []
        for _ in range(repeats_nothing):
            with timer() as took:
                outcome = sweep_batch(now)
            assert outcome.examined == 0, "nothing should be due in the generated data"
            samples.append(took["ms"])
            db.session.rollback()
        # the samples in run order too: whether the slow runs are the first ones (cold pages) or scattered
        result["nothing_due"] = {**summary(samples), "samples_ms": samples}
        for kind in ("warn", "yellow"):
            samples, last = [], None
            for _ in range(repeats_due):
                _make_due(1000, now, kind)
                db.session.flush()
                with timer() as took:
                    last = sweep_batch(now, limit=1000)
                    db.session.flush()
                samples.append(took["ms"])
                db.session.rollback()
            result[f"due_{kind}"] = {**summary(samples), "samples_ms": samples}
            result[f"due_{kind}_outcome"] = {
                "examined": last.examined,
                "warned": last.warned,
                "yellow": last.yellow,
                "notifications": last.notifications,
            }
        plans = {}
        db.session.execute(text("SET LOCAL enable_seqscan = on"))
        plans["nothing_due"] = "\n".join(
            r[0] for r in db.session.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + SWEEP_SQL), {"now": now})
        )
        _make_due(1000, now, "warn")
        plans["due_1000"] = "\n".join(
            r[0] for r in db.session.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + SWEEP_SQL), {"now": now})
        )
        db.session.rollback()
        result["plans"] = plans
    return result
