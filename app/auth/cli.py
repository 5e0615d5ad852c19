"""``flask create-user`` and ``flask create-token``."""

from __future__ import annotations

import click
from flask import Blueprint
from sqlalchemy import select

from app.audit.services import record_audit
from app.auth import roles, services
from app.auth.models import User
from app.core.errors import DomainError
from app.extensions import db

bp = Blueprint("auth_cli", __name__, cli_group=None)


def _parse_scope(role: str, scope: str | None) -> services.Scope:
    """``KIND:REF`` or just ``REF`` when the role has a single scope kind (REF: id, code or name)."""
    if not scope:
        return services.Scope(None, None)
    if ":" in scope:
        kind, ref = scope.split(":", 1)
    else:
        kinds = roles.ROLE_SCOPES.get(role, ())
        if len(kinds) != 1:
            raise click.BadParameter(
                f"give the kind for role {role}: e.g. community:C01 or street:S01", param_hint="--scope"
            )
        kind, ref = kinds[0], scope
    return services.resolve_scope(kind.strip(), ref.strip())


@bp.cli.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(roles.ROLES), help="The user's role.")
@click.option("--scope", help="KIND:REF, e.g. grid:G01, firm:F01, community:C01, street:S01, station:ST01.")
@click.option("--name", "display_name", help="Display name (default: the username).")
@click.option("--phone", help="Mobile number for notifications.")
@click.option("--email", help="E-mail address for notifications.")
@click.password_option(help="Password (asked for when not given).")
def create_user_command(username, role, scope, display_name, password, phone, email):
    """Create a staff account with a role and scope."""
    try:
        user = services.create_user(
            username, password, role, _parse_scope(role, scope), display_name=display_name, phone=phone, email=email
        )
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    record_audit(None, "user.created", target=user, details={"via": "cli", "role": role, "scope": scope})
    db.session.commit()
    click.echo(
        f"created user {user.username} ({user.role}"
        + (f", {user.scope_kind}: {user.scope_label}" if user.scope_kind else "")
        + ")"
    )


@bp.cli.command("create-token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def create_token_command(username, name):
    """Create an API bearer token for USERNAME and print it (shown only once)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user called {username}")
    try:
        token, secret = services.create_token(user, name)
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    record_audit(None, "token.created", target=token, details={"via": "cli", "prefix": token.prefix})
    db.session.commit()
    click.echo(secret)
