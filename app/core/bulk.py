"""Set-based writes for batch jobs (the escalation sweep): many rows per statement, not one per row.

On PostgreSQL rows go in with ``COPY`` (psycopg's bulk-load API), ids drawn from the table's sequence
in one query when the caller needs them; elsewhere an executemany.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import StatementError

from app.extensions import db


def insert_rows(model, rows: Sequence[dict], *, return_ids: bool = False) -> list[int]:
    """Insert ``rows`` (dicts of column values) into ``model``'s table; returns their ids if asked.

    All rows must have the same keys. JSON columns take Python objects.
    """
    if not rows:
        return []
    rows = [dict(row) for row in rows]
    if db.session.get_bind().dialect.name != "postgresql":
        if return_ids:
            return list(db.session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True), rows))
        db.session.execute(insert(model), rows)
        return []
    table = model.__table__
    ids: list[int] = []
    if return_ids:
        ids = list(
            db.session.scalars(
                text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
                {"table": f'"{table.name}"', "n": len(rows)},
            )
        )
        for row, new_id in zip(rows, ids, strict=True):
            row["id"] = new_id
    staged = db.session().info.get(_STAGED)
    if staged is not None:  # inside staging(): the rows go out with the next write_new statement
        staged.append((model, rows))
        return ids
    from psycopg.types.json import Json

    columns = list(rows[0])
    json_columns = {name for name in columns if table.c[name].type.__class__.__name__ == "JSON"}
    connection = db.session.connection().connection.driver_connection
    names = ", ".join(f'"{name}"' for name in columns)
    with connection.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns])
    return ids


# ------------------------------------------------------------------ new rows of a request in one statement

_STAGED = "ksm_bulk_staged"


@contextmanager
def staging() -> Iterator[None]:
    """While open (PostgreSQL), rows given to :func:`insert_rows` wait in the session and go out in the statement
    of the next :func:`write_new` — an intake's notifications with its case, in one round trip, though they are
    made with the notification service's set-based writes. Rows still waiting when it closes (``write_new`` fell
    back to the unit of work) are inserted then, after the caller's flush; an exception drops them — inside an
    outer staging, only those of the inner block. Elsewhere it changes nothing."""
    session = db.session()
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    if _STAGED in session.info:  # inside another: the outer one writes, but a failed inner block takes its rows back
        staged = session.info[_STAGED]
        mark = len(staged)
        try:
            yield
        except BaseException:
            del staged[mark:]
            raise
        return
    session.info[_STAGED] = []
    try:
        yield
    finally:
        left = session.info.pop(_STAGED, [])
    for model, rows in left:
        insert_rows(model, rows)


class IdPool:
    """Ids taken ahead from the tables' sequences (PostgreSQL), handed to new rows by :func:`write_new`."""

    def __init__(self, ids: dict[str, list[int]] | None = None):
        self.ids = {table: list(values) for table, values in (ids or {}).items()}

    @staticmethod
    def columns(counts: dict[str, int]) -> list[str]:
        """SQL expressions taking ``count`` values of each sequence (one array column per sequence, named as
        ``pg_get_serial_sequence`` gives it), to be selected with other values in one statement;
        :meth:`from_row` reads them back by table, in the same order."""
        return [
            f"ARRAY(SELECT nextval('{sequence}') FROM generate_series(1, {int(n)}))" for sequence, n in counts.items()
        ]

    @classmethod
    def from_row(cls, counts: dict[str, int], values) -> IdPool:
        return cls({table: list(value) for table, value in zip(counts, values, strict=True)})

    def take(self, table: str) -> int | None:
        free = self.ids.get(table)
        return free.pop(0) if free else None


_COLUMNS: dict[type, frozenset[str]] = {}


def new(cls, **values):
    """What ``cls(**values)`` gives, for a new row: the values go straight into the instance's dict.

    The declarative constructor sets each keyword through the attribute's instrumentation (events, history),
    which only an existing row being changed needs; an INSERT reads the dict (as the unit of work does for a
    pending instance). An intake builds six new instances with 120 values this way. Only column attributes are
    taken, and an unknown name raises ``TypeError`` as the constructor does."""
    keys = _COLUMNS.get(cls)
    if keys is None:
        keys = _COLUMNS[cls] = frozenset(prop.key for prop in inspect(cls).column_attrs)
    unknown = values.keys() - keys
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]!r} is an invalid keyword argument for {cls.__name__}")
    obj = inspect(cls).class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


_MISSING = object()
#: class → (attribute, column, what a new row lacking it gets) for each column, worked out once per class
_PLANS: dict[type, list[tuple[str, str, object]]] = {}


def _plan(cls) -> list[tuple[str, str, object]]:
    plan = _PLANS.get(cls)
    if plan is None:
        mapper = inspect(cls)
        plan = []
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if column is mapper.version_id_col:
                fill = 1  # what the unit of work's version counter gives a new row
            elif column.default is not None and column.default.is_scalar:
                fill = column.default.arg
            elif (
                column.default is None and column.server_default is None and column.nullable and not column.primary_key
            ):
                fill = None
            else:
                fill = _MISSING  # only the database could fill it
            plan.append((prop.key, column.name, fill))
        _PLANS[cls] = plan
    return plan


def _row_of(obj) -> dict | None:
    """The column values of a new instance for its INSERT (the instance gets each default it lacked), or None
    when a column would need the database to fill it (then the caller lets the unit of work flush)."""
    values = obj.__dict__
    row = {}
    for key, name, fill in _plan(type(obj)):
        if key in values:
            row[name] = values[key]
            continue
        if fill is _MISSING:
            return None
        setattr(obj, key, fill)
        row[name] = fill
    return row


#: the statement of each shape of writes (tables, rows, columns), built once per process, with the bind processor
#: of each of its parameters. It is sent with PostgreSQL's own ``$1, $2 …`` placeholders through psycopg's
#: ``RawCursor``: SQLAlchemy does not cache the compiled form of multi-row INSERTs inside CTEs (compiling one took
#: longer than the round trips it saves), and psycopg re-parses every statement of more than 50 parameters for its
#: ``%s`` placeholders on every execution (a tenth of an intake's time).
_STATEMENTS: dict[tuple, tuple[str, list]] = {}


def _statement(shape: tuple, dialect) -> tuple[str, list]:
    """``WITH w_case AS (INSERT …), w_case_event AS (INSERT …) … SELECT 1`` with one positional parameter per
    value, in the order of the tables, their rows and their columns; and the columns' bind processors."""
    key = (dialect.name, dialect.driver, shape)
    built = _STATEMENTS.get(key)
    if built is not None:
        return built
    parts, processors, n = [], [], 0
    for index, (table, count, columns) in enumerate(shape):
        column_processors = [table.c[column].type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
        tuples = []
        for _row in range(count):
            tuples.append("(" + ", ".join(f"${n + i + 1}" for i in range(len(columns))) + ")")
            processors.extend(column_processors)
            n += len(columns)
        listed = ", ".join(f'"{column}"' for column in columns)
        name = f"w_{table.name}" if all(other is not table for other, _n, _c in shape[:index]) else f"w{index}"
        parts.append(f'{name} AS (INSERT INTO "{table.name}" ({listed}) VALUES {", ".join(tuples)})')
    built = (f"WITH {', '.join(parts)} SELECT 1", processors)
    if len(_STATEMENTS) < 64:
        _STATEMENTS[key] = built
    return built


def _execute_raw(connection, statement: str, parameters: tuple) -> None:
    """Run ``statement`` (``$n`` placeholders) through SQLAlchemy — its events, its error wrapping — on a psycopg
    ``RawCursor``, which passes the statement to the server as it is.

    The factory is swapped on the connection for the duration of this one execution: any other cursor opened
    on it meanwhile would be a ``RawCursor`` too (and fail on ``%s`` placeholders) — no event listener of this
    application runs SQL on the connection inside an execution, which is what would do that."""
    from psycopg import RawCursor

    driver = connection.connection.driver_connection
    previous = driver.cursor_factory
    driver.cursor_factory = RawCursor
    try:
        connection.exec_driver_sql(statement, parameters)
    finally:
        driver.cursor_factory = previous


def write_new(models: Sequence[type], pool: IdPool) -> bool:
    """Write the session's new instances — all of them of ``models``, parents first — as one statement of
    data-modifying CTEs, then make them persistent as if flushed (PostgreSQL; ids from ``pool`` where an
    instance has none). Returns False, having written nothing, when the session holds anything else (other
    new, changed or deleted instances) or an id or a value is missing: the caller then flushes as usual.

    An intake writes its case, events, steps and receipt this way: one round trip instead of four INSERTs,
    and none of the unit of work's bookkeeping (a quarter of an intake's time). The rows waiting in
    :func:`staging` (the intake's notifications) go last in the same statement. The session's ``after_flush``
    listeners run as for a flush (the request's metrics count intakes there).
    """
    session = db.session()  # the request's Session (its events, not the scoped proxy)
    if session.get_bind().dialect.name != "postgresql" or session.dirty or session.deleted:
        return False
    new = list(session.new)
    if not new or any(type(obj) not in models for obj in new):
        return False
    for obj in new:
        if obj.id is None:
            obj.id = pool.take(type(obj).__table__.name)
            if obj.id is None:
                return False
    rows: dict[type, list[dict]] = {model: [] for model in models}
    for obj in sorted(new, key=lambda o: (models.index(type(o)), o.id)):
        row = _row_of(obj)
        if row is None:
            return False
        rows[type(obj)].append(row)
    batches = [(model.__table__, batch) for model, batch in rows.items() if batch]
    staged = session.info.get(_STAGED) or []
    batches += [(model.__table__, batch) for model, batch in staged]  # after the rows they refer to
    connection = session.connection()
    shape = tuple((table, len(batch), tuple(batch[0])) for table, batch in batches)
    statement, processors = _statement(shape, connection.dialect)
    flat = (
        row[column]
        for (_t, _n, columns), (_t, batch) in zip(shape, batches, strict=True)
        for row in batch
        for column in columns
    )
    try:
        parameters = tuple(
            value if process is None else process(value) for process, value in zip(processors, flat, strict=True)
        )
    except (TypeError, ValueError) as error:  # e.g. a naive datetime: as SQLAlchemy reports a bad value
        raise StatementError(f"({type(error).__name__}) {error}", statement, None, error) from error
    _execute_raw(connection, statement, parameters)
    del staged[:]
    session.dispatch.after_flush(session, None)
    # pending → persistent as a flush does it (SQLAlchemy's own step after its INSERTs; the version is pinned):
    # identity keys, committed state, and the transaction's record of new rows, so a rollback expunges them
    session._register_persistent({inspect(obj) for obj in new})
    return True
