"""Generate a large case table quickly (PostgreSQL, set-based SQL) for the sweep, list and report benchmarks.

``python -m bench.generate --cases 1000000 --open 100000`` resets the bench database, loads the demo
organisation and inserts the cases. ``--city`` first adds a realistic city (issue 12; sizes configurable:
``--streets 20 --communities 200 --compounds 2000 --firms 60``, a grid per 5 compounds with 2 grid
workers each, 3 managers per firm, a supervisor per community, a contract and a party branch per
compound, one compound in ten having changed firm a year ago). Everything is deterministic (a fixed
seed: values derive from the row number), set-based, and the cases are written in batches with a
progress bar. The cases are spread over all compounds, each with its compound's street, community, grid
and firm under contract; the cases are: ``open`` of them in open states with deadlines spread over the
coming weeks (none due now), the rest closed over the past two years. Each case carries the facts the
services would have recorded (``fact_step`` rows for every step it passed through, yellow and red cards
for the late ones, a follow-up for every closed case), so the figures have realistic data to read.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import text

from bench.common import BENCH_PG, make_app, reset

GENERATE_SQL = """
WITH c AS (SELECT k.id, k.community_id, k.grid_id, m.street_id,
                  coalesce((SELECT fc.firm_id FROM firm_contract fc WHERE fc.compound_id = k.id AND fc.end_date IS NULL
                            ORDER BY fc.start_date DESC LIMIT 1), (SELECT min(id) FROM property_firm)) AS firm_id
           FROM compound k JOIN community m ON m.id = k.community_id ORDER BY k.id),
     arr AS (SELECT array_agg(id) ids, array_agg(community_id) comms, array_agg(grid_id) grids,
                    array_agg(street_id) streets, array_agg(firm_id) firms, count(*) n FROM c),
     cats AS (SELECT array_agg(id ORDER BY id) ids, count(*) n FROM category)
INSERT INTO "case" (ref, category_id, workflow, urgency, state, channel, description, street_id, community_id,
                    compound_id, signoff_token, grid_id, firm_id, needs_routing, reopen_count, resolved_on_site,
                    branch_approved, firm_dispatched_at, resolution, created_at, updated_at, state_entered_at,
                    closed_at, version, due_at, warn_at, red_at, escalation_level, step_limit_minutes,
                    step_working, resolve_by, case_working, case_overdue, shelved, shelve_review_notified,
                    next_check_at)
SELECT 'B-' || lpad(g::text, 8, '0'),
       cats.ids[1 + (g % cats.n)], 'standard', CASE WHEN g % 10 = 0 THEN 'urgent' ELSE 'normal' END,
       CASE WHEN g <= :open THEN (ARRAY['grid_assigned','grid_handling','firm_dispatched','firm_processing',
                                        'awaiting_signoff'])[1 + ((g + g / arr.n) % 5)] ELSE 'closed' END,
       'window', '基准测试诉求 #' || g, arr.streets[1 + (g % arr.n)], arr.comms[1 + (g % arr.n)],
       arr.ids[1 + (g % arr.n)], md5(g::text), arr.grids[1 + (g % arr.n)], arr.firms[1 + (g % arr.n)],
       false, 0, false, false,
       CASE WHEN g > :open OR (g + g / arr.n) % 5 >= 2 THEN :now - (g % 700) * interval '1 day' END,
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
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g, arr, cats
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
CITY_SQL = [
    """INSERT INTO street (code, name, created_at)
       SELECT 'GS' || lpad(s::text, 3, '0'), '生成街道' || s, now() FROM generate_series(1, :streets) s""",
    """INSERT INTO community (code, name, street_id, created_at)
       SELECT 'GC' || lpad(c::text, 4, '0'), '生成社区' || c, st.id, now()
       FROM generate_series(1, :communities) c
       JOIN street st ON st.code = 'GS' || lpad((1 + (c - 1) % :streets)::text, 3, '0')""",
    """INSERT INTO grid (code, name, community_id, created_at)
       SELECT 'GG' || lpad(g::text, 5, '0'), '生成网格' || g, m.id, now()
       FROM generate_series(1, :grids) g
       JOIN community m ON m.code = 'GC' || lpad((1 + (g - 1) % :communities)::text, 4, '0')""",
    """INSERT INTO compound (code, name, address, community_id, grid_id, created_at)
       SELECT 'GK' || lpad(k::text, 5, '0'), '生成小区' || k, '生成路' || k || '号', gr.community_id, gr.id, now()
       FROM generate_series(1, :compounds) k
       JOIN grid gr ON gr.code = 'GG' || lpad((1 + (k - 1) % :grids)::text, 5, '0')""",
    """INSERT INTO property_firm (code, name, created_at)
       SELECT 'GF' || lpad(f::text, 3, '0'), '生成物业服务有限公司' || f, now() FROM generate_series(1, :firms) f""",
    # every compound: a contract in force for three years; one in ten changed firm a year ago
    """INSERT INTO firm_contract (compound_id, firm_id, start_date, end_date, created_at)
       SELECT k.id, f.id, CASE WHEN k.id % 10 = 0 THEN current_date - 365 ELSE current_date - 1100 END, NULL, now()
       FROM compound k JOIN property_firm f ON f.code = 'GF' || lpad((1 + (k.id * 7919) % :firms)::text, 3, '0')
       WHERE k.code LIKE 'GK%'""",
    """INSERT INTO firm_contract (compound_id, firm_id, start_date, end_date, created_at)
       SELECT k.id, f.id, current_date - 1100, current_date - 366, now()
       FROM compound k JOIN property_firm f ON f.code = 'GF' || lpad((1 + (k.id * 104729) % :firms)::text, 3, '0')
       WHERE k.code LIKE 'GK%' AND k.id % 10 = 0""",
    """INSERT INTO party_branch (code, name, compound_id, created_at)
       SELECT 'GB' || substr(k.code, 3), k.name || '党支部', k.id, now() FROM compound k WHERE k.code LIKE 'GK%'""",
    # staff: the password of the demo accounts (Demo@2026), copied from grid1
    """INSERT INTO "user" (username, display_name, password_hash, role, active, failed_login_count, grid_id,
                           created_at)
       SELECT 'gw' || substr(gr.code, 3) || '_' || n, '网格员' || substr(gr.code, 3) || '-' || n,
              (SELECT password_hash FROM "user" WHERE username = 'grid1'), 'grid_worker', true, 0, gr.id, now()
       FROM grid gr CROSS JOIN generate_series(1, :workers_per_grid) n WHERE gr.code LIKE 'GG%'""",
    """INSERT INTO "user" (username, display_name, password_hash, role, active, failed_login_count, firm_id,
                           created_at)
       SELECT 'pm' || substr(f.code, 3) || '_' || n, '物业经理' || substr(f.code, 3) || '-' || n,
              (SELECT password_hash FROM "user" WHERE username = 'grid1'), 'property_manager', true, 0, f.id, now()
       FROM property_firm f CROSS JOIN generate_series(1, 3) n WHERE f.code LIKE 'GF%'""",
    """INSERT INTO "user" (username, display_name, password_hash, role, active, failed_login_count, community_id,
                           created_at)
       SELECT 'sv' || substr(m.code, 3), '社区督办' || substr(m.code, 3),
              (SELECT password_hash FROM "user" WHERE username = 'grid1'), 'supervisor', true, 0, m.id, now()
       FROM community m WHERE m.code LIKE 'GC%'""",
]
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


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<12} [{'#' * filled}{'.' * (width - filled)}] {done:>11,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def generate(total: int, open_cases: int, url: str = BENCH_PG, city: dict | None = None, batch: int = 200_000) -> float:
    """Reset the bench database, add the ``city`` (sizes, see :data:`CITY`; None: the demo organisation
    only) and insert ``total`` cases in batches. Returns seconds taken."""
    from app.core.timeutil import utcnow
    from app.extensions import db

    app = make_app(url)
    reset(app)
    started = time.perf_counter()
    now = utcnow()
    with app.app_context():
        if city:
            sizes = {**city, "grids": max(1, city["compounds"] // city.get("compounds_per_grid", 5))}
            with db.engine.begin() as connection:
                for number, statement in enumerate(CITY_SQL, 1):
                    connection.execute(text(statement), sizes)
                    _progress("city", number, len(CITY_SQL))
        for first in range(1, total + 1, batch):
            last = min(total, first + batch - 1)
            with db.engine.begin() as connection:
                connection.execute(
                    text(GENERATE_SQL), {"first": first, "last": last, "open": open_cases, "now": now, "total": total}
                )
            _progress("cases", last, total)
        with db.engine.begin() as connection:
            for number, statement in enumerate((STEPS_SQL, CARDS_SQL, FOLLOW_UPS_SQL), 1):
                connection.execute(text(statement))
                _progress("facts", number, 3)
        # a freshly loaded table has no visibility map yet: vacuum so index-only scans work as in production
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            tables = ("case", "fact_step", "fact_action", "follow_up", "compound", "user", "firm_contract")
            for number, table in enumerate(tables, 1):
                connection.execute(text(f'VACUUM ANALYZE "{table}"'))
                _progress("vacuum", number, len(tables))
    return time.perf_counter() - started


#: a realistic city (issue 12): about the size of a large district of a big Chinese city
CITY = {"streets": 20, "communities": 200, "compounds": 2000, "firms": 60, "workers_per_grid": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--city", action="store_true", help="add a realistic city (sizes below)")
    for name, value in CITY.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--database", default=BENCH_PG, help="SQLAlchemy URL of the bench database (emptied)")
    args = parser.parse_args()
    city = {name: getattr(args, name) for name in CITY} if args.city else None
    seconds = generate(args.cases, args.open, args.database, city)
    print(f"generated {args.cases} cases ({args.open} open) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
