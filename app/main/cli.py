"""``flask serve``: the development server of ``make run`` with the embedded scheduler."""

from __future__ import annotations

import click
from flask import Blueprint, current_app

bp = Blueprint("main_cli", __name__, cli_group=None)


@bp.cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="HOST")
@click.option("--port", default=5000, show_default=True, type=int, envvar="PORT")
def serve_command(host, port):
    """Serve the app (single process, no reloader) and, with SCHEDULER=embedded, the escalation sweep."""
    from app.demo.seed import DEMO_ACCOUNTS_TEXT, DEMO_PASSWORD

    app = current_app._get_current_object()
    scheduler = None
    if app.config.get("SCHEDULER") == "embedded":
        from app.sla.scheduler import start_embedded_scheduler

        scheduler = start_embedded_scheduler(app)
    click.echo("")
    click.echo(f"  Key Small Matters is running at http://{host}:{port}/")
    click.echo(f"  Demo accounts (password {DEMO_PASSWORD}):")
    click.echo(f"    {DEMO_ACCOUNTS_TEXT}")
    click.echo(f"  Escalation scheduler: {'embedded' if scheduler else 'off (run flask scheduler)'}")
    click.echo("  Press Ctrl+C to stop.")
    click.echo("")
    try:
        # ``app.run`` refuses to run inside the ``flask`` command; Werkzeug's server is what it would use.
        from werkzeug.serving import run_simple

        run_simple(host, port, app, use_reloader=False, use_debugger=False, threaded=True)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
