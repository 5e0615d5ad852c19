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


@bp.cli.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, writable=True))
def backup_command(target):
    """Copy the database to TARGET while the app keeps running.

    SQLite: SQLite's online backup API (a consistent copy, page by page, writers may continue).
    PostgreSQL: ``pg_dump --format=custom`` (restore with ``pg_restore``; see docs/operations.md).
    """
    import os
    import sqlite3
    import subprocess

    from sqlalchemy.engine import make_url

    from app.extensions import db

    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if os.path.exists(target):
        raise click.ClickException(f"{target} exists; choose a new file")
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise click.ClickException("an in-memory database cannot be backed up")
        source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
        destination = sqlite3.connect(target)
        try:
            with destination:
                source.backup(destination, pages=256)
        finally:
            destination.close()
            source.close()
        check = sqlite3.connect(target)
        try:
            verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
        if verdict != "ok":
            raise click.ClickException(f"the copy fails SQLite's integrity check: {verdict}")
    elif url.get_backend_name() == "postgresql":
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = url.password
        command = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", "--dbname", url.database or ""]
        for flag, value in (("--host", url.host), ("--port", url.port), ("--username", url.username)):
            if value:
                command += [flag, str(value)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"pg_dump failed: {result.stderr.strip()}")
    else:
        raise click.ClickException(f"no backup method for {url.get_backend_name()}")
    db.session.remove()
    click.echo(f"backup written to {target} ({os.path.getsize(target)} bytes)")
