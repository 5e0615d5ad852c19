"""Generate a large case table quickly (PostgreSQL, set-based SQL) for the sweep, list and report benchmarks.

``python -m bench.generate --cases 1000000 --open 100000`` resets the bench database, loads the demo
organisation and inserts the cases: ``open`` of them in open states with deadlines spread over the
coming weeks (none due now), the rest closed over the past two years. Each case carries the facts the
services would have recorded (``fact_step`` rows for every step it passed through, yellow and red cards
for the late ones, a follow-up for every closed case), so the figures have realistic data to read.
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


# Steps 1–7: registered, grid_assigned, grid_handling, firm_dispatched, firm_processing, awaiting_signoff,
# closed. ``t(k)`` is when step k was entered; step k is left when step k+1 is entered. An open case stops
# at the step of its state, which is still open. About 10 % of grid acceptances, 14 % of firm acceptances
# and 11 % of firm completions are late (with a yellow card, every 50th case also a red one).
STEPS_SQL = """
WITH base AS (
  SELECT c.id, c.created_at, c.closed_at, c.state, c.due_at, c.street_id, c.community_id, c.compound_id,
         c.grid_id, c.firm_id, c.branch_id, c.category_id, c.urgency, c.channel, c.id AS g,
         CASE c.state WHEN 'grid_assigned' THEN 2 WHEN 'grid_handling' THEN 3 WHEN 'firm_dispatched' THEN 4
                      WHEN 'firm_processing' THEN 5 WHEN 'awaiting_signoff' THEN 6 ELSE 7 END AS last_step
  FROM "case" c
), timed AS (
  SELECT b.*,
         b.created_at AS t1,
         b.created_at AS t2,
         b.created_at + (30 + b.g % 150) * interval '1 minute' AS t3,
         b.created_at + (90 + b.g % 150) * interval '1 minute' AS t4,
         b.created_at + (110 + b.g % 150 + b.g % 200) * interval '1 minute' AS t5,
         b.created_at + (710 + b.g % 150 + b.g % 200 + (b.g % 40) * 30) * interval '1 minute' AS t6,
         coalesce(b.closed_at, b.created_at + interval '2 days') AS t7
  FROM base b
)
INSERT INTO fact_step (case_id, state, party, entered_at, entered_trigger, due_at, left_at, left_trigger, kind,
                       timed, on_time, max_level, working_minutes, paused_minutes, resolution, handling_minutes,
                       case_on_time, sent_back, street_id, community_id, compound_id, grid_id, grid_worker_id,
                       firm_id, branch_id, category_id, urgency, intake_channel)
SELECT t.id,
       (ARRAY['registered','grid_assigned','grid_handling','firm_dispatched','firm_processing',
              'awaiting_signoff','closed'])[s],
       (ARRAY['system','grid','grid','firm','firm','resident','system'])[s],
       (ARRAY[t.t1, t.t2, t.t3, t.t4, t.t5, t.t6, t.t7])[s],
       (ARRAY[NULL, 'route', 'grid_accept', 'dispatch_to_firm', 'firm_accept', 'firm_complete', 'signoff'])[s],
       CASE WHEN s = t.last_step AND s < 7 THEN t.due_at
            WHEN s IN (2, 3, 4, 5) THEN (ARRAY[t.t1, t.t2, t.t3, t.t4, t.t5, t.t6, t.t7])[s + 1]
                 + CASE WHEN (s = 2 AND t.g % 10 = 0) OR (s = 4 AND t.g % 7 = 0) OR (s = 5 AND t.g % 9 = 0)
                        THEN interval '-1 hour' ELSE interval '1 hour' END END,
       CASE WHEN s < t.last_step THEN (ARRAY[t.t1, t.t2, t.t3, t.t4, t.t5, t.t6, t.t7])[s + 1] END,
       CASE WHEN s < t.last_step THEN (ARRAY['route', 'grid_accept', 'dispatch_to_firm', 'firm_accept',
                                             'firm_complete', 'signoff', NULL])[s] END,
       (ARRAY[NULL, 'accept', 'handle', 'accept', 'handle', NULL, NULL])[s],
       s IN (2, 3, 4, 5) AND s < t.last_step,
       CASE WHEN s IN (2, 3, 4, 5) AND s < t.last_step
            THEN NOT ((s = 2 AND t.g % 10 = 0) OR (s = 4 AND t.g % 7 = 0) OR (s = 5 AND t.g % 9 = 0)) END,
       CASE WHEN s < t.last_step AND ((s = 2 AND t.g % 10 = 0) OR (s = 4 AND t.g % 7 = 0) OR (s = 5 AND t.g % 9 = 0))
            THEN CASE WHEN t.g % 50 = 0 THEN 3 ELSE 2 END ELSE 0 END,
       CASE WHEN s < t.last_step THEN round((extract(epoch FROM
            (ARRAY[t.t1, t.t2, t.t3, t.t4, t.t5, t.t6, t.t7])[s + 1]
            - (ARRAY[t.t1, t.t2, t.t3, t.t4, t.t5, t.t6, t.t7])[s]) / 60 * 0.35)::numeric, 2) END,
       0,
       CASE WHEN s = 7 THEN 'resolved_satisfied' END,
       CASE WHEN s = 7 THEN round((extract(epoch FROM t.t6 - t.t1) / 60 * 0.35)::numeric, 2) END,
       CASE WHEN s = 7 THEN t.g % 9 <> 0 END,
       false,
       t.street_id, t.community_id, t.compound_id, t.grid_id, NULL,
       CASE WHEN s >= 4 THEN t.firm_id END,
       t.branch_id, t.category_id, t.urgency, t.channel
FROM timed t CROSS JOIN generate_series(1, 7) s
WHERE s <= t.last_step
"""
CARDS_SQL = """
INSERT INTO fact_action (case_id, kind, at, state, party, actor_id, due_at, ended_at, street_id, community_id,
                         compound_id, grid_id, grid_worker_id, firm_id, branch_id, category_id, urgency,
                         intake_channel)
SELECT f.case_id, k.kind, f.due_at + CASE k.kind WHEN 'yellow' THEN interval '1 minute' ELSE interval '50 minutes' END,
       f.state, f.party, NULL, f.due_at, NULL, f.street_id, f.community_id, f.compound_id, f.grid_id,
       f.grid_worker_id, f.firm_id, f.branch_id, f.category_id, f.urgency, f.intake_channel
FROM fact_step f CROSS JOIN (VALUES ('yellow', 2), ('red', 3)) AS k(kind, level)
WHERE f.max_level >= k.level
"""
FOLLOW_UPS_SQL = """
INSERT INTO follow_up (case_id, contacted, resolved, satisfaction, channel, valid, created_at, party, street_id,
                       community_id, compound_id, grid_id, grid_worker_id, firm_id, branch_id, category_id,
                       urgency, intake_channel)
SELECT c.id, c.id % 20 <> 0, c.id % 7 <> 0,
       CASE WHEN c.id % 10 < 7 THEN 'satisfied' WHEN c.id % 10 < 9 THEN 'basic' ELSE 'unsatisfied' END,
       'grid_worker', c.id % 97 <> 0, c.closed_at, 'firm', c.street_id, c.community_id, c.compound_id, c.grid_id,
       NULL, c.firm_id, c.branch_id, c.category_id, c.urgency, c.channel
FROM "case" c WHERE c.state = 'closed'
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
            connection.execute(text(STEPS_SQL))
            connection.execute(text(CARDS_SQL))
            connection.execute(text(FOLLOW_UPS_SQL))
        # a freshly loaded table has no visibility map yet: vacuum so index-only scans work as in production
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("case", "fact_step", "fact_action", "follow_up"):
                connection.execute(text(f'VACUUM ANALYZE "{table}"'))
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
