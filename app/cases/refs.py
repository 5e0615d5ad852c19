"""Reference numbers on PostgreSQL: one SEQUENCE per local day, created on demand (issue 12).

The old per-day counter row (``ref_counter``, an upsert) was a lock every intake took about 3 ms
into its transaction and held until the commit, so intakes ran one at a time whatever the number
of workers. ``nextval`` takes no lock that outlives the call; the references stay readable and
per day (``KSM-20261201-0042``).

Creating the day's sequence is DDL: it runs once per day and process in its own short autocommit
connection (``CREATE SEQUENCE IF NOT EXISTS``; a concurrent creator's duplicate error is ignored),
starting after the day's ``ref_counter`` value so a deployment in the middle of a day continues
its numbering (and after the highest reference of that day already stored, for back-dated
intakes). Numbers are never given back: an intake that fails after taking one leaves a gap.
A sequence is one small relation (8 kB) per day: about 3 MB a year, so old ones are simply kept.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, literal_column, or_, select, text
from sqlalchemy.exc import DBAPIError

from app.core.bulk import IdPool
from app.extensions import db

log = logging.getLogger(__name__)
PREFIX = "ksm_ref_"
#: (database URL, sequence) pairs known to exist, so the check runs once per day and database
_known: set[tuple[str, str]] = set()


def sequence_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def _create(name: str, day: date) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        present = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar()
        if present:
            return
        counter = connection.execute(text("SELECT last FROM ref_counter WHERE day = :day"), {"day": day}).scalar()
        stored = connection.execute(
            text('SELECT max(CAST(substr(ref, 14) AS bigint)) FROM "case" WHERE ref LIKE :prefix'),
            {"prefix": f"KSM-{day:%Y%m%d}-%"},
        ).scalar()
        start = max(int(counter or 0), int(stored or 0)) + 1
        try:
            connection.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {name} START WITH {start}"))
        except DBAPIError as error:  # two processes created it at the same instant: fine
            log.info("sequence %s created concurrently: %s", name, error.orig)


#: engine → its URL as the caches' key (rendering the URL on every look-up cost more than the look-up); weak, so a
#: disposed engine is not kept alive
_urls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _url() -> str:
    engine = db.engine
    url = _urls.get(engine)
    if url is None:
        url = _urls[engine] = engine.url.render_as_string(hide_password=True)
    return url


def _day_sequence(day: date) -> str:
    """The name of ``day``'s sequence, created first if this process has not yet seen it."""
    name = sequence_name(day)
    if (_url(), name) not in _known:
        _create(name, day)
        _known.add((_url(), name))
    return name


def next_number(day: date) -> int:
    """The next number of ``day`` (1, 2, …; gaps possible) from its sequence, created if missing."""
    return db.session.execute(text(f"SELECT nextval('{_day_sequence(day)}')")).scalar_one()


#: (database URL, table) → the sequence behind the table's id (looked up once per process)
_sequences: dict[tuple[str, str], str] = {}


def _sequence_of(table: str) -> str:
    key = (_url(), table)
    name = _sequences.get(key)
    if name is None:
        name = _sequences[key] = db.session.execute(
            text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": f'"{table}"'}
        ).scalar_one()
    return name


#: the statement of each (day's sequence, checking a code, ids taken ahead), built once
_ALLOCATIONS: dict[tuple, object] = {}


def allocate(
    day: date | None,
    code: str | None = None,
    ids: dict[str, int] | None = None,
    also: Mapping[str, tuple[ColumnElement, dict[str, Any]]] | None = None,
    join: tuple | None = None,
) -> tuple[int, int | None, bool, IdPool, dict[str, Any]]:
    """A new case's id, given ``day`` that day's next reference number, whether the sign-off ``code`` (a fresh
    candidate) is already used by a case or a linked report, ``ids`` (table → how many) taken ahead for the
    rows the intake will write with the case, the values of ``also`` (name → a scalar expression built once
    by the caller, and its parameters) and, with ``join`` — ``(columns, condition, order, parameters)``, its
    parts built once by the caller, the first column an entity — the rows of that entity meeting the condition
    (under ``"joined"``: a list of ``columns`` tuples, empty when none) — one statement.

    Taking the ids before the INSERT lets an intake write the case, its events, steps and receipt in one
    statement. Like the numbers, an id taken by an intake that fails (or not needed) is not reused. The
    intake reads what it must know before writing (its possible duplicates, the resident's SMS standing, the
    grid's workers for the routing) in the same round trip. With ``join`` the allocation is a CTE joined to the
    rows: PostgreSQL evaluates it once (``nextval`` is volatile, so the CTE is never inlined).
    """
    ids = ids or {}
    also = also or {}
    day_sequence = _day_sequence(day) if day is not None else None
    key = (
        _url(),
        day_sequence,
        code is not None,
        tuple(ids.items()),
        tuple((n, id(e)) for n, (e, _p) in also.items()),
        id(join[0]) if join else None,
    )
    statement = _ALLOCATIONS.get(key)
    if statement is None:
        taken = literal_column("false")
        if code is not None:  # used by a case or a linked report
            cases, reports = db.metadata.tables["case"], db.metadata.tables["case_report"]
            taken = or_(
                exists().where(cases.c.signoff_token == bindparam("code")),
                exists().where(reports.c.signoff_token == bindparam("code")),
            )
        values = [
            literal_column(f"nextval('{_sequence_of('case')}')"),
            literal_column(f"nextval('{day_sequence}')" if day_sequence is not None else "NULL"),
            taken,
            *(literal_column(c) for c in IdPool.columns({_sequence_of(table): n for table, n in ids.items()})),
        ]
        values = [value.label(f"allocated_{i}") for i, value in enumerate(values)]
        statement = select(*values, *(e.label(n) for n, (e, _p) in also.items()))
        if join:
            entities, condition, order, _params = join
            allocation = statement.cte("allocation")
            statement = (
                select(*allocation.c, *entities)
                .select_from(allocation)
                .outerjoin(entities[0], condition)
                .order_by(*order)
            )
        if len(_ALLOCATIONS) > 256:  # one entry per day and shape: a long-running process drops the old days
            _ALLOCATIONS.clear()
        _ALLOCATIONS[key] = statement
    params: dict[str, Any] = {"code": code} if code is not None else {}
    for values in [values for _expression, values in also.values()] + ([join[3]] if join else []):
        for name, value in values.items():
            # one statement, one namespace: two reads giving one name two values would get one of them
            if name in params and params[name] != value:
                raise ValueError(f"the allocation's reads both bind {name!r}, to {params[name]!r} and {value!r}")
            params[name] = value
    rows = db.session.execute(statement, params).all()
    row = rows[0]
    extra = {name: row._mapping[name] for name in also}
    if join:
        start = 3 + len(ids) + len(also)
        extra["joined"] = [tuple(found[start:]) for found in rows if found[start] is not None]
    return row[0], row[1], bool(row[2]), IdPool.from_row(ids, row[3 : 3 + len(ids)]), extra
