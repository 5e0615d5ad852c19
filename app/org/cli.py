"""``flask org-import FILE [--dry-run]``."""

from __future__ import annotations

import sys

import click
from flask import Blueprint
from flask_babel import gettext as _

from app.extensions import db
from app.org.importer import KIND_LABELS, ImportFailed, import_rows, read_table

bp = Blueprint("org_cli", __name__, cli_group=None)


@bp.cli.command("org-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and report what would change; write nothing.")
def org_import_command(file, dry_run):
    """Import streets, communities, grids, compounds, buildings, firms and contracts from CSV/XLSX.

    Nothing is written when any row is wrong; every error names its row number.
    """
    try:
        rows = read_table(file)
        with click.progressbar(length=len(rows), label=_("Importing"), show_pos=True, file=sys.stderr) as bar:
            report = import_rows(rows, progress=bar.update)
    except ImportFailed as failed:
        db.session.rollback()
        for row, message in failed.errors:
            prefix = _("row %(row)d", row=row) if row else _("file")
            click.echo(f"{prefix}: {message}", err=True)
        raise click.ClickException(
            _("%(count)d error(s); nothing was imported. Fix the rows above and run again.", count=len(failed.errors))
        ) from None
    summary = ", ".join(f"{KIND_LABELS[k]} +{v}" for k, v in sorted(report.created.items())) or "-"
    if dry_run:
        db.session.rollback()
        click.echo(
            _(
                "Dry run: %(rows)d rows are valid; would create: %(summary)s. Nothing was written.",
                rows=report.rows,
                summary=summary,
            )
        )
    else:
        db.session.commit()
        click.echo(_("Imported %(rows)d rows; created: %(summary)s.", rows=report.rows, summary=summary))
