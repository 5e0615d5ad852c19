"""Set-based writes for batch jobs (the escalation sweep): many rows per statement, not one per row.

On PostgreSQL rows go in with ``COPY`` (psycopg's bulk-load API), ids drawn from the table's sequence
in one query when the caller needs them; elsewhere an executemany.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, text

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
    from psycopg.types.json import Json

    columns = list(rows[0])
    json_columns = {name for name in columns if table.c[name].type.__class__.__name__ == "JSON"}
    connection = db.session.connection().connection.driver_connection
    names = ", ".join(f'"{name}"' for name in columns)
    with connection.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns])
    return ids
