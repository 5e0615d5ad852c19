"""The pages of each role on a generated city (issue 12): ``python -m bench.bench_city [--repeats 20]``.

Run after ``python -m bench.generate --city --cases N --database URL`` on the same database
(``BENCH_CITY_DATABASE_URL``, default ``ksm_bench_scale``). Through the Flask test client as the signed-in
demo users (whole server-side cost of each page): the queue page of each role, a search, a case page,
the overdue board, the month's dashboard, the bulletin; the sweep with nothing due; the database size.
Prints JSON (p50 / p95 in ms).
"""

from __future__ import annotations

import argparse
import json
import os

from sqlalchemy import text

from bench.bench_reports import _client, _plans, _time
from bench.common import make_app, summary, timer

URL = os.environ.get("BENCH_CITY_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/ksm_bench_scale")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--plans", action="store_true", help="also EXPLAIN ANALYZE every SELECT each page runs")
    args = parser.parse_args()
    app = make_app(URL)
    from app.extensions import db
    from app.sla.services import sweep_batch

    out: dict = {}
    with app.app_context():
        out["cases"] = db.session.execute(text('SELECT count(*) FROM "case"')).scalar()
        out["database_size"] = db.session.execute(
            text("SELECT pg_size_pretty(pg_database_size(current_database()))")
        ).scalar()
        ref = db.session.execute(
            text(
                """SELECT ref FROM "case" WHERE compound_id = (SELECT id FROM compound WHERE code = 'X01')
                   ORDER BY id DESC LIMIT 1"""
            )
        ).scalar()  # fmt: skip
        samples = []
        for _ in range(args.repeats):
            with timer() as took:
                sweep_batch()
                db.session.rollback()
            samples.append(took["ms"])
        out["sweep, nothing due"] = summary(samples)
    pages = {
        "queue: grid worker": ("grid1", "/cases"),
        "queue: property manager": ("firm1", "/cases"),
        "queue: community supervisor": ("supervisor1", "/cases"),
        "queue: street supervisor": ("street1", "/cases"),
        "queue: clerk": ("clerk1", "/cases"),
        "queue: grid worker, state=firm_processing": ("grid1", "/cases?state=firm_processing"),
        "search (words)": ("street1", "/cases?q=基准测试"),
        "case page": ("supervisor1", f"/cases/{ref}"),
        "overdue board": ("supervisor1", "/board"),
        "dashboard (this month)": ("street1", "/reports/dashboard"),
        "bulletin (last month)": ("street1", "/reports/bulletin"),
    }
    clients: dict = {}
    for label, (username, path) in pages.items():
        client = clients.setdefault(username, _client(app, username))
        out[label] = _time(client, path, args.repeats)
        if args.plans:
            found = _plans(app, client, path, top=1)
            out[label]["statements"] = found["statements"]
            out[label]["seq_scans_on_big_tables"] = found["seq_scans_on_big_tables"]
            out[label]["slowest"] = found["slowest"][0] if found["slowest"] else None
    print(json.dumps(out, indent=2, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
