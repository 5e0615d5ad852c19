"""``flask sweep``, ``flask scheduler`` and ``flask calendar …``."""

from __future__ import annotations

import sys

import click
from flask import Blueprint, current_app
from flask.cli import AppGroup
from flask_babel import gettext as _

from app.core.params import MAX_YEAR, MIN_YEAR, reasonable_instant
from app.core.timeutil import app_tz, parse_instant
from app.extensions import db

bp = Blueprint("sla_cli", __name__, cli_group=None)


def _instant(value: str | None):
    if not value:
        return None
    try:
        instant = parse_instant(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if not reasonable_instant(instant):
        raise click.BadParameter(f"{value!r} is outside the years {MIN_YEAR}–{MAX_YEAR}")
    return instant


@bp.cli.command("sweep")
@click.option("--now", "now_text", metavar="ISO-8601", help="Sweep as if at this instant (default: now).")
@click.option(
    "--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="Cases per transaction."
)
def sweep_command(now_text, batch):
    """Run one escalation sweep: warnings, yellow and red cards, auto-close of unanswered sign-offs."""
    from app.notify.services import deliver_pending
    from app.sla.services import run_sweep

    now = _instant(now_text)
    from app.notify.resident import queue_signoff_reminders

    result = run_sweep(now, batch=batch)
    queue_signoff_reminders(now)
    deliver_pending(now)
    db.session.commit()
    click.echo(
        _(
            "warned %(warned)d, escalated %(yellow)d (yellow card) and %(red)d (red card), auto-closed "
            "%(closed)d, over the whole-case limit %(overdue)d",
            warned=result.warned,
            yellow=result.yellow,
            red=result.red,
            closed=result.auto_closed,
            overdue=result.case_overdue,
        )
    )
    if result.errors:
        raise click.ClickException("; ".join(result.errors))


@bp.cli.command("scheduler")
def scheduler_command():
    """Run the escalation scheduler in the foreground (production: one or two such processes)."""
    from app.sla.scheduler import run_standalone_scheduler

    run_standalone_scheduler(current_app._get_current_object())


calendar_group = AppGroup("calendar", help="Working calendar: deadlines and holiday schedules.")
bp.cli.add_command(calendar_group)


def _warn_missing(calendar) -> None:
    for year in sorted(calendar.missing_years):
        click.echo(
            _(
                "warning: no published holiday schedule for %(year)d; counted Monday–Friday as working days. "
                "Add the official schedule as overrides and confirm the year.",
                year=year,
            ),
            err=True,
        )


@calendar_group.command("due")
@click.argument("start")
@click.argument("limit")
def calendar_due(start, limit):
    """Print the deadline of LIMIT (e.g. 3wd, 2wh, 24h, 30m) started at the ISO-8601 instant START."""
    from app.sla.calendar import CalendarError, Limit
    from app.sla.services import load_calendar

    begin = _instant(start)
    try:
        parsed = Limit.parse(limit)
    except CalendarError as error:
        raise click.BadParameter(str(error), param_hint="LIMIT") from None
    calendar = load_calendar(fresh=True)
    try:
        due = calendar.deadline(begin, parsed)
    except (CalendarError, OverflowError) as error:
        raise click.BadParameter(f"no deadline can be computed: {error}", param_hint="LIMIT") from None
    click.echo(due.astimezone(app_tz()).isoformat())
    _warn_missing(calendar)


@calendar_group.command("show")
@click.argument("year", type=click.IntRange(MIN_YEAR, 2100))
def calendar_show(year):
    """List YEAR's non-working weekdays and working weekend days."""
    from app.sla.services import load_calendar

    calendar = load_calendar(fresh=True)
    off, on = calendar.non_standard_days(year)
    weekdays = "一二三四五六日"
    click.echo(_("Non-working weekdays in %(year)d (%(count)d):", year=year, count=len(off)))
    for day in off:
        click.echo(f"  {day.isoformat()} 周{weekdays[day.weekday()]}")
    click.echo(_("Working weekend days in %(year)d (%(count)d):", year=year, count=len(on)))
    for day in on:
        click.echo(f"  {day.isoformat()} 周{weekdays[day.weekday()]}")
    if not calendar.year_known(year):
        _warn_missing(calendar)
        if year not in calendar.missing_years:
            click.echo(_("warning: no published holiday schedule for %(year)d.", year=year), err=True)
    sys.stdout.flush()


@calendar_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def calendar_import(path):
    """Import a year's holiday schedule (holiday-cn JSON, or CSV: date,off|work,name), confirm the year
    and re-time the open cases whose deadlines it moves."""
    from app.core.errors import ValidationError
    from app.sla.retime import import_schedule

    with open(path, "rb") as handle:
        data = handle.read()
    try:
        result = import_schedule(data, path.rsplit("/", 1)[-1], _cli_actor())
        db.session.commit()
    except ValidationError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    click.echo(
        _(
            "%(year)d: %(added)d days added, %(changed)d changed, %(unchanged)d already so.",
            year=result.year,
            added=result.added,
            changed=result.changed,
            unchanged=result.unchanged,
        )
    )
    if result.confirmed:
        click.echo(_("The %(year)d schedule is now confirmed.", year=result.year))
    click.echo(
        _(
            "Open cases examined: %(examined)d; deadlines moved: %(moved)d.",
            examined=result.retimed.examined,
            moved=len(result.retimed.moved),
        )
    )
    for ref in result.retimed.moved:
        click.echo(f"  {ref}")


def _cli_actor():
    from app.cases.actors import SYSTEM_ACTOR

    return SYSTEM_ACTOR
