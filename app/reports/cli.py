"""``flask bulletin`` and ``flask rating compute``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Blueprint, current_app, g
from flask.cli import AppGroup
from flask_babel import gettext as _

from app.core.errors import DomainError
from app.core.timeutil import to_local
from app.extensions import db

bp = Blueprint("reports_cli", __name__, cli_group=None)


@bp.cli.command("bulletin")
@click.option("--month", required=True, metavar="YYYY-MM", help="The reporting month.")
@click.option("--scope", default="", metavar="street:CODE|community:CODE", help="Limit to a street or a community.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="FILE.xlsx for the workbook, FILE.csv for the summary table.",
)
def bulletin_command(month, scope, out):
    """Write the monthly bulletin: figures per community and firm, overdue cases, cards, firm ratings."""
    from app.core.replica import reading_from_replica
    from app.reports import bulletin

    path = Path(out)
    if path.suffix.lower() not in (".xlsx", ".csv"):
        raise click.BadParameter(_("The output file must end in .xlsx or .csv."), param_hint="--out")
    try:
        viewer = bulletin.viewer_for_scope(scope)
        with (
            reading_from_replica(),  # the figures from the read replica when configured (issue 12)
            click.progressbar(length=2, label=_("Computing the figures"), file=sys.stderr) as bar,
        ):
            data = bulletin.build(viewer, month)
            bar.update(1)
            body = bulletin.to_xlsx(data) if path.suffix.lower() == ".xlsx" else bulletin.to_csv(data).encode("utf-8")
            bar.update(1)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    try:
        path.write_bytes(body)
        from app.audit.services import record_audit

        record_audit(None, "data.exported", target=data.title, details={"format": path.suffix[1:], "via": "cli"})
        db.session.commit()
    except OSError as error:
        raise click.ClickException(
            _("Cannot write %(path)s: %(error)s", path=str(path), error=error.strerror)
        ) from None
    click.echo(
        _(
            "%(path)s: %(month)s, %(scope)s — %(communities)d communities, %(firms)d firms, %(overdue)d overdue "
            "cases, %(cards)d cards",
            path=str(path),
            month=data.period.label,
            scope=data.scope,
            communities=len(data.communities.rows),
            firms=len(data.firms.rows),
            overdue=data.overdue_total,
            cards=data.cards_total,
        )
    )


rating_group = AppGroup("rating", help="Property-firm credit ratings.")


@rating_group.command("compute")
@click.option("--month", required=True, metavar="YYYY-MM")
@click.option("--recompute", is_flag=True, help="Replace a frozen month (needs --reason; logged).")
@click.option("--reason", default="", help="Why a frozen month is recomputed.")
def rating_compute(month, recompute, reason):
    """Rate every property firm for a month that is over, and freeze the result."""
    from app.reports import rating

    try:
        ratings, computed = rating.compute_month(month, None, recompute=recompute, reason=reason)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    as_of = g.pop("rating_figures_as_of", None) if computed else None
    if as_of is not None:
        when = to_local(as_of).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(_("Figures as of %(time)s (served from the read replica).", time=when))
    elif computed and current_app.config.get("REPLICA_DATABASE_URL"):
        click.echo(_("The read replica was behind or unreachable: the figures were read on the primary."))
    if not computed:
        click.echo(
            _(
                "%(month)s was already rated; the frozen rating is shown (use --recompute --reason to replace it).",
                month=month,
            )
        )
    for entry in sorted(ratings, key=lambda r: (r.score is None, -(r.score or 0))):
        restricted = (
            _("restricted until %(day)s", day=entry.restricted_until.isoformat()) if entry.restricted_until else ""
        )
        score = f"{entry.score:.1f}" if entry.score is not None else "—"
        click.echo(f"{entry.firm.code}\t{entry.firm.name}\t{score}\t{entry.grade or _('not rated')}\t{restricted}")


bp.cli.add_command(rating_group)

reports_group = AppGroup("reports", help="The figures' monthly rollup.")


@reports_group.command("refresh")
@click.option("--month", "months", multiple=True, metavar="YYYY-MM", help="A month to refresh (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every month from the first fact to now.")
def reports_refresh(months, everything):
    """Rebuild the monthly rollup from the facts (the scheduler does it every five minutes)."""
    from app.core.timeutil import utcnow
    from app.reports import indicators, rollup

    now = utcnow()
    if everything:
        first = rollup.first_fact_month()
        labels = []
        if first is not None:
            year, month = first
            last = indicators.month_of(now)
            while (year, month) <= last:
                labels.append(f"{year:04d}-{month:02d}")
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:
        labels = list(months) or rollup.due_months(now)
    written = 0
    try:
        with click.progressbar(labels, label=_("Refreshing"), file=sys.stderr) as bar:
            for label in bar:
                written += rollup.refresh(label, now)
                db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    click.echo(_("%(months)d months refreshed, %(rows)d rows.", months=len(labels), rows=written))


bp.cli.add_command(reports_group)
