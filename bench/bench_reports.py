"""Supervisors' pages at a million cases: the overdue board, the dashboard, the firm ranking, the bulletin.

Each page is requested through the Flask test client as a signed-in user (session cookie, CSRF-protected
login, templates, charts' JSON), so a figure is the whole server-side cost of the page. The statements a
dashboard request runs are captured and the slowest are explained with ``EXPLAIN (ANALYZE, BUFFERS)``.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import event, text

from bench.common import BENCH_PG, PlannerSettings, make_app, settings_label, summary, timer

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
BIG_TABLES = ("case", "fact_step", "fact_action", "follow_up", "case_event")


def _client(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", data={"username": username, "password": "Demo@2026", "csrf_token": token})
    assert response.status_code == 302, f"login failed for {username}"
    return client


def _samples(client, path: str, count: int) -> list[float]:
    """``count`` timings (ms) of a page that must answer 200."""
    found = []
    for _ in range(count):
        with timer() as took:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
        found.append(took["ms"])
    return found


def _time(client, path: str, repeats: int) -> dict:
    _samples(client, path, 1)  # warm up
    return summary(_samples(client, path, repeats))


def _statements(app, client, path: str) -> list[tuple[str, object, float]]:
    """The SQL a request runs, with parameters and time."""
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    captured: list[tuple[str, object, float]] = []
    starts: list[float] = []
    settings = PlannerSettings()

    def before(_conn, _cursor, statement, parameters, _context, _many):
        starts.append(time.perf_counter())

    def after(_conn, _cursor, statement, parameters, _context, _many):
        ms = (time.perf_counter() - starts.pop()) * 1000
        if not settings.saw(statement, parameters):  # explained later under the settings it ran with
            captured.append((statement, (parameters, settings.current), ms))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return captured


def _explain(app, statement: str, parameters) -> str:
    """The plan of a captured statement; ``parameters`` is (its parameters, the planner settings in force)."""
    from app.extensions import db

    parameters, settings = parameters
    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if settings:  # local to this transaction, rolled back below
                cursor.execute(settings["statement"], settings["parameters"])
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            return settings_label(settings) + "\n".join(row[0] for row in cursor.fetchall())
        finally:
            connection.rollback()
            connection.close()


def _plans(app, client, path: str, top: int = 4) -> dict:
    captured = [s for s in _statements(app, client, path) if s[0].lstrip().upper().startswith("SELECT")]
    slowest = sorted(captured, key=lambda s: -s[2])[:top]
    plans = []
    seq_scans = set()
    for statement, parameters, _ms in captured:
        plan = _explain(app, statement, parameters)
        for table in BIG_TABLES:
            if re.search(rf'Seq Scan on "?{table}"?\b', plan):
                seq_scans.add(table)
    for statement, parameters, ms in slowest:
        plans.append({"sql": statement, "ms": ms, "plan": _explain(app, statement, parameters)})
    return {"statements": len(captured), "seq_scans_on_big_tables": sorted(seq_scans), "slowest": plans}


def run(app=None) -> dict:
    from app.extensions import db
    from app.reports import indicators, rating, rollup

    app = app or make_app(BENCH_PG, frozen=True)
    with app.app_context():
        current = indicators.current_month().label
        previous = indicators.previous_month(indicators.current_month()).label
        counts = {
            table: db.session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
            for table in ("case", "fact_step", "fact_action", "follow_up")
        }
        # the ranking's two cases: a month being rated on the fly, and a frozen one
        db.session.execute(text("DELETE FROM firm_rating"))
        db.session.execute(text("DELETE FROM rollup_month"))
        db.session.execute(text("DELETE FROM fact_rollup"))
        db.session.commit()
    import os

    result: dict = {
        "counts": counts,
        "month": current,
        "previous": previous,
        "pages": {},
        "load_before": os.getloadavg()[0],
    }
    street = _client(app, "street1")
    community = _client(app, "supervisor1")
    pages = result["pages"]
    # without a rollup every figure is counted from the facts
    pages["dashboard · street · this month · from the facts (no rollup)"] = _time(
        street, f"/reports/dashboard?period={current}", 3
    )
    with app.app_context():
        first, last = rollup.first_fact_month(), indicators.month_of(indicators.current_month().start)
        labels = []
        year, month = first
        while (year, month) <= last:
            labels.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        started = time.perf_counter()
        for label in labels:
            rollup.refresh(label)
            db.session.commit()
        result["rollup_all_ms"] = (time.perf_counter() - started) * 1000
        result["rollup_months"] = len(labels)
        refresh_samples = []
        for _ in range(3):
            with timer() as took:
                rollup.refresh(current)
                db.session.commit()
            refresh_samples.append(took["ms"])
        result["rollup_current"] = summary(refresh_samples)
        result["rollup_rows"] = db.session.execute(text("SELECT count(*) FROM fact_rollup")).scalar()
    pages["board · street"] = _time(street, "/board", 30)
    pages["board · community"] = _time(community, "/board", 30)
    pages["dashboard · street · this month"] = _time(street, f"/reports/dashboard?period={current}", 20)
    pages["dashboard · street · last month"] = _time(street, f"/reports/dashboard?period={previous}", 20)
    pages["dashboard · community · this month"] = _time(community, f"/reports/dashboard?period={current}", 20)
    pages["firm ranking · not yet rated (computed live)"] = _time(street, f"/reports/ratings?month={previous}", 20)
    with app.app_context():
        started = time.perf_counter()
        rating.compute_month(previous, None)
        db.session.commit()
        result["rating_compute_ms"] = (time.perf_counter() - started) * 1000
    pages["firm ranking · frozen"] = _time(street, f"/reports/ratings?month={previous}", 20)
    pages["bulletin · street · xlsx"] = _time(street, f"/reports/bulletin.xlsx?month={previous}", 5)
    pages["bulletin · street · page"] = _time(street, f"/reports/bulletin?month={previous}", 5)
    result["load_after"] = os.getloadavg()[0]
    result["plans"] = {
        "dashboard": _plans(app, street, f"/reports/dashboard?period={current}"),
        "board": _plans(app, street, "/board", top=2),
    }
    result["markdown"] = render(result)
    return result


def render(r: dict) -> str:
    counts = r["counts"]
    lines = [
        "## Supervisors' pages at a million cases (PostgreSQL)",
        "",
        f"Database: {counts['case']:,} cases with {counts['fact_step']:,} step facts, {counts['fact_action']:,} "
        f"cards and {counts['follow_up']:,} follow-ups (`bench/generate.py`). Each page through the Flask test "
        "client as a signed-in user (`street1`: the street, everything; `supervisor1`: one of three communities); "
        f"this month is {r['month']}, last month {r['previous']}. Times in ms. Load average of the machine "
        f"(2 cores) at the start and the end of the run: {r.get('load_before', 0):.1f} / {r.get('load_after', 0):.1f} "
        "— other work was running, so these are upper bounds.",
        "",
        "| page | runs | p50 | p95 | mean | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in r["pages"].items():
        lines.append(f"| {name} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['mean']:.1f} | {s['max']:.1f} |")
    lines += [
        "",
        f"Rating every firm for a month and freezing it (`rating compute`): {r['rating_compute_ms']:.0f} ms. "
        f"Building the monthly rollup of all {r['rollup_months']} months from the facts: "
        f"{r['rollup_all_ms'] / 1000:.1f} s ({r['rollup_rows']:,} rows); refreshing the running month (what the "
        f"scheduler does every five minutes): {r['rollup_current']['p50']:.0f} ms p50.",
        "",
        "Goals (issue): board and dashboard p95 under 300 ms, bulletin under 5 s.",
        "",
    ]
    for page, plans in r["plans"].items():
        lines.append(
            f"The {page} runs {plans['statements']} SELECT statements; sequential scans on the large tables: "
            + (", ".join(plans["seq_scans_on_big_tables"]) or "none")
            + f". The slowest {len(plans['slowest'])}:"
        )
        lines.append("")
        for item in plans["slowest"]:
            sql = re.sub(r"\s+", " ", item["sql"]).strip()
            lines += [
                f"`{sql[:300]}{'…' if len(sql) > 300 else ''}` ({item['ms']:.1f} ms)",
                "",
                "```",
                item["plan"],
                "```",
                "",
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import logging

    logging.disable(logging.INFO)
    out = run()
    print(out["markdown"])
    print(json.dumps({k: v for k, v in out.items() if k != "markdown"}, indent=1, default=str)[:2000])
