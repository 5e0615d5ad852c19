"""When each scheduled job last succeeded, for ``/healthz`` and ``/metrics`` (issue 12).

Scheduler processes are separate from the web processes, so the record is a row per job in the
database (``job_run``), written in the job's own transaction: a run that fails leaves the previous
success in place, and ``/healthz`` shows how old it is.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from app.core.timeutil import utcnow
from app.core.types import UTCDateTime
from app.extensions import db


class JobRun(db.Model):
    """The last successful run of one scheduled job."""

    __tablename__ = "job_run"
    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_success_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)


@dataclass
class Beat:
    job: str
    count: int = 0
    duration_ms: int = 0


@contextmanager
def timed(job: str):
    """Time the block; when it ends without an exception record the success (flushed, committed by the
    caller) and feed the metrics. Yields a :class:`Beat` whose ``count`` the block may set."""
    beat = Beat(job)
    started = time.perf_counter()
    yield beat
    beat.duration_ms = int((time.perf_counter() - started) * 1000)
    record(beat)


def record(beat: Beat) -> None:
    """Write the success of ``beat.job`` now."""
    values = {
        "job": beat.job,
        "last_success_at": utcnow(),
        "duration_ms": beat.duration_ms,
        "count": beat.count,
        "host": socket.gethostname()[:100],
        "pid": os.getpid(),
    }
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(JobRun).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[JobRun.job], set_={k: v for k, v in values.items() if k != "job"}
    )
    db.session.execute(statement)


def last_success(job: str) -> JobRun | None:
    return db.session.scalar(select(JobRun).where(JobRun.job == job))
