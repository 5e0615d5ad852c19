"""The intake benchmark's CPU accounting (``bench/bench_intake.py``): processes and their CPU time from ``/proc``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bench import bench_intake

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads Linux's /proc")

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_processes_lists_children_by_parent():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        mine = {pid: (parent, name) for pid, parent, name in bench_intake._processes()}
        assert mine[os.getpid()][0] == os.getppid()
        assert mine[child.pid][0] == os.getpid() and mine[child.pid][1].startswith("python")
    finally:
        child.kill()
        child.wait()


PARENT = f"""
import subprocess, sys, time
burn = {BURN!r}
live = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
subprocess.Popen([sys.executable, "-c", burn]).wait()
print("ready", flush=True)
time.sleep(30)
"""


def test_the_cpu_of_a_tree_keeps_the_time_of_children_that_exited():
    """gunicorn recycles its workers and PostgreSQL's backends come and go during a run: their time must not be
    lost (it was: a floor run once gave a negative CPU time per request). A parent that only sleeps, one child
    that burned 0.3 s of CPU and exited (reaped: in the parent's ``cutime``), one that burned 0.3 s and lives."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        spent = bench_intake._cpu_of_tree(parent.pid)
        while spent < 0.6 and time.monotonic() < deadline:  # the live child may still be burning
            time.sleep(0.05)
            spent = bench_intake._cpu_of_tree(parent.pid)
        assert 0.6 <= spent < 5, spent  # without the exited child it would stay near 0.35
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_the_postmaster_is_that_of_the_bench_database():
    from sqlalchemy import create_engine

    from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL

    if not IS_POSTGRES:
        pytest.skip("a PostgreSQL server")
    engine = create_engine(TEST_DATABASE_URL)
    try:
        pid = bench_intake._postmaster(engine)
        if pid is None:  # a server whose data directory this user cannot read: no PostgreSQL figure, said so
            pytest.skip("postmaster.pid not readable here")
        with engine.connect() as connection:
            backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            processes = {p: (parent, name) for p, parent, name in bench_intake._processes()}
    finally:
        engine.dispose()
    assert processes[pid][1].startswith("postgres")
    assert processes[backend][0] == pid  # our own connection's backend is its child
