"""The escalation scheduler: APScheduler runs the sweep and the notification delivery every minute, and
refreshes the monthly rollup of the figures every five minutes, and rates the property firms once a day
for the month that has just closed (a no-op once it is rated).

``make run`` embeds it in the development server (``SCHEDULER=embedded``); production runs
``flask scheduler`` as its own process and keeps web workers free of it (``SCHEDULER=off``), because
APScheduler 3 cannot share a job store between processes. Two scheduler processes are still safe: the
jobs claim rows with database locks.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

log = logging.getLogger("ksm.scheduler")

INTERVAL_SECONDS = 60


def run_jobs(app) -> None:
    """One tick: sweep, then deliver outbound notifications. Never raises (the scheduler keeps going)."""
    from app.core import heartbeat
    from app.extensions import db
    from app.notify.services import deliver_pending
    from app.sla.services import run_sweep

    with app.app_context():
        try:
            with heartbeat.timed("sweep") as beat:
                result = run_sweep()
                beat.count = result.warned + result.yellow + result.red + result.auto_closed
            if result.examined:
                log.info(
                    "sweep: warned %d, yellow %d, red %d, auto-closed %d, case overdue %d",
                    result.warned,
                    result.yellow,
                    result.red,
                    result.auto_closed,
                    result.case_overdue,
                )
            from app.notify.resident import queue_signoff_reminders

            queue_signoff_reminders()
            delivery = deliver_pending()
            db.session.commit()
            if delivery.sent or delivery.failed or delivery.retried:
                log.info(
                    "notifications: sent %d, retrying %d, failed %d", delivery.sent, delivery.retried, delivery.failed
                )
        except Exception:  # noqa: BLE001 - a failing tick must not stop the scheduler
            db.session.rollback()
            log.exception("scheduled jobs failed")
        finally:
            db.session.remove()


def rate_closed_month(app) -> None:
    """Daily: rate the property firms for the reporting month that has just closed (once; frozen after)."""
    from flask import g

    from app.extensions import db
    from app.reports.rating import previous_complete_month, scheduled_rating

    with app.app_context():
        try:
            if scheduled_rating():
                as_of = g.get("rating_figures_as_of")
                source = f"the read replica as of {as_of.isoformat()}" if as_of else "the primary"
                log.info("firm ratings computed for %s from %s", previous_complete_month(), source)
            db.session.commit()
        except Exception:  # noqa: BLE001 - a failing run must not stop the scheduler; tomorrow's retries
            db.session.rollback()
            log.exception("monthly firm rating failed")
        finally:
            db.session.remove()


ROLLUP_SECONDS = 300


def refresh_rollup(app) -> None:
    """Every few minutes: refresh the monthly rollup the dashboards read (the running month, months that
    just ended or were marked dirty, and a few never rolled up). Never raises."""
    from app.extensions import db
    from app.reports.rollup import refresh_due

    with app.app_context():
        try:
            done = refresh_due()
            db.session.commit()
            log.debug("rollup refreshed: %s", done)
        except Exception:  # noqa: BLE001 - the figures fall back to the facts; retried next time
            db.session.rollback()
            log.exception("rollup refresh failed")
        finally:
            db.session.remove()


def _interval(app) -> int:
    return int(app.config.get("SWEEP_INTERVAL_SECONDS") or INTERVAL_SECONDS)


def _configure(scheduler, app, *, sweep_now: bool = False):
    """Add the jobs. The sweep job is added paused unless ``sweep_now`` (it then runs at once and
    every interval after)."""
    from datetime import datetime

    interval = _interval(app)
    scheduler.add_job(
        run_jobs,
        "interval",
        seconds=interval,
        args=[app],
        id="ksm-sweep",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=interval * 5,
        next_run_time=datetime.now(scheduler.timezone) if sweep_now else None,
    )
    scheduler.add_job(
        refresh_rollup,
        "interval",
        seconds=ROLLUP_SECONDS,
        args=[app],
        id="ksm-rollup",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=ROLLUP_SECONDS,
    )
    scheduler.add_job(
        rate_closed_month,
        "cron",
        hour=2,
        minute=15,
        args=[app],
        id="ksm-monthly-rating",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=6 * 3600,
    )
    return scheduler


def start_embedded_scheduler(app):
    """Start the jobs in a background thread of this process (development server only)."""
    from datetime import datetime

    scheduler = _configure(BackgroundScheduler(timezone=app.config["APP_TIMEZONE"], daemon=True), app)
    scheduler.start()
    scheduler.modify_job("ksm-sweep", next_run_time=datetime.now(scheduler.timezone))
    log.info("embedded scheduler started: sweep every %d s", _interval(app))
    return scheduler


def run_standalone_scheduler(app) -> None:
    """Run the jobs in the foreground until interrupted (``flask scheduler``)."""

    # the sweep job runs at once and then every interval (it used to be added paused here and ran
    # only once, through a separate one-off job: the standalone scheduler never swept again)
    scheduler = _configure(BlockingScheduler(timezone=app.config["APP_TIMEZONE"]), app, sweep_now=True)
    log.info("scheduler running: sweep every %d s (Ctrl+C to stop)", _interval(app))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")
