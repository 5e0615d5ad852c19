"""The city generator (bench/generate.py, issue 12) on a scratch PostgreSQL database: the bulk load drops the
loaded tables' secondary indexes and rebuilds them, so the result must have exactly the schema the
migrations create, the data must not depend on how the batches interleave, and the server settings it
raises for the load must be reset afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL

pytestmark = [
    pytest.mark.own_app,
    pytest.mark.skipif(not IS_POSTGRES, reason="the generator is PostgreSQL-only (set-based SQL, ALTER SYSTEM)"),
]

SMALL_CITY = {"streets": 2, "communities": 4, "compounds": 10, "firms": 3, "workers_per_grid": 1}
DIGEST_SQL = {
    "case": """SELECT md5(string_agg(concat_ws('|', id, ref, state, street_id, community_id, compound_id, grid_id,
                      firm_id, created_at, closed_at, due_at, next_check_at), ',' ORDER BY id)) FROM "case" """,
    "fact_step": """SELECT md5(string_agg(concat_ws('|', id, case_id, state, entered_at, left_at, due_at, on_time,
                           max_level, working_minutes, firm_id), ',' ORDER BY id)) FROM fact_step""",
    "case_event": """SELECT md5(string_agg(concat_ws('|', id, case_id, created_at, kind, actor_role, "trigger",
                            from_state, to_state, payload::text), ',' ORDER BY id)) FROM case_event""",
    "fact_action": """SELECT md5(string_agg(concat_ws('|', id, case_id, kind, at, state), ',' ORDER BY id))
                      FROM fact_action""",
    "follow_up": """SELECT md5(string_agg(concat_ws('|', id, case_id, satisfaction, valid, created_at), ','
                           ORDER BY id)) FROM follow_up""",
}


@pytest.fixture(scope="module")
def scratch_url():
    """A database of its own next to the test database (the generator empties the one it is given)."""
    url = make_url(TEST_DATABASE_URL)
    name = f"{url.database}_generate"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _server_settings(engine) -> dict:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text("SELECT name, setting FROM pg_settings WHERE name IN ('max_wal_size', 'checkpoint_timeout')")
            ).all()
        )


NOW = datetime(2026, 6, 15, 2, 30, tzinfo=UTC)


def _generate(url, jobs: int, batch: int) -> dict:
    from bench.generate import generate, schema_signature

    timings: dict = {}
    generate(300, 40, url, SMALL_CITY, batch=batch, jobs=jobs, timings=timings, now=NOW)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            facts = {
                "digests": {table: connection.execute(text(sql)).scalar() for table, sql in DIGEST_SQL.items()},
                "schema": schema_signature(connection),
                "states": dict(connection.execute(text('SELECT state, count(*) FROM "case" GROUP BY state')).all()),
                "steps_per_case": connection.execute(
                    text("SELECT min(n), max(n) FROM (SELECT count(*) n FROM fact_step GROUP BY case_id) s")
                ).one(),
                "history_unlike_steps": connection.execute(
                    text(
                        """SELECT count(*) FROM fact_step f FULL JOIN case_event e ON e.id = f.id
                           WHERE e.id IS NULL OR f.id IS NULL OR e.case_id <> f.case_id OR e.created_at <> f.entered_at
                              OR e.kind <> CASE WHEN f.entered_trigger IS NULL THEN 'created' ELSE 'transition' END
                              OR e.to_state IS DISTINCT FROM CASE WHEN e.kind = 'transition' THEN f.state END"""
                    )
                ).scalar(),
                "created_payload": connection.execute(
                    text("""SELECT payload::text FROM case_event WHERE kind = 'created' ORDER BY id LIMIT 1""")
                ).scalar(),
                "closed_without_follow_up": connection.execute(
                    text(
                        """SELECT count(*) FROM "case" c WHERE c.state = 'closed'
                           AND NOT EXISTS (SELECT 1 FROM follow_up f WHERE f.case_id = c.id)"""
                    )
                ).scalar(),
                "cards": dict(connection.execute(text("SELECT kind, count(*) FROM fact_action GROUP BY kind")).all()),
                "all_visible": connection.execute(
                    text("""SELECT relallvisible = relpages FROM pg_class WHERE relname = 'fact_step'""")
                ).scalar(),
                "bad_refs": connection.execute(
                    text(
                        """SELECT count(*) FROM "case" WHERE ref !~ '^KSM-[0-9]{8}-[0-9]{4,7}$'
                           OR substr(ref, 5, 8) <> to_char(created_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')"""
                    )
                ).scalar(),
                "next_ids": connection.execute(
                    text("""SELECT nextval('case_id_seq'), nextval('fact_step_id_seq'), nextval('case_event_id_seq')""")
                ).one(),
                "timings": timings,
            }
    finally:
        engine.dispose()
    return facts


def test_generated_city_has_the_migrations_schema_and_the_same_data_however_it_is_batched(scratch_url):
    from app import create_app
    from bench.common import reset
    from bench.generate import schema_signature
    from config import TestingConfig

    engine = create_engine(scratch_url)
    settings_before = _server_settings(engine)

    first = _generate(scratch_url, jobs=1, batch=1000)
    second = _generate(scratch_url, jobs=2, batch=70)  # interleaved batches, a last partial one

    assert _server_settings(engine) == settings_before, "the load's server settings were not reset"
    assert first["digests"] == second["digests"]
    assert None not in first["digests"].values()
    # every open state and closed cases; each case has its steps (2 for grid_assigned … 7 for closed)
    assert set(first["states"]) == {
        "grid_assigned",
        "grid_handling",
        "firm_dispatched",
        "firm_processing",
        "awaiting_signoff",
        "closed",
    }
    assert first["states"]["closed"] == 260
    assert tuple(first["steps_per_case"]) == (2, 7)
    assert first["closed_without_follow_up"] == 0
    # the history: "created", then a transition into each step, at the step's instant
    assert first["history_unlike_steps"] == 0
    assert '"channel"' in first["created_payload"] and '"category"' in first["created_payload"]
    assert first["bad_refs"] == 0, "references as users type them: KSM-<local day of registration>-<number>"
    assert first["cards"]["yellow"] > first["cards"]["red"] > 0
    assert first["all_visible"], "VACUUM did not mark the loaded pages all-visible"
    assert (
        first["next_ids"][0] == 301 and first["next_ids"][1] > 300 * 6 and first["next_ids"][2] > 300 * 6
    )  # sequences moved past the ids
    assert {"load", "vacuum", "indexes", "analyze"} <= set(first["timings"])

    # the same indexes and constraints as a database the migrations alone made
    reset(create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=scratch_url, CLI_LOCALE="en"))
    with engine.connect() as connection:
        assert schema_signature(connection) == second["schema"]
    engine.dispose()


def test_generated_references_are_unique_per_day_at_ten_million_sizes(scratch_url):
    """The reference formula evaluated without inserting, over the first and the last million row numbers of
    a 10 M city: every reference unique (the cases of one day come from several row numbers, some shifted a
    day back across local midnight, and the numbers pass 9,999 past row 3.5 M: five digits, never cut), the
    day that of the registration instant in Beijing."""
    from bench.generate import REF_SQL, WHEN_SQL

    engine = create_engine(scratch_url)
    try:
        with engine.connect() as connection:
            total, distinct, wrong_day, longest = connection.execute(
                text(
                    f"""SELECT count(*), count(DISTINCT ref), count(*) FILTER (WHERE substr(ref, 5, 8)
                               <> to_char(created AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')), max(length(ref))
                        FROM (SELECT {REF_SQL} AS ref, t.created
                              FROM (SELECT generate_series(1, 1000000) UNION ALL
                                    SELECT generate_series(9000001, 10000000)) AS n(g)
                              CROSS JOIN LATERAL ({WHEN_SQL}) t) r"""
                ),
                {"now": NOW, "tz": "Asia/Shanghai"},
            ).one()
    finally:
        engine.dispose()
    assert total == 2_000_000
    assert distinct == total
    assert wrong_day == 0
    assert longest == len("KSM-20261201-28572")
