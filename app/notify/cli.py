"""``flask sms opt-out PHONE`` / ``flask sms opt-in PHONE`` and ``flask notify deliver``."""

from __future__ import annotations

import click
from flask import Blueprint
from flask.cli import AppGroup
from flask_babel import gettext as _

from app.extensions import db

bp = Blueprint("notify_cli", __name__, cli_group=None)
sms_group = AppGroup("sms", help="Messages to residents' mobiles.")
bp.cli.add_command(sms_group)


@sms_group.command("opt-out")
@click.argument("phone")
@click.option("--note", default="", help="Why (e.g. asked at the window).")
def opt_out_command(phone, note):
    """Stop all messages to PHONE (the resident asked)."""
    from app.notify.resident import opt_out

    try:
        changed = opt_out(phone, "cli", note)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="PHONE") from None
    db.session.commit()
    click.echo(_("%(phone)s will get no more messages.", phone=phone) if changed else _("Already opted out."))


@sms_group.command("opt-in")
@click.argument("phone")
def opt_in_command(phone):
    """Allow messages to PHONE again (the resident asked)."""
    from app.notify.resident import opt_in

    changed = opt_in(phone)
    db.session.commit()
    click.echo(_("%(phone)s gets messages again.", phone=phone) if changed else _("That number was not opted out."))


notify_group = AppGroup("notify", help="Outbound messages.")
bp.cli.add_command(notify_group)


@notify_group.command("deliver")
def deliver_command():
    """Queue due sign-off reminders and send what is waiting in the outbox now."""
    from app.notify.resident import queue_signoff_reminders
    from app.notify.services import deliver_pending

    reminders = queue_signoff_reminders()
    result = deliver_pending()
    db.session.commit()
    click.echo(
        _(
            "reminders queued %(reminders)d; sent %(sent)d, retrying %(retried)d, failed %(failed)d",
            reminders=reminders,
            sent=result.sent,
            retried=result.retried,
            failed=result.failed,
        )
    )
