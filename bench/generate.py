"""Generate a large case table quickly (PostgreSQL, set-based SQL) for the sweep, list and report benchmarks.

``python -m bench.generate --cases 1000000 --open 100000`` resets the bench database, loads the demo
organisation and inserts the cases. ``--city`` first adds a realistic city (issue 12; sizes configurable:
``--streets 20 --communities 200 --compounds 2000 --firms 60``, a grid per 5 compounds with 2 grid
workers each, 3 managers per firm, a supervisor per community, a contract and a party branch per
compound, one compound in ten having changed firm a year ago). Everything is deterministic (a fixed
seed: values derive from the row number), set-based, and the cases are written in batches with a
progress bar. The cases are spread over all compounds, each with its compound's street, community, grid
and firm under contract; the cases are: ``open`` of them in open states with deadlines spread over the
coming weeks (none due now), the rest closed over the past two years. Each case carries its reference
(``KSM-<day>-<number>``), its history (``case_event``: created, then a transition per step) and the facts
the services would have recorded (``fact_step`` rows for every step it passed through, yellow and red
cards for the late ones, a follow-up for every closed case), so the pages have realistic data to read.

Bulk load (issue 12: 10 M cases): the loaded tables' secondary indexes are dropped and rebuilt after the
load exactly as the models/migrations declare them (the schema is compared with the migrated one and the
run fails if it differs), batches commit asynchronously with foreign-key triggers off
(``session_replication_role = replica``; the rows reference existing rows by construction), on ``--jobs``
connections; ``max_wal_size`` and ``checkpoint_timeout`` are raised with ALTER SYSTEM for the load and
reset (ALTER SYSTEM RESET) at the end, also on failure — so do not run two generators at once on one
server: the first to finish resets the other's settings. The vacuum and the index builds after the load also run
on the ``--jobs`` connections, the B-trees in small sort memory (:data:`INDEX_MEMORY`). Measured with the
history and facts: 1 M in 111–115 s, 10 M in 1,151 s on 2 shared cores (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from functools import partial
from pathlib import Path

from sqlalchemy import text

from bench.common import BENCH_PG, make_app, reset

#: when case ``g`` was registered (``created``) and the instant ``g % 700`` days ago (``day0``)
WHEN_SQL = """SELECT :now - (g % 700) * interval '1 day' AS day0,
                     :now - (g % 700) * interval '1 day' - (g % 86400) * interval '1 second' AS created"""
#: a real reference: KSM-<local day of created>-<number>, unique per day by construction: the day is that of
#: ``day0`` or, when the seconds subtracted cross local midnight, the day before; the number
#: 2 * (g / 700) + that one-day shift + 1 tells apart the cases of one day (tests/test_bench_generate.py)
REF_SQL = """'KSM-' || to_char(t.created AT TIME ZONE :tz, 'YYYYMMDD') || '-'
       || to_char(2 * (g / 700) + ((t.day0 AT TIME ZONE :tz)::date - (t.created AT TIME ZONE :tz)::date) + 1,
                  'FM9990000')"""
GENERATE_SQL = f"""
WITH c AS (SELECT k.id, k.community_id, k.grid_id, m.street_id,
                  coalesce((SELECT fc.firm_id FROM firm_contract fc WHERE fc.compound_id = k.id AND fc.end_date IS NULL
                            ORDER BY fc.start_date DESC LIMIT 1), (SELECT min(id) FROM property_firm)) AS firm_id
           FROM compound k JOIN community m ON m.id = k.community_id ORDER BY k.id),
     arr AS (SELECT array_agg(id) ids, array_agg(community_id) comms, array_agg(grid_id) grids,
                    array_agg(street_id) streets, array_agg(firm_id) firms, count(*) n FROM c),
     cats AS (SELECT array_agg(id ORDER BY id) ids, count(*) n FROM category)
INSERT INTO "case" (id, ref, category_id, workflow, urgency, state, channel, description, street_id, community_id,
                    compound_id, signoff_token, grid_id, firm_id, needs_routing, reopen_count, resolved_on_site,
                    branch_approved, firm_dispatched_at, resolution, created_at, updated_at, state_entered_at,
                    closed_at, version, due_at, warn_at, red_at, escalation_level, step_limit_minutes,
                    step_working, resolve_by, case_working, case_overdue, shelved, shelve_review_notified,
                    next_check_at)
SELECT g,
       {REF_SQL},
       cats.ids[1 + (g % cats.n)], 'standard', CASE WHEN g % 10 = 0 THEN 'urgent' ELSE 'normal' END,
       CASE WHEN g <= :open THEN (ARRAY['grid_assigned','grid_handling','firm_dispatched','firm_processing',
                                        'awaiting_signoff'])[1 + ((g + g / arr.n) % 5)] ELSE 'closed' END,
       'window', '基准测试诉求 #' || g, arr.streets[1 + (g % arr.n)], arr.comms[1 + (g % arr.n)],
       arr.ids[1 + (g % arr.n)], md5(g::text), arr.grids[1 + (g % arr.n)], arr.firms[1 + (g % arr.n)],
       false, 0, false, false,
       CASE WHEN g > :open OR (g + g / arr.n) % 5 >= 2 THEN :now - (g % 700) * interval '1 day' END,
       CASE WHEN g > :open THEN 'resolved_satisfied' END,
       t.created,
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
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
     CROSS JOIN LATERAL ({WHEN_SQL}) t,
     arr, cats
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
  FROM "case" c WHERE c.id BETWEEN :first AND :last
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
INSERT INTO fact_step (id, case_id, state, party, entered_at, entered_trigger, due_at, left_at, left_trigger, kind,
                       timed, on_time, max_level, working_minutes, paused_minutes, resolution, handling_minutes,
                       case_on_time, sent_back, street_id, community_id, compound_id, grid_id, grid_worker_id,
                       firm_id, branch_id, category_id, urgency, intake_channel)
SELECT (t.id - 1) * 7 + s, t.id,
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
INSERT INTO fact_action (id, case_id, kind, at, state, party, actor_id, due_at, ended_at, street_id, community_id,
                         compound_id, grid_id, grid_worker_id, firm_id, branch_id, category_id, urgency,
                         intake_channel)
SELECT f.id * 2 + k.level - 2, f.case_id, k.kind,
       f.due_at + CASE k.kind WHEN 'yellow' THEN interval '1 minute' ELSE interval '50 minutes' END,
       f.state, f.party, NULL, f.due_at, NULL, f.street_id, f.community_id, f.compound_id, f.grid_id,
       f.grid_worker_id, f.firm_id, f.branch_id, f.category_id, f.urgency, f.intake_channel
FROM fact_step f CROSS JOIN (VALUES ('yellow', 2), ('red', 3)) AS k(kind, level)
WHERE f.id BETWEEN (:first - 1) * 7 + 1 AND :last * 7 AND f.max_level >= k.level
"""
# The case's history as the services write it: "created" (the clerk), then one "transition" per step entered,
# at the step's instant, by the party who fired it (route: the system; grid_accept and dispatch_to_firm: the grid
# worker; firm_accept and firm_complete: the property manager; signoff: the resident). The event of step s of
# case g has the id of its step fact, 7 (g - 1) + s. Payloads: the intake's (channel, category, urgency, possible
# duplicates) on "created", none on transitions (the services add the step's deadline there: a few dozen bytes).
EVENTS_SQL = """
INSERT INTO case_event (id, case_id, created_at, kind, actor_id, actor_role, actor_name, "trigger", from_state,
                        to_state, note, payload)
SELECT f.id, f.case_id, f.entered_at,
       CASE WHEN f.entered_trigger IS NULL THEN 'created' ELSE 'transition' END,
       NULL,
       CASE f.entered_trigger WHEN 'route' THEN 'system' WHEN 'grid_accept' THEN 'grid_worker'
            WHEN 'dispatch_to_firm' THEN 'grid_worker' WHEN 'firm_accept' THEN 'property_manager'
            WHEN 'firm_complete' THEN 'property_manager' WHEN 'signoff' THEN 'resident' ELSE 'clerk' END,
       CASE f.entered_trigger WHEN 'route' THEN 'system' WHEN 'grid_accept' THEN '网格员'
            WHEN 'dispatch_to_firm' THEN '网格员' WHEN 'firm_accept' THEN '物业经理'
            WHEN 'firm_complete' THEN '物业经理' WHEN 'signoff' THEN 'resident' ELSE '受理员' END,
       f.entered_trigger,
       CASE f.entered_trigger WHEN 'route' THEN 'registered' WHEN 'grid_accept' THEN 'grid_assigned'
            WHEN 'dispatch_to_firm' THEN 'grid_handling' WHEN 'firm_accept' THEN 'firm_dispatched'
            WHEN 'firm_complete' THEN 'firm_processing' WHEN 'signoff' THEN 'awaiting_signoff' END,
       CASE WHEN f.entered_trigger IS NOT NULL THEN f.state END,
       NULL,
       CASE WHEN f.entered_trigger IS NULL
            THEN json_build_object('channel', f.intake_channel, 'category', k.code, 'urgency', f.urgency,
                                   'possible_duplicates', json_build_array()) END
FROM fact_step f JOIN category k ON k.id = f.category_id
WHERE f.id BETWEEN (:first - 1) * 7 + 1 AND :last * 7
"""
FOLLOW_UPS_SQL = """
INSERT INTO follow_up (id, case_id, contacted, resolved, satisfaction, channel, valid, created_at, party, street_id,
                       community_id, compound_id, grid_id, grid_worker_id, firm_id, branch_id, category_id,
                       urgency, intake_channel)
SELECT c.id, c.id, c.id % 20 <> 0, c.id % 7 <> 0,
       CASE WHEN c.id % 10 < 7 THEN 'satisfied' WHEN c.id % 10 < 9 THEN 'basic' ELSE 'unsatisfied' END,
       'grid_worker', c.id % 97 <> 0, c.closed_at, 'firm', c.street_id, c.community_id, c.compound_id, c.grid_id,
       NULL, c.firm_id, c.branch_id, c.category_id, c.urgency, c.channel
FROM "case" c WHERE c.id BETWEEN :first AND :last AND c.state = 'closed'
"""


def _progress(label: str, done: int, total: int, started: float | None = None) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    took = f" {time.perf_counter() - started:7.1f} s" if started is not None else ""
    sys.stderr.write(f"\r{label:<12} [{'#' * filled}{'.' * (width - filled)}] {done:>11,}/{total:,}{took}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


#: the tables the load writes in bulk: their secondary indexes are dropped before and rebuilt after
LOADED_TABLES = ("case", "fact_step", "case_event", "fact_action", "follow_up")
#: per load session: no wait for the WAL flush at commit (a crash loses the last batches of a bench
#: database, nothing else), no foreign-key triggers (the generated rows reference existing rows by
#: construction), memory for the index builds
SESSION_SETTINGS = (
    "SET synchronous_commit = off",
    "SET session_replication_role = replica",
    "SET maintenance_work_mem = '2GB'",
    "SET work_mem = '64MB'",
)
#: the memory each index build sorts in: a B-tree sorts its rows in runs of this size and merges them. Small
#: runs sort inside the processor's caches: one index of 67 M step facts (``street_id, state, entered_at``,
#: one core) built in 100 s with 4 MB, 104 s with 16 MB, 114 s with 64 MB, 160 s with 256 MB, 238 s with
#: 2 GB and 314 s with 8 GB (one run in memory). Below 64 MB the server starts no parallel workers either
#: (it wants 32 MB each), so each of the ``--jobs`` connections keeps to one core. A GIN index gathers its
#: entries in this memory before it writes them, so the search index keeps the large setting.
INDEX_MEMORY = {"btree": "16MB", "gin": "2GB"}
#: server-wide, for the load only (fewer checkpoints, so fewer full-page images in the WAL); reset at the end
SERVER_SETTINGS = {"max_wal_size": "'8GB'", "checkpoint_timeout": "'30min'"}


def _set_server(engine, on: bool) -> None:
    """ALTER SYSTEM the :data:`SERVER_SETTINGS` (``on``) or reset them, and reload the configuration."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name, value in SERVER_SETTINGS.items():
            connection.execute(text(f"ALTER SYSTEM SET {name} = {value}" if on else f"ALTER SYSTEM RESET {name}"))
        connection.execute(text("SELECT pg_reload_conf()"))
    # the postmaster reloads asynchronously: a connection opened right away may still start with the old
    # values, so wait (up to 5 s) until a new one sees the ALTER SYSTEM settings come or go
    for _ in range(100):
        with engine.connect() as connection:
            from_alter_system = connection.execute(
                text(
                    """SELECT count(*) FROM pg_settings WHERE name = ANY(:names)
                       AND sourcefile LIKE '%postgresql.auto.conf'"""
                ),
                {"names": list(SERVER_SETTINGS)},
            ).scalar()
        if from_alter_system == (len(SERVER_SETTINGS) if on else 0):
            return
        time.sleep(0.05)


def _drop_secondary_indexes(connection) -> list[str]:
    """Drop the indexes of :data:`LOADED_TABLES` except the primary keys; return the statements that
    recreate them exactly (``pg_get_indexdef`` / ``pg_get_constraintdef``), in creation order."""
    rows = connection.execute(
        text(
            """SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid),
                      con.conname, pg_get_constraintdef(con.oid)
               FROM pg_index i LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
               WHERE i.indrelid = ANY(CAST(:tables AS regclass[])) AND NOT i.indisprimary
               ORDER BY i.indexrelid"""
        ),
        {"tables": [f'"{table}"' for table in LOADED_TABLES]},
    ).all()
    recreate = []
    declared = _declared_indexes(connection)
    for index, table, indexdef, constraint, constraintdef in rows:
        if constraint:
            connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"'))
            recreate.append(f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {constraintdef}')
        else:
            connection.execute(text(f"DROP INDEX {index}"))
            recreate.append(declared.get(index, indexdef))
    return recreate


def _declared_indexes(connection) -> dict[str, str]:
    """``CREATE INDEX`` as the models (and so the migrations) declare each index. Preferred over
    ``pg_get_indexdef``, whose deparsed text can store a different expression: ``state IN (…)`` comes back
    as ``= ANY ((ARRAY[…])::text[])`` and re-creating from that gives ``= ANY (ARRAY[(…)::text, …])``."""
    from sqlalchemy.schema import CreateIndex

    from app.extensions import Base

    found = {}
    for table in LOADED_TABLES:
        for index in Base.metadata.tables[table].indexes:
            found[index.name] = str(CreateIndex(index).compile(dialect=connection.dialect))
    return found


def schema_signature(connection) -> list[str]:
    """Every index and constraint of the public schema as PostgreSQL prints it (sorted), and whether each
    table is logged: two databases with the same signature have the same indexes and constraints."""
    rows = connection.execute(
        text(
            """SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
               UNION ALL
               SELECT con.conrelid::regclass::text || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
               FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = 'public'
               UNION ALL
               SELECT c.relname || ' persistence ' || c.relpersistence::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind = 'r'"""
        )
    ).scalars()
    return sorted(rows)


def _queue(engine, statements: list[str], jobs: int, label: str, started, took: dict | None = None) -> None:
    """Run ``statements`` (``VACUUM``, ``CREATE INDEX`` or ``ADD CONSTRAINT``, each about one table) on ``jobs``
    autocommit connections side by side, those of the largest tables first (each connection takes the next
    statement when it is done); an index is built in the memory of :data:`INDEX_MEMORY`. ``took`` receives
    each one's seconds by index, constraint or table name.

    Two builds side by side keep both cores busy: with one connection the server builds a large B-tree with
    parallel workers, but the merge of their sorts, the GIN search index and the many smaller indexes run on
    one core (measured at 10 M: see ``docs/benchmarks.md``)."""
    import threading

    with engine.connect() as connection:
        sizes = dict(
            connection.execute(text("SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r'")).all()
        )

    def table_of(statement: str) -> str:
        found = re.search(r'(?:ON|ALTER TABLE|VACUUM) (?:ONLY )?"?(\w+)"?', statement)
        return found.group(1) if found else ""

    queue = sorted(statements, key=lambda statement: -sizes.get(table_of(statement), 0))
    lock = threading.Lock()
    done: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for statement in SESSION_SETTINGS[2:]:
                connection.execute(text(statement))
            while True:
                with lock:
                    if not queue or errors:  # done, or another connection failed
                        return
                    statement = queue.pop(0)
                if statement.startswith(("CREATE", "ALTER")):
                    method = "gin" if re.search(r"\bUSING gin\b", statement, re.IGNORECASE) else "btree"
                    connection.execute(text(f"SET maintenance_work_mem = '{INDEX_MEMORY[method]}'"))
                began = time.perf_counter()
                connection.execute(text(statement))
                with lock:
                    if took is not None:
                        name = re.search(r'(?:INDEX|CONSTRAINT) "?(\w+)"?', statement)
                        took[name.group(1) if name else table_of(statement)] = round(time.perf_counter() - began, 1)
                    done.append(statement)
                    _progress(label, len(done), len(statements), started)

    _side_by_side([worker] * max(1, jobs), errors)


def _side_by_side(work: list, errors: list[BaseException] | None = None) -> None:
    """Run each callable of ``work`` in a thread of its own and wait for all; the first error (collected in
    ``errors``, which the callables may watch to stop early) is re-raised in the caller's thread."""
    import threading

    errors = [] if errors is None else errors

    def run(job) -> None:
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _load_batches(engine, batches: list[tuple[int, int]], params: dict, done: list, total: int, started) -> None:
    """Insert the cases of each ``(first, last)`` id range with their facts, a transaction per batch."""
    with engine.connect() as connection:
        for statement in SESSION_SETTINGS:
            connection.execute(text(statement))
        connection.commit()
        for first, last in batches:
            with connection.begin():
                bounds = {**params, "first": first, "last": last}
                for statement in (GENERATE_SQL, STEPS_SQL, EVENTS_SQL, CARDS_SQL, FOLLOW_UPS_SQL):
                    connection.execute(text(statement), bounds)
            done.append(last - first + 1)
            _progress("cases", sum(done), total, started)


def generate(
    total: int,
    open_cases: int,
    url: str = BENCH_PG,
    city: dict | None = None,
    batch: int = 100_000,
    jobs: int = 1,
    timings: dict | None = None,
    now=None,
) -> float:
    """Reset the bench database, add the ``city`` (sizes, see :data:`CITY`; None: the demo organisation
    only) and insert ``total`` cases with their facts in batches of ``batch`` cases on ``jobs``
    connections. Case ``g`` gets id ``g``, its step ``s`` the fact id ``7 (g - 1) + s`` (so the data do not
    depend on how the batches interleave). The secondary indexes of the loaded tables are dropped first and
    rebuilt as the migrations define them; the server's checkpoint settings are raised for the load and
    reset afterwards, also on failure. Everything derives from the row numbers and ``now`` (default: the
    current time), so the same ``now`` gives the same data. Returns seconds taken; ``timings`` receives the
    phases' seconds."""

    from app.core.timeutil import utcnow
    from app.extensions import db

    timings = {} if timings is None else timings
    app = make_app(url)
    reset(app)
    started = time.perf_counter()
    now = now or utcnow()
    with app.app_context():
        engine = db.engine
        tz = app.config["APP_TIMEZONE"]  # the references carry the local day, as the services write them
        if city:
            sizes = {**city, "grids": max(1, city["compounds"] // city.get("compounds_per_grid", 5))}
            with engine.begin() as connection:
                for number, statement in enumerate(CITY_SQL, 1):
                    connection.execute(text(statement), sizes)
                    _progress("city", number, len(CITY_SQL))
        _set_server(engine, True)
        try:
            with engine.begin() as connection:
                migrated = schema_signature(connection)  # as the migrations made it
                recreate = _drop_secondary_indexes(connection)
            phase = time.perf_counter()
            ranges = [(first, min(total, first + batch - 1)) for first in range(1, total + 1, batch)]
            params = {"open": open_cases, "now": now, "total": total, "tz": tz}
            done: list[int] = []
            _side_by_side(
                [partial(_load_batches, engine, ranges[j::jobs], params, done, total, started) for j in range(jobs)]
            )
            timings["load"] = time.perf_counter() - phase
            phase = time.perf_counter()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                for statement in SESSION_SETTINGS[2:]:
                    connection.execute(text(statement))
                # the batches committed asynchronously: until their commit records are flushed, VACUUM
                # cannot mark their pages all-visible (measured: relallvisible stayed 0)
                connection.execute(text("CHECKPOINT"))
                # ids were given explicitly: move the sequences past them
                for table in LOADED_TABLES:
                    connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                            f'(SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
                        )
                    )
                # a freshly loaded table has no visibility map yet: vacuum (before the indexes, so a single
                # pass over the heap) so index-only scans work as in production
                tables = (
                    "case",
                    "fact_step",
                    "case_event",
                    "fact_action",
                    "follow_up",
                    "compound",
                    "user",
                    "firm_contract",
                )
            # on the ``jobs`` connections side by side, as the indexes below (one VACUUM keeps one core busy)
            _queue(engine, [f'VACUUM "{table}"' for table in tables], jobs, "vacuum", started)
            timings["vacuum"] = time.perf_counter() - phase
            phase = time.perf_counter()
            _queue(engine, recreate, jobs, "indexes", started, timings.setdefault("each_index", {}))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                timings["indexes"] = time.perf_counter() - phase
                phase = time.perf_counter()
                for number, table in enumerate(tables, 1):
                    connection.execute(text(f'ANALYZE "{table}"'))
                    _progress("analyze", number, len(tables), started)
                timings["analyze"] = time.perf_counter() - phase
                # the first VACUUM sometimes leaves pages not all-visible (seen on small loads when other
                # sessions were busy on the server, also once in the test suite; cause not established, most
                # likely a transaction elsewhere holding the horizon back for a moment): vacuum those tables
                # again, a few times over up to 5 s
                for table in tables:
                    for attempt in range(20):
                        pages, visible = connection.execute(
                            text("SELECT relpages, relallvisible FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                            {"t": f'"{table}"'},
                        ).one()
                        if visible >= pages:
                            break
                        if attempt:
                            time.sleep(0.25)
                        connection.execute(text(f'VACUUM ANALYZE "{table}"'))
                        timings["vacuum_again"] = timings.get("vacuum_again", 0) + 1
                rebuilt = schema_signature(connection)
            if rebuilt != migrated:
                missing = sorted(set(migrated) - set(rebuilt))
                extra = sorted(set(rebuilt) - set(migrated))
                raise RuntimeError(f"schema differs from the migrations': missing {missing}, extra {extra}")
        finally:
            _set_server(engine, False)
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
    parser.add_argument("--batch", type=int, default=100_000, help="cases per transaction")
    parser.add_argument("--jobs", type=int, default=1, help="connections loading batches side by side")
    args = parser.parse_args()
    city = {name: getattr(args, name) for name in CITY} if args.city else None
    timings: dict = {}
    seconds = generate(args.cases, args.open, args.database, city, args.batch, args.jobs, timings)
    phases = ", ".join(f"{name} {value:.1f} s" for name, value in timings.items() if name != "each_index")
    print(f"generated {args.cases} cases ({args.open} open) in {seconds:.1f} s ({phases})")
    # for bench_city's tables: how this database was made
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    record = {
        "cases": args.cases,
        "open": args.open,
        "jobs": args.jobs,
        "batch": args.batch,
        "seconds": seconds,
        "timings": timings,
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out / f"generate-{args.database.rsplit('/', 1)[-1]}.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
