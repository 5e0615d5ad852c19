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


def _sample(app, now, kind: str | None) -> tuple[float, object]:
    """One sweep on ``app``'s database, in ms, and its outcome: with nothing due (``kind`` None) or with
    1,000 cases made due (``warn``: warnings, ``yellow``: yellow cards); rolled back afterwards."""
    from app.extensions import db
    from app.sla.services import sweep_batch

    with app.app_context():
        try:
            if kind:
                _make_due(1000, now, kind)
                db.session.flush()
            with timer() as took:
                outcome = sweep_batch(now, limit=1000)
                db.session.flush()
            if not kind:
                assert outcome.examined == 0, "nothing should be due in the generated data"
            return took["ms"], outcome
        finally:
            db.session.rollback()


def _plans(app, now) -> dict:
    from app.extensions import db

    with app.app_context():
        plans = {}
        db.session.execute(text("SET LOCAL enable_seqscan = on"))
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + SWEEP_SQL
        plans["nothing_due"] = "\n".join(r[0] for r in db.session.execute(text(explain), {"now": now}))
        _make_due(1000, now, "warn")
        plans["due_1000"] = "\n".join(r[0] for r in db.session.execute(text(explain), {"now": now}))
        db.session.rollback()
        return plans


def interleaved(apps: dict, repeats_nothing: int = 50, repeats_due: int = 5) -> dict:
    """The sweep on each of ``apps`` (name -> app), its runs interleaved: run 1 on each database in turn,
    then run 2, …, so that a slow minute of a shared machine falls on every size alike. Returns name ->
    result, each figure with its samples in run order (whether the slow runs are the first ones, cold
    pages, or scattered)."""
    from app.core.timeutil import utcnow

    now = utcnow()
    results = {name: {"counts": _counts(app)} for name, app in apps.items()}
    for kind, repeats in ((None, repeats_nothing), ("warn", repeats_due), ("yellow", repeats_due)):
        samples: dict = {name: [] for name in apps}
        last: dict = {}
        # one run of each kind first, not counted (as each page gets one request first): it warms the
        # process's caches (calendar, policies, plans) and reads the pages of the cases made due; kept apart
        warm_up = {name: _sample(app, now, kind)[0] for name, app in apps.items()}
        for _ in range(repeats):
            for name, app in apps.items():
                took, last[name] = _sample(app, now, kind)
                samples[name].append(took)
        for name in apps:
            key = f"due_{kind}" if kind else "nothing_due"
            results[name][key] = {**summary(samples[name]), "samples_ms": samples[name], "warm_up_ms": warm_up[name]}
            if kind:
                outcome = last[name]
                results[name][f"due_{kind}_outcome"] = {
                    "examined": outcome.examined,
                    "warned": outcome.warned,
                    "yellow": outcome.yellow,
                    "notifications": outcome.notifications,
                }
    for name, app in apps.items():
        results[name]["plans"] = _plans(app, now)
    return results


def run(app, repeats_nothing: int = 50, repeats_due: int = 5) -> dict:
    """The sweep on one database (see :func:`interleaved`)."""
    return interleaved({"": app}, repeats_nothing, repeats_due)[""]
