"""``flask seed-demo``."""

from __future__ import annotations

import click
from flask import Blueprint
from sqlalchemy import func, select

from app.auth.models import User
from app.extensions import db

bp = Blueprint("demo_cli", __name__, cli_group=None)


@bp.cli.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Only seed when the database has no users yet.")
@click.option("--no-cases", is_flag=True, help="Organisation, categories and users only.")
def seed_demo_command(if_empty, no_cases):
    """Load the demo organisation, categories, users and cases (idempotent)."""
    from app.demo.seed import DEMO_ACCOUNTS_TEXT, DEMO_PASSWORD, seed_demo

    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("database already has users; demo data not loaded")
        return
    counts = seed_demo(with_cases=not no_cases)
    db.session.commit()
    click.echo(
        f"demo data ready: {counts['compounds']} compounds, {counts['users']} demo users, {counts['cases']} cases"
    )
    click.echo(f"demo accounts (password {DEMO_PASSWORD}): {DEMO_ACCOUNTS_TEXT}")
