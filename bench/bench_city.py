"""The pages of each role on a generated city at 1 M and at 10 M cases, in one run (issue 12).

    python -m bench.generate --city --cases 1000000 --open 100000 --database …/ksm_bench_scale
    python -m bench.generate --city --cases 10000000 --open 1000000 --database …/ksm_bench_10m
    python -m bench.bench_city --plans --write      # both databases, tables into docs/benchmarks.md

Each database (``--databases 1M,10M``; URLs from ``BENCH_CITY_1M_URL`` / ``BENCH_CITY_10M_URL``, defaults
``ksm_bench_scale`` / ``ksm_bench_10m``) is measured the same way. First the scheduler's rollup job runs
for last month (read by the bulletin; in production the scheduler refreshes a month once it has ended),
then for every earlier month not rolled up yet (the scheduler's steady state: it rolls up a few past
months per run, newest first, so a running system has them all; timed once, reported apart) and, just
before the dashboard, for the running month (refreshed every few minutes in production),
timed. Then, through the Flask test client as the signed-in demo users (whole server-side cost of each
page; interleaved: for each page, three rounds of requests on each database in turn, so that a slow
minute of the shared machine falls on both sizes): the queue page of each role, a search, a case page, the
overdue board, the month's dashboard, the bulletin before and after the monthly rating run (p50 / p95 ms);
the sweep with nothing due and with 1,000 cases due
(:func:`bench.bench_sweep.interleaved`: each run on every database in turn, for the same reason; the
samples are kept in run order); the database's and the big tables' sizes. With ``--plans`` every ``SELECT`` a
page runs is explained (``EXPLAIN (ANALYZE, BUFFERS)``); sequential scans on the big tables are listed and
the slowest statement's plan kept. The figures of the last database are divided by those of the first
(10 M / 1 M) and a ratio over 1.5 is flagged. Raw results go to ``bench/out/city.json``; ``--write``
replaces the text between ``<!-- city:begin -->`` and ``<!-- city:end -->`` in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import time
from pathlib import Path

from sqlalchemy import text

from bench import bench_sweep
from bench.bench_reports import _client, _plans, _samples
from bench.common import machine, make_app, summary

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "bench" / "out"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
DATABASES = {
    "1M": os.environ.get("BENCH_CITY_1M_URL", PG + "ksm_bench_scale"),
    "10M": os.environ.get("BENCH_CITY_10M_URL", PG + "ksm_bench_10m"),
}
# backwards compatible: ``BENCH_CITY_DATABASE_URL`` names the 1 M database
if os.environ.get("BENCH_CITY_DATABASE_URL"):
    DATABASES["1M"] = os.environ["BENCH_CITY_DATABASE_URL"]
LIMIT = 1.5  # the issue: every figure at 10 M within 1.5x of the same figure at 1 M
TABLES = ("case", "fact_step", "fact_action", "follow_up", "case_event", "fact_rollup")

#: label -> (demo user, path); ``{ref}`` is a case of the demo compound X01 (a real reference, as the generator
#: writes them: KSM-20261125-0042), ``{part}`` the part of it a caller may read out ("1125-0042")
PAGES = {
    "queue: grid worker": ("grid1", "/cases"),
    "queue: property manager": ("firm1", "/cases"),
    "queue: branch secretary": ("branch1", "/cases"),
    "queue: community supervisor": ("supervisor1", "/cases"),
    "queue: street supervisor": ("street1", "/cases"),
    "queue: clerk": ("clerk1", "/cases"),
    "queue: administrator": ("admin", "/cases"),
    "queue: grid worker, state=firm_processing": ("grid1", "/cases?state=firm_processing"),
    "search (words)": ("street1", "/cases?q=基准测试"),
    "search (reference)": ("street1", "/cases?q={ref}"),
    "search (part of a reference)": ("street1", "/cases?q={part}"),
    "case page": ("supervisor1", "/cases/{ref}"),
    "overdue board": ("supervisor1", "/board"),
    "dashboard (this month)": ("street1", "/reports/dashboard"),
    # before the scheduler's monthly rating run (02:15 the day after the month closes) the bulletin rates the
    # firms on the fly; afterwards it reads the frozen ratings, as it does for the rest of the month
    "bulletin (last month, before the rating run)": ("street1", "/reports/bulletin"),
    "bulletin (last month)": ("street1", "/reports/bulletin"),
}


def prepare(url: str) -> tuple:
    """One database made ready as a running system leaves it (rollups, statistics) and its sizes; returns
    (app, results so far, the running month's label, last month's label)."""
    from app.extensions import db
    from app.reports import rollup
    from app.reports.models import FirmRating

    app = make_app(url, frozen=True)
    out: dict = {"url": url.rsplit("/", 1)[-1], "pages": {}}
    with app.app_context():
        row = db.session.execute(
            text("""SELECT count(*), count(*) FILTER (WHERE state <> 'closed') FROM "case" """)
        ).one()
        out["cases"], out["open"] = row
        out["facts"] = {
            table: db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("fact_step", "fact_action", "follow_up", "case_event")
        }
        out["ref"] = db.session.execute(
            text(
                """SELECT ref FROM "case" WHERE compound_id = (SELECT id FROM compound WHERE code = 'X01')
                   ORDER BY id DESC LIMIT 1"""
            )
        ).scalar()
        # the bulletin reads last month's rollup, as the scheduler leaves it once the month has ended
        from app.core.timeutil import utcnow
        from app.reports import indicators

        current = indicators.current_month(utcnow())
        last = indicators.previous_month(current).label
        started = time.perf_counter()
        out["rollup_refresh"] = {"month": last, "rows": rollup.refresh(last)}
        db.session.commit()
        out["rollup_refresh"]["seconds"] = time.perf_counter() - started
        # the steady state of a running system: the scheduler has rolled up every earlier month (a few per
        # run, newest first), so the dashboard's trend reads the rollup, not two years of facts
        started = time.perf_counter()
        backfilled = [label for label in rollup.due_months(limit=1000) if label not in (current.label, last)]
        for label in backfilled:
            rollup.refresh(label)
            db.session.commit()
        out["rollup_backfill"] = {"months": len(backfilled), "seconds": time.perf_counter() - started}
        print(f"  {out['url']}: {len(backfilled)} earlier months rolled up", flush=True)
        # a running server's autovacuum vacuums and analyzes the rewritten rollup within a minute (each
        # refresh replaces a month's rows: the old ones are dead); this machine's server may run without it
        # (CI configuration), so do here what it would
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE fact_rollup"))
        # sizes once the rollup holds every month, as in a running system
        out["database_bytes"] = db.session.execute(text("SELECT pg_database_size(current_database())")).scalar()
        out["table_bytes"] = {
            table: db.session.execute(text(f"SELECT pg_total_relation_size('\"{table}\"')")).scalar()
            for table in TABLES
        }
    with app.app_context():  # the bulletin's first figure is the one before the monthly rating run
        db.session.execute(FirmRating.__table__.delete().where(FirmRating.month == last))
        db.session.commit()
    return app, out, current.label, last


def measure_pages(prepared: dict, repeats: int, plans: bool, rounds: int = 3) -> None:
    """The pages of every database, interleaved: for each page, ``rounds`` rounds of ``repeats / rounds``
    requests on each database in turn, so a slow minute of a shared machine falls on both sizes."""
    from app.cases.actors import SYSTEM_ACTOR
    from app.extensions import db
    from app.reports import rating, rollup

    clients: dict = {}
    for label, (username, template) in PAGES.items():
        for name, (app, out, current, last) in prepared.items():
            with app.app_context():
                if label.startswith("dashboard"):  # the running month's rollup is read only while fresh
                    started = time.perf_counter()
                    out["rollup_refresh_running_month"] = {"rows": rollup.refresh(current)}
                    db.session.commit()
                    out["rollup_refresh_running_month"]["seconds"] = time.perf_counter() - started
                if label == "bulletin (last month)":  # the scheduler's monthly run has rated last month
                    started = time.perf_counter()
                    rating.compute_month(last, SYSTEM_ACTOR)
                    db.session.commit()
                    out["rating_run"] = {"month": last, "seconds": time.perf_counter() - started}
            client = clients.get((name, username)) or clients.setdefault((name, username), _client(app, username))
            _samples(client, _path(template, out["ref"]), 1)  # warm up
        samples: dict = {name: [] for name in prepared}
        for _round in range(rounds):
            for name, (_app, out, _current, _last) in prepared.items():
                path = _path(template, out["ref"])
                samples[name] += _samples(clients[(name, username)], path, max(1, repeats // rounds))
        for name, (app, out, _current, _last) in prepared.items():
            path = _path(template, out["ref"])
            figure = {**summary(samples[name]), "path": path, "user": username}
            if plans:
                found = _plans(app, clients[(name, username)], path, top=1)
                figure["statements"] = found["statements"]
                figure["seq_scans_on_big_tables"] = found["seq_scans_on_big_tables"]
                figure["slowest"] = found["slowest"][0] if found["slowest"] else None
            out["pages"][label] = figure
            print(f"  {out['url']}: {label}: p50 {figure['p50']:.1f} ms, p95 {figure['p95']:.1f} ms", flush=True)


def _path(template: str, ref: str) -> str:
    """The page's path for the case ``ref`` (see :data:`PAGES`)."""
    return template.format(ref=ref, part=ref.removeprefix("KSM-")[4:])


def figures(result: dict) -> dict[str, tuple[float, float]]:
    """label -> (p50, p95) in ms, pages and sweep alike."""
    found = {label: (page["p50"], page["p95"]) for label, page in result["pages"].items()}
    sweep = result["sweep"]
    found["sweep: nothing due"] = (sweep["nothing_due"]["p50"], sweep["nothing_due"]["p95"])
    found["sweep: 1,000 due, warnings"] = (sweep["due_warn"]["p50"], sweep["due_warn"]["p95"])
    found["sweep: 1,000 due, yellow cards"] = (sweep["due_yellow"]["p50"], sweep["due_yellow"]["p95"])
    return found


def _mb(value: float) -> str:
    return f"{value / 1024 / 1024:,.0f} MB"


def _ratio(big: float, small: float) -> str:
    if not small:
        return "—"
    ratio = big / small
    return f"**{ratio:.2f}** ⚠" if ratio > LIMIT else f"{ratio:.2f}"


def _plan_text(plan: str, lines: int = 40) -> str:
    kept = plan.splitlines()
    return "\n".join(kept[:lines] + (["  …"] if len(kept) > lines else []))


def render(run: dict) -> str:
    """The section of docs/benchmarks.md between the city markers."""
    results = run["results"]
    names = list(results)
    generation = run.get("generation", {})
    lines = [
        "<!-- city:begin -->",
        "## A generated city at 1 M and 10 M cases (issue 12)",
        "",
        f"Measured {run['date']} ({run['started']}–{run['finished']} UTC) in one run of `python -m bench.bench_city` "
        "(pages interleaved: for each page, rounds of requests on each database in turn) "
        f"on: {run['machine']}. The machine is shared (2 cores; load average at the start "
        f"{run['load_start']}, at the end {run['load_end']}).",
        "",
        "```sh",
    ]
    for name in names:
        gen = generation.get(name, {})
        lines.append(
            f"python -m bench.generate --city --cases {results[name]['cases']} --open {results[name]['open']}"
            + (f" --jobs {gen['jobs']}" if gen.get("jobs") else "")
            + f" --database …/{results[name]['url']}"
            + (f"   # {gen['seconds']:.0f} s" if gen.get("seconds") else "")
        )
    lines += [
        f"python -m bench.bench_city --repeats {run['repeats']} --due-repeats {run['due_repeats']} --plans --write",
        "```",
        "",
    ]
    lines += [
        "City: 20 streets, 200 communities, 400 grids, 2,000 compounds (+ the demo organisation), 60 firms with a "
        "contract per compound (one compound in ten changed firm a year ago), a party branch per compound, 800 "
        "grid workers, 180 property managers, 200 supervisors; cases over two years, a tenth open (deadlines "
        "over the coming month, none due), each with the step facts, cards and follow-up the services record.",
        "",
        "| database | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| cases (open) | " + " | ".join(f"{results[n]['cases']:,} ({results[n]['open']:,})" for n in names) + " |",
    ]
    for table in ("fact_step", "fact_action", "follow_up", "case_event"):
        lines.append(f"| `{table}` rows | " + " | ".join(f"{results[n]['facts'][table]:,}" for n in names) + " |")
    lines.append("| database size | " + " | ".join(f"**{_mb(results[n]['database_bytes'])}**" for n in names) + " |")
    for table in TABLES:
        lines.append(
            f"| `{table}` (with indexes) | " + " | ".join(_mb(results[n]["table_bytes"][table]) for n in names) + " |"
        )
    for name in names:
        gen = generation.get(name)
        if gen:
            phases = ", ".join(
                f"{phase} {value:.0f} s" for phase, value in gen.get("timings", {}).items() if phase != "each_index"
            )
            lines.append(
                f"| generation, {name} | "
                + " | ".join((f"{gen['seconds']:.0f} s ({phases})" if n == name else "") for n in names)
                + " |"
            )
    lines.append(
        "| rollup refresh of last month (the scheduler's job once a month ends) | "
        + " | ".join(f"{results[n]['rollup_refresh']['seconds']:.1f} s" for n in names)
        + " |"
    )
    if all("rollup_backfill" in results[n] for n in names):
        lines.append(
            "| earlier months rolled up before measuring (the scheduler's steady state; once) | "
            + " | ".join(
                f"{results[n]['rollup_backfill']['months']} months, {results[n]['rollup_backfill']['seconds']:.0f} s"
                for n in names
            )
            + " |"
        )
    lines.append(
        "| rollup refresh of the running month (the scheduler's job every few minutes) | "
        + " | ".join(f"{results[n]['rollup_refresh_running_month']['seconds']:.1f} s" for n in names)
        + " |"
    )
    if all("rating_run" in results[n] for n in names):
        lines.append(
            "| the monthly firm rating of last month (the scheduler's run, once a month) | "
            + " | ".join(f"{results[n]['rating_run']['seconds']:.1f} s" for n in names)
            + " |"
        )
    lines += [
        "",
        "Each page figure is the whole server-side cost of the page through the Flask test client as the signed-in "
        f"demo user (p50 / p95 ms, {run['repeats']} requests after one warm-up); the sweep is "
        "`bench_sweep.interleaved` (`sweep_batch()`; 1,000 cases made due inside a rolled-back transaction, "
        f"{run['due_repeats']} runs after one warm-up run, each run on every database in turn). "
        f"Ratio: the figure at {names[-1]} divided by the same figure at {names[0]}; "
        f"over {LIMIT} is marked ⚠.",
        "",
        "| figure | user | " + " | ".join(f"{n} p50 | {n} p95" for n in names) + " | ratio p50 | ratio p95 |",
        "|---|---|" + "---|---|" * len(names) + "---|---|",
    ]
    per_name = {n: figures(results[n]) for n in names}
    first, last = names[0], names[-1]
    for label in per_name[first]:
        user = results[first]["pages"].get(label, {}).get("user", "—")
        values = " | ".join(f"{per_name[n][label][0]:.1f} | {per_name[n][label][1]:.1f}" for n in names)
        lines.append(
            f"| {label} | {user} | {values} | {_ratio(per_name[last][label][0], per_name[first][label][0])} | "
            f"{_ratio(per_name[last][label][1], per_name[first][label][1])} |"
        )
    lines += [
        "",
        "The sweep's runs in order (ms; the warm-up run, not counted, in brackets):",
        "",
        "| sweep | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in (("due_warn", "1,000 warnings"), ("due_yellow", "1,000 yellow cards")):
        cells = []
        for n in names:
            sweep = results[n]["sweep"][key]
            warm_up = f"({sweep['warm_up_ms']:.0f}) " if "warm_up_ms" in sweep else ""
            cells.append(warm_up + ", ".join(f"{value:.0f}" for value in sweep.get("samples_ms", [])))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if any("statements" in page for page in results[last]["pages"].values()):
        lines += [
            "",
            "Plans (`--plans`: every `SELECT` a page runs is explained with `EXPLAIN (ANALYZE, BUFFERS)`; "
            '"sequential scans" lists the big tables — `case`, `fact_step`, `fact_action`, `follow_up`, '
            "`case_event` — read without an index):",
            "",
            "| page | "
            + " | ".join(f"{n} SELECTs | {n} seq scans on big tables | {n} slowest statement ms" for n in names)
            + " |",
            "|---|" + "---|---|---|" * len(names),
        ]
        for label in results[last]["pages"]:
            cells = []
            for n in names:
                page = results[n]["pages"][label]
                slowest = page.get("slowest") or {}
                cells.append(
                    f"{page.get('statements', '—')} | {', '.join(page.get('seq_scans_on_big_tables', [])) or 'none'}"
                    f" | {slowest.get('ms', 0):.1f}"
                )
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        sweep_plans = results[last]["sweep"]["plans"]
        lines += [
            "",
            f"The sweep's selection at {last}, nothing due and 1,000 due:",
            "",
            "```",
            _plan_text(sweep_plans["nothing_due"]),
            "```",
            "",
            "```",
            _plan_text(sweep_plans["due_1000"]),
            "```",
            "",
            f"The slowest statement of each page at {last} and its plan:",
            "",
        ]
        for label, page in results[last]["pages"].items():
            slowest = page.get("slowest")
            if not slowest:
                continue
            sql = " ".join(slowest["sql"].split())
            lines += [
                f"<details><summary>{label} ({slowest['ms']:.1f} ms)</summary>",
                "",
                "```sql",
                sql[:1500] + (" …" if len(sql) > 1500 else ""),
                "```",
                "",
                "```",
                _plan_text(slowest["plan"]),
                "```",
                "",
                "</details>",
                "",
            ]
    notes = run.get("notes")
    if notes:
        lines += ["", notes]
    lines.append("<!-- city:end -->")
    return "\n".join(lines)


def write_section(section: str, path: Path = DOC) -> None:
    """Replace the city section of ``path`` (or append it)."""
    content = path.read_text()
    pattern = re.compile(r"<!-- city:begin -->.*?<!-- city:end -->", re.S)
    if pattern.search(content):
        content = pattern.sub(lambda _match: section, content)
    else:
        content = content.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(content)


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="1M,10M", help="which of " + ", ".join(DATABASES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--due-repeats", type=int, default=3)
    parser.add_argument("--plans", action="store_true", help="also EXPLAIN ANALYZE every SELECT each page runs")
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    parser.add_argument("--render-only", action="store_true", help="re-render bench/out/city.json, measure nothing")
    parser.add_argument("--notes", type=Path, help="a Markdown file of findings to add below the tables")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the log channel would print every notification
    RAW.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        run = json.loads((RAW / "city.json").read_text())
    else:
        run = {
            "date": dt.date.today().isoformat(),
            "started": dt.datetime.now(dt.UTC).strftime("%H:%M"),
            "machine": machine(),
            "load_start": _load(),
            "repeats": args.repeats,
            "due_repeats": args.due_repeats,
            "results": {},
        }
        prepared = {}
        for name in args.databases.split(","):
            print(f"{name}: {DATABASES[name]}", flush=True)
            prepared[name] = prepare(DATABASES[name])
        sweeps = bench_sweep.interleaved(
            {name: app for name, (app, *_rest) in prepared.items()}, args.repeats, args.due_repeats
        )
        for name, (_app, out, _current, _last) in prepared.items():
            out["sweep"] = sweeps[name]
        measure_pages(prepared, args.repeats, args.plans)
        for name, (_app, out, _current, _last) in prepared.items():
            run["results"][name] = out
        run["finished"] = dt.datetime.now(dt.UTC).strftime("%H:%M")
        run["load_end"] = _load()
        generation = {}
        for name, url in DATABASES.items():
            found = RAW / f"generate-{url.rsplit('/', 1)[-1]}.json"
            if found.exists():
                generation[name] = json.loads(found.read_text())
        run["generation"] = generation
        (RAW / "city.json").write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str))
    if args.notes:
        run["notes"] = args.notes.read_text().strip()
    if args.write:
        write_section(render(run))
        print(f"wrote {DOC}")
    else:
        print(render(run))


if __name__ == "__main__":
    main()
