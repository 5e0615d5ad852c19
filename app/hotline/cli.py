"""``flask import-12345 FILE [--dry-run]`` and ``flask export-12345 --from … --to … --out FILE``."""

from __future__ import annotations

import sys
from datetime import date

import click
from flask import Blueprint
from flask_babel import gettext as _

from app.extensions import db

bp = Blueprint("hotline_cli", __name__, cli_group=None)


def echo_report(report, dry_run: bool) -> None:
    for item in report.errors:
        click.echo(
            _("row %(row)d (%(no)s): %(reason)s", row=item.row, no=item.order_no or "-", reason=item.reason), err=True
        )
    for item in report.skipped:
        click.echo(_("row %(row)d (%(no)s): %(reason)s", row=item.row, no=item.order_no, reason=item.reason))
    text = _(
        "%(rows)d work orders: %(created)d new cases, %(skipped)d already imported, %(errors)d not placed.",
        rows=report.rows,
        created=len(report.created),
        skipped=len(report.skipped),
        errors=len(report.errors),
    )
    if dry_run:
        text += " " + _("Dry run: nothing was written.")
    click.echo(text)


@bp.cli.command("import-12345")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
def import_12345_command(file, dry_run):
    """Register the work orders of a 12345 export (XLSX, XLS or CSV in UTF-8/GB18030) as cases.

    Rows already imported are skipped; rows that cannot be placed are listed with their row numbers.
    """
    from app.cases.actors import SYSTEM_ACTOR
    from app.hotline.importer import HotlineFileError, find_header, import_work_orders, read_rows

    with open(file, "rb") as handle:
        data = handle.read()
    try:
        rows = read_rows(data, file)
        header, _columns = find_header(rows)
        with click.progressbar(length=max(len(rows) - header - 1, 0), label=_("Importing"), file=sys.stderr) as bar:
            report = import_work_orders(data, file, SYSTEM_ACTOR, progress=bar.update)
    except HotlineFileError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    echo_report(report, dry_run)


@bp.cli.command("export-12345")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (YYYY-MM-DD).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True), help="XLSX file to write.")
def export_12345_command(start, end, out):
    """Write the 12345 return sheet for the work orders registered from --from to --to."""
    from app.core.replica import reading_from_replica
    from app.core.timeutil import to_local
    from app.hotline.export import write_return_sheet

    try:
        with reading_from_replica() as as_of:  # a large export: from the read replica when configured (issue 12)
            data, count = write_return_sheet(
                None, date.fromordinal(start.toordinal()), date.fromordinal(end.toordinal())
            )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    with open(out, "wb") as handle:
        handle.write(data)
    click.echo(_("%(count)d work orders written to %(file)s.", count=count, file=out))
    if as_of is not None:
        when = to_local(as_of).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(_("Figures as of %(time)s (served from the read replica).", time=when))
