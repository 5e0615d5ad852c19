"""Server-side sessions: every signed-in browser is a :class:`LoginSession` row.

Flask-Login keeps ``session["_user_id"]`` and the remember-me cookie; both hold the string
``"USER_ID:STAMP:TOKEN"`` (signed by Flask / Flask-Login). On every request the user loader accepts it
only when

* ``STAMP`` equals the user's current ``session_stamp`` — a password change, an administrator's reset,
  deactivation, a role or scope change and "sign out everywhere" change the stamp, ending every session
  and remember-me cookie of the user at once;
* ``TOKEN`` names a ``login_session`` row of that user that is neither revoked (logout) nor expired;
* the account is active.

Why a row per session rather than only the stamp: logging out on one device should not sign the user
out of the others, and a copied cookie must die with the logout it was copied before. The row costs
one indexed lookup per request (joined with the user in one query).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from sqlalchemy import delete, select, update

from app.auth.models import LoginSession, User, new_stamp
from app.core.params import parse_id
from app.core.timeutil import utcnow
from app.extensions import db


def _lifetime(remember: bool) -> timedelta:
    if remember:
        return current_app.config["REMEMBER_COOKIE_DURATION"]
    return timedelta(hours=current_app.config.get("SESSION_MAX_HOURS", 12))


def _client() -> tuple[str | None, str | None]:
    from flask import has_request_context

    if not has_request_context():
        return None, None
    agent = (request.user_agent.string or "")[:200] or None
    return (request.remote_addr or None), agent


def start_session(user: User, *, remember: bool = False, expires_at: datetime | None = None) -> str:
    """Create the server-side record of a new sign-in and return the id Flask-Login stores.

    Sets ``user._login_id`` so that ``login_user(user)`` writes that id. Flushes; the caller commits.
    """
    now = utcnow()
    ip, agent = _client()
    # the user's ended sessions are kept a day (for the profile page), then forgotten
    db.session.execute(
        delete(LoginSession)
        .where(
            LoginSession.user_id == user.id,
            (LoginSession.expires_at < now - timedelta(days=1)) | (LoginSession.revoked_at < now - timedelta(days=1)),
        )
        .execution_options(synchronize_session=False)
    )
    row = LoginSession(
        user_id=user.id,
        token=secrets.token_urlsafe(24),
        remember=remember,
        created_at=now,
        expires_at=expires_at or now + _lifetime(remember),
        ip=ip,
        user_agent=agent,
    )
    db.session.add(row)
    db.session.flush()
    user._login_id = f"{user.id}:{user.session_stamp}:{row.token}"
    g._login_session = row
    return user._login_id


def _split(login_id: str) -> tuple[int | None, str, str]:
    parts = str(login_id or "").split(":")
    if len(parts) != 3:
        return None, "", ""
    return parse_id(parts[0]), parts[1], parts[2]


def load_user(login_id: str) -> User | None:
    """The user loader: the active user whose session ``login_id`` names, or None (never raises)."""
    user_id, stamp, token = _split(login_id)
    if user_id is None or not token or not stamp:
        return None
    found = db.session.execute(
        select(User, LoginSession)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(User.id == user_id, LoginSession.token == token)
    ).first()
    if found is None:
        return None
    user, row = found
    if not hmac.compare_digest(user.session_stamp.encode(), stamp.encode()):
        return None
    if row.revoked_at is not None or row.expires_at <= utcnow() or not user.is_active:
        return None
    user._login_id = login_id
    g._login_session = row
    return user


def current_session() -> LoginSession | None:
    """The session row of this request (after the user was loaded), or None."""
    return g.get("_login_session")


def end_session() -> None:
    """Revoke this request's session row (logout). Flushes; the caller commits."""
    row = current_session()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.flush()


def rotate_remembered(user: User) -> None:
    """Exchange the remember-me cookie just used for a new one (same expiry), revoking the old row.

    Connected to Flask-Login's ``user_loaded_from_cookie``: a stolen cookie and the real one cannot both
    keep working — whichever is used second is refused. Commits at the end of the request like any
    other write; the response carries the new cookie.
    """
    old = current_session()
    if old is None:
        return
    old.revoked_at = utcnow()
    login_id = start_session(user, remember=True, expires_at=old.expires_at)
    session["_user_id"] = login_id
    session["_remember"] = "set"
    session["_remember_seconds"] = max(60, int((old.expires_at - utcnow()).total_seconds()))
    db.session.commit()


def sign_out_everywhere(user: User) -> None:
    """End every session and remember-me cookie of ``user`` (new stamp, rows revoked). Flushes."""
    user.session_stamp = new_stamp()
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.flush()


def active_sessions(user: User) -> list[LoginSession]:
    """The user's sessions that still work, newest first."""
    return list(
        db.session.scalars(
            select(LoginSession)
            .where(
                LoginSession.user_id == user.id,
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > utcnow(),
            )
            .order_by(LoginSession.created_at.desc())
        )
    )
