"""Generate a large case table quickly (PostgreSQL, set-based SQL) for the sweep and list benchmarks.

``python -m bench.generate --cases 1000000 --open 100000`` resets the bench database, loads the demo
organisation and inserts the cases: ``open`` of them in open states with deadlines spread over the
coming weeks (none due now), the rest closed over the past two years.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text

from bench.common import BENCH_PG, make_app, reset

GENERATE_SQL = """
WITH c AS (SELECT id, community_id, grid_id FROM compound ORDER BY id),
     arr AS (SELECT array_agg(id) ids, array_agg(community_id) comms, array_agg(grid_id) grids, count(*) n FROM c),
     cats AS (SELECT array_agg(id ORDER BY id) ids, count(*) n FROM category),
     streets AS (SELECT min(id) id FROM street),
     firms AS (SELECT array_agg(id ORDER BY id) ids FROM property_firm)
INSERT INTO "case" (ref, category_id, workflow, urgency, state, channel, description, street_id, community_id,
                    compound_id, signoff_token, grid_id, firm_id, needs_routing, reopen_count, resolved_on_site,
                    branch_approved, firm_dispatched_at, resolution, created_at, updated_at, state_entered_at,
                    closed_at, version, due_at, warn_at, red_at, escalation_level, step_limit_minutes,
                    step_working, resolve_by, case_working, case_overdue, shelved, shelve_review_notified,
                    next_check_at)
SELECT 'B-' || lpad(g::text, 8, '0'),
       cats.ids[1 + (g % cats.n)], 'standard', CASE WHEN g % 10 = 0 THEN 'urgent' ELSE 'normal' END,
       CASE WHEN g <= :open THEN (ARRAY['grid_assigned','grid_handling','firm_dispatched','firm_processing',
                                        'awaiting_signoff'])[1 + (g % 5)] ELSE 'closed' END,
       'window', '基准测试诉求 #' || g, streets.id, arr.comms[1 + (g % arr.n)], arr.ids[1 + (g % arr.n)],
       md5(g::text), arr.grids[1 + (g % arr.n)], firms.ids[1 + (g % 2)], false, 0, false, false,
       CASE WHEN g > :open OR g % 5 >= 2 THEN :now - (g % 700) * interval '1 day' END,
       CASE WHEN g > :open THEN 'resolved_satisfied' END,
       :now - (g % 700) * interval '1 day' - (g % 86400) * interval '1 second',
       :now, :now,
       CASE WHEN g > :open THEN :now - (g % 700) * interval '1 day' + interval '2 days' END,
       1,
       CASE WHEN g <= :open THEN :now + interval '1 day' + (g % 30) * interval '1 day' END,
       CASE WHEN g <= :open THEN :now + interval '12 hours' + (g % 30) * interval '1 day' END,
       CASE WHEN g <= :open THEN :now + interval '3 days' + (g % 30) * interval '1 day' END,
       0, CASE WHEN g <= :open THEN 1260 END, true,
       CASE WHEN g <= :open THEN :now + interval '20 days' + (g % 30) * interval '1 day' END, true, false,
       false, false,
       CASE WHEN g <= :open THEN :now + interval '12 hours' + (g % 30) * interval '1 day' END
FROM generate_series(1, :total) g, arr, cats, streets, firms
"""


def generate(total: int, open_cases: int, url: str = BENCH_PG) -> float:
    """Reset the bench database and insert ``total`` cases. Returns seconds taken."""
    from app.core.timeutil import utcnow
    from app.extensions import db

    app = make_app(url)
    reset(app)
    started = time.perf_counter()
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text(GENERATE_SQL), {"total": total, "open": open_cases, "now": utcnow()})
            connection.execute(text('ANALYZE "case"'))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    args = parser.parse_args()
    seconds = generate(args.cases, args.open)
    print(f"generated {args.cases} cases ({args.open} open) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
