"""Shared set-up for benchmarks: an application on a dedicated database, timing helpers, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from contextlib import contextmanager

from sqlalchemy import text

BENCH_PG = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/ksm_bench")


def make_app(url: str, *, frozen: bool = False):
    """An app (TestingConfig: fast password hashing, scheduler off) on ``url``; ``frozen``: its long-lived
    objects frozen out of the garbage collector's reach as a deployed app's are (``GC_FREEZE``), for the
    benchmarks that time pages (a process that makes many apps, like the test suite's, must not)."""
    from app import create_app
    from config import TestingConfig

    return create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=url,
        CLI_LOCALE="en",
        UPLOAD_DIR="/tmp/ksm-bench-uploads",
        GC_FREEZE=frozen,
    )


def reset(app) -> None:
    """Empty the database, run the migrations and load the demo organisation (no cases)."""
    from flask_migrate import upgrade

    from app.demo.seed import seed_demo
    from app.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
                # as initdb makes it (PostgreSQL 15), so the bench schema equals a fresh database's
                connection.execute(text("ALTER SCHEMA public OWNER TO pg_database_owner"))
                connection.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
                connection.execute(text("COMMENT ON SCHEMA public IS 'standard public schema'"))
        upgrade()
        seed_demo(with_cases=False)
        db.session.commit()


def summary(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": p95,
        "min": ordered[0],
        "max": ordered[-1],
    }


@contextmanager
def timer():
    start = time.perf_counter()
    box = {}
    yield box
    box["ms"] = (time.perf_counter() - start) * 1000


class _Pair:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


def python_speed() -> str:
    """How fast this machine runs Python now (best of 3): a loop of 10 million additions (the CPU) and one
    million small objects made (memory and allocation, what ORM rows and templates mostly do). The shared
    machine's speed varies from day to day by 2× or more, more for the second figure than for the first,
    and every page here is mostly Python: figures of different days compare only with these beside them."""

    def loop():
        total = 0
        for number in range(10_000_000):
            total += number

    def objects():
        return [_Pair(number, number) for number in range(1_000_000)]

    def best(work) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return min(times)

    return f"Python: 10 M additions {best(loop):.2f} s, 1 M objects {best(objects):.2f} s"


#: the server settings that move these figures, printed beside every run
SERVER_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "random_page_cost", "jit", "autovacuum")


def server_settings(url: str = BENCH_PG) -> str:
    """The bench server's values of :data:`SERVER_SETTINGS` (``shared_buffers 128MB, …``), each marked
    "(default)" when the server runs with PostgreSQL's own default."""
    from sqlalchemy import create_engine

    try:
        engine = create_engine(url.rsplit("/", 1)[0] + "/postgres")  # the server's, whichever bench database
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    """SELECT name, CASE WHEN unit = '8kB' THEN pg_size_pretty(setting::bigint * 8192)
                                         WHEN unit = 'kB' THEN pg_size_pretty(setting::bigint * 1024)
                                         ELSE setting END, setting = boot_val
                       FROM pg_settings WHERE name = ANY(:names)"""
                ),
                {"names": list(SERVER_SETTINGS)},
            ).all()
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - a description, never a reason to stop a benchmark
        return f"settings not read: {type(error).__name__}"
    found = {name: (value.replace(" ", ""), default) for name, value, default in rows}
    return ", ".join(
        f"{name} {found[name][0]}" + (" (default)" if found[name][1] else "")
        for name in SERVER_SETTINGS
        if name in found
    )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kb = int(next(line.split()[1] for line in handle if line.startswith("MemTotal")))
            memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pg = "psql not found"
    import sqlite3

    return (
        f"{cpu}, {os.cpu_count()} cores{memory} ({python_speed()}); {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {pg} (server on localhost: {server_settings()}); "
        f"SQLite {sqlite3.sqlite_version}"
    )


def planner_settings(statement: str, parameters) -> dict | None:
    """For a statement the app ran: None when it is not a change of the scan types the planner may use
    (``app.cases.queries._planned``); else the settings it put in force ({} when it restored them all), so a
    captured statement can be explained under the settings it ran with."""
    if "set_config('enable_" not in statement:
        return None
    values = dict(parameters) if isinstance(parameters, dict) else {}
    return {"statement": statement, "parameters": values} if "off" in values.values() else {}


class PlannerSettings:
    """Follows the planner settings in force while a request runs its statements (see
    :func:`planner_settings`): ``current`` is None or what the next captured statement must be explained
    under."""

    def __init__(self):
        self.current: dict | None = None

    def saw(self, statement: str, parameters) -> bool:
        """Whether ``statement`` was a change of the settings (then not a statement to explain)."""
        change = planner_settings(statement, parameters)
        if change is None:
            return False
        self.current = change or None
        return True


def settings_label(settings: dict | None) -> str:
    """How a plan was made, for the reader: "(planned without: bitmapscan)" or ""."""
    if not settings:
        return ""
    off = sorted(name for name, value in settings["parameters"].items() if value == "off")
    return f"(planned without: {', '.join(off)})\n"
