"""Intake throughput over HTTP (issue 12): our ``POST /api/v1/cases`` against the floor of our stack.

    python -m bench.bench_intake [--seconds 8] [--rounds 3] [--concurrency 8] [--workers 2] [--scaling]

Starts gunicorn (sync workers, by PID, loopback) for our app (``SCHEDULER=off``) and for
:mod:`bench.floor_app` on the database ``BENCH_INTAKE_DATABASE_URL`` (default ``ksm_bench_scale``;
emptied, migrated and seeded with the demo organisation), then runs, interleaved and for the same time
each, with the same client (threads, keep-alive ``http.client``, ``c`` concurrent requests):

- ``ours``: ``POST /api/v1/cases`` as clerk1 (bearer token), the same body every time;
- ``floor``: ``POST /floor`` — the case, its event, its notification in one transaction, no logic;
- ``one``: ``POST /one`` — one INSERT.

While ``ours`` runs, ``pg_stat_activity`` is sampled for sessions waiting on a lock; during ``ours`` and
``floor`` the CPU time of the server's workers and of PostgreSQL's processes is read from ``/proc`` and given
per request (``cpu_ms_per_request``: where the cost of a request is, not only how many there are). ``--scaling``
also measures ours with 1, 2 and 4 workers. Results: JSON on stdout and ``bench/out/intake.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("BENCH_INTAKE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/ksm_bench_scale")
BODY = json.dumps(
    {
        "category": "water_leak",
        "description": "3栋楼道水管漏水，地面积水",
        "compound": "X01",
        "resident_name": "陈先生",
        "resident_phone": "13812345678",
        "channel": "phone",
    }
).encode()


def _gunicorn(app: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        # no access log, as gunicorn.conf.py (the app writes its own JSON line per request) and the peer's
        # harness: "--access-logfile /dev/null" still formats every line, a few % of a request here
        *(["--access-logfile", "-"] if os.environ.get("BENCH_ACCESS_LOG") else []),
        "--log-level",
        "warning",
        app,
    ]
    log = open(ROOT / "bench" / "out" / f"gunicorn-{port}.log", "ab")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz" if "wsgi" in app else "/nothing")
            connection.getresponse().read()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"gunicorn {app} did not start; see bench/out/gunicorn-{port}.log")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process (Linux ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    head, _sep, rest = stat.read().rpartition(")")
                found.append((int(entry), int(rest.split()[1]), head.partition("(")[2]))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


def _cpu_of_tree(root: int) -> float:
    """User + system CPU seconds so far of ``root`` and its children, those that exited included: a parent's
    ``cutime``/``cstime`` hold the time of the children it reaped (gunicorn recycles workers after
    ``max_requests``; PostgreSQL's backends come and go), the live children are read one by one."""
    ticks = 0
    for pid, parent, _name in _processes():
        if pid == root or parent == root:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return ticks / os.sysconf("SC_CLK_TCK")


def _postmaster(engine) -> int | None:
    """The pid of the PostgreSQL server holding the bench database (the first line of its ``postmaster.pid``), or
    None when that file cannot be read (a server on another machine or of another user)."""
    with engine.connect() as connection:
        directory = connection.execute(text("SELECT current_setting('data_directory')")).scalar()
    try:
        with open(Path(directory) / "postmaster.pid") as pidfile:
            return int(pidfile.readline())
    except (OSError, ValueError):
        return None


def measured(
    server: subprocess.Popen,
    postmaster: int | None,
    port: int,
    path: str,
    headers: dict,
    seconds: float,
    concurrency: int,
) -> dict:
    """:func:`load`, with the CPU time per request spent by the server (gunicorn's master and workers: Python) and
    by the PostgreSQL server ``postmaster`` (all its processes: backends, WAL writer, checkpointer) during the load
    — where a request's cost is. Other work on the machine is not in the server's figure; in PostgreSQL's, work on
    the same server's other databases would be (the bench leaves none running)."""
    before = (_cpu_of_tree(server.pid), _cpu_of_tree(postmaster) if postmaster else 0.0)
    result = load(port, path, headers, seconds, concurrency)
    after = (_cpu_of_tree(server.pid), _cpu_of_tree(postmaster) if postmaster else 0.0)
    served = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {
        "workers": (after[0] - before[0]) * 1000 / served,
        "postgres": (after[1] - before[1]) * 1000 / served if postmaster else None,
    }
    return result


def load(port: int, path: str, headers: dict, seconds: float, concurrency: int, expect: int = 201) -> dict:
    """Send POSTs for ``seconds`` from ``concurrency`` threads; requests per second and latencies."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], []
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=BODY, headers={"Content-Type": "application/json", **headers})
                response = connection.getresponse()
                payload = response.read()
                if response.status != expect:
                    bad.append(f"{response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as error:
                bad.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) if ordered else None,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] if ordered else None,
    }


class LockSampler:
    """Count sessions of the bench database waiting on a lock, every 50 ms, while running."""

    def __init__(self, engine):
        self.engine = engine
        self.samples = 0
        self.waiting = 0
        self.examples: list[str] = []
        self._stop = threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        return self

    def _run(self):
        with self.engine.connect() as connection:
            while not self._stop.is_set():
                rows = connection.execute(
                    text(
                        "SELECT left(query, 120) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                ).all()
                connection.rollback()
                self.samples += 1
                self.waiting += len(rows)
                if rows and len(self.examples) < 5:
                    self.examples.append(rows[0][0])
                time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def prepare() -> str:
    """Empty the bench database, migrate, seed the demo organisation; a bearer token for clerk1."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from app.auth.models import User
    from app.auth.services import create_token
    from app.extensions import db
    from bench.common import make_app, reset

    app = make_app(URL)
    reset(app)
    with app.app_context():
        clerk = db.session.scalar(select(User).where(User.username == "clerk1"))
        secret = create_token(clerk, "bench")[1]
        db.session.commit()
    return secret


def in_process(samples: int = 100) -> dict:
    """One create in-process (test client, no HTTP): statements, time in the database, total time."""
    import collections

    from sqlalchemy import event, select

    from app import create_app
    from app.auth.models import User
    from app.auth.services import create_token
    from app.extensions import db
    from config import ProductionConfig

    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=URL, SECRET_KEY="bench-" + "x" * 40, LOG_FORMAT="")
    with app.app_context():
        clerk = db.session.scalar(select(User).where(User.username == "clerk1"))
        secret = create_token(clerk, "bench in-process")[1]
        db.session.commit()
        engine = db.engine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    for _ in range(10):
        client.post("/api/v1/cases", data=BODY, headers=headers)
    spent: dict[str, float] = collections.defaultdict(float)
    count = collections.Counter()

    def before(conn, cursor, statement, params, context, many):
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn, cursor, statement, params, context, many):
        key = " ".join(statement.split()[:3])[:50]
        spent[key] += time.perf_counter() - conn.info.pop("bench_t0")
        count[key] += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    totals = []
    try:
        for _ in range(samples):
            start = time.perf_counter()
            response = client.post("/api/v1/cases", data=BODY, headers=headers)
            totals.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 201, response.get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return {
        "samples": samples,
        "p50_ms": statistics.median(totals),
        "statements_per_create": sum(count.values()) / samples,
        "sql_ms_per_create": sum(spent.values()) * 1000 / samples,
        "by_statement": {k: {"n": count[k] / samples, "ms": spent[k] * 1000 / samples} for k in spent},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scaling", action="store_true")
    args = parser.parse_args()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    secret = prepare()
    results_in_process = in_process()
    print("in-process", round(results_in_process["p50_ms"], 1), "ms", file=sys.stderr, flush=True)
    env = {
        **os.environ,
        "DATABASE_URL": URL,
        "SCHEDULER": "off",
        "APP_ENV": "production",
        "SECRET_KEY": "bench-" + "x" * 40,
        "NOTIFY_CHANNELS": "log",
        "LOG_LEVEL": "WARNING",
    }
    auth = {"Authorization": f"Bearer {secret}", "Accept-Language": "en"}
    engine = create_engine(URL)
    postmaster = _postmaster(engine)
    results: dict = {
        "concurrency": args.concurrency,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": [],
        "in_process": results_in_process,
        "load_average_before": os.getloadavg(),
    }
    ours = _gunicorn("wsgi:app", 8701, args.workers, env)
    floor = _gunicorn("bench.floor_app:create_floor_app()", 8702, args.workers, env)
    try:
        load(8701, "/api/v1/cases", auth, 2, args.concurrency)  # warm-up: caches, connections
        load(8702, "/floor", {}, 2, args.concurrency)
        load(8702, "/one", {}, 1, args.concurrency)
        for number in range(args.rounds):
            with LockSampler(engine) as sampler:
                mine = measured(ours, postmaster, 8701, "/api/v1/cases", auth, args.seconds, args.concurrency)
            mine["lock_waits"] = sampler.waiting
            mine["lock_samples"] = sampler.samples
            mine["lock_examples"] = sampler.examples
            row = {
                "ours": mine,
                "floor": measured(floor, postmaster, 8702, "/floor", {}, args.seconds, args.concurrency),
            }
            row["one"] = load(8702, "/one", {}, args.seconds, args.concurrency)
            results["rounds"].append(row)
            print(number, {k: round(v["rps"], 1) for k, v in row.items()}, file=sys.stderr, flush=True)
            print(
                "   CPU ms per request", {k: row[k]["cpu_ms_per_request"] for k in ("ours", "floor")}, file=sys.stderr
            )
    finally:
        _stop(ours)
        _stop(floor)
    if args.scaling:
        results["scaling"] = {}
        for workers in (1, 2, 4):
            server = _gunicorn("wsgi:app", 8703, workers, env)
            try:
                load(8703, "/api/v1/cases", auth, 2, args.concurrency)
                results["scaling"][workers] = load(8703, "/api/v1/cases", auth, args.seconds, args.concurrency)
            finally:
                _stop(server)
            print("workers", workers, round(results["scaling"][workers]["rps"], 1), file=sys.stderr, flush=True)
    for name in ("ours", "floor", "one"):
        values = [row[name]["rps"] for row in results["rounds"]]
        results[name] = {"median_rps": statistics.median(values), "min_rps": min(values), "max_rps": max(values)}
    for name in ("ours", "floor"):
        medians = {}
        for part in ("workers", "postgres"):
            values = [row[name]["cpu_ms_per_request"][part] for row in results["rounds"]]
            medians[part] = statistics.median(values) if None not in values else None
        results[name]["cpu_ms_per_request"] = medians
    results["ours_vs_floor"] = results["ours"]["median_rps"] / results["floor"]["median_rps"]
    results["ours_vs_one"] = results["ours"]["median_rps"] / results["one"]["median_rps"]
    results["load_average_after"] = os.getloadavg()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "intake.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
