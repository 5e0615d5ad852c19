"""Account rules: authentication with lockout, passwords, user management and API tokens.

Services take an explicit ``actor`` where an action is on someone's behalf, ``flush()`` and leave the
commit to the caller.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select, update
from sqlalchemy import case as sql_case
from werkzeug.security import check_password_hash, generate_password_hash

from app.audit.services import record_audit
from app.auth import roles
from app.auth.models import ApiToken, User
from app.core.errors import NotFound, PermissionDenied, ValidationError
from app.core.params import parse_id
from app.core.timeutil import utcnow
from app.extensions import db
from app.org.models import Community, Grid, PartyBranch, PropertyFirm, ServiceStation, Street

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
SCOPE_MODELS = {
    roles.STATION: ServiceStation,
    roles.GRID: Grid,
    roles.FIRM: PropertyFirm,
    roles.BRANCH: PartyBranch,
    roles.COMMUNITY: Community,
    roles.STREET: Street,
}


class LoginRefused(Exception):
    """Authentication failed; ``message`` is safe to show (it never says whether the user exists)."""

    def __init__(self, message: str, *, locked: bool = False):
        super().__init__(message)
        self.message = message
        self.locked = locked


_DUMMY_HASHES: dict[str, str] = {}


def _dummy_check(password: str) -> None:
    """Check a password against a throw-away hash so an unknown username takes as long as a known one."""
    method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_hex(8), method=method)
    check_password_hash(_DUMMY_HASHES[method], password)


def _locked_message(until, now) -> str:
    minutes = max(1, int((until - now).total_seconds() // 60) + 1)
    return _(
        "This account is locked after too many failed attempts. Try again in %(minutes)d minutes "
        "or ask an administrator to unlock it.",
        minutes=minutes,
    )


def authenticate(username: str, password: str) -> User:
    """Check a username and password, counting failures and locking the account after too many.

    The attempt is counted *before* the password is checked, in one atomic ``UPDATE … RETURNING``:
    however many requests race for one account, at most ``LOGIN_MAX_FAILURES`` passwords are checked
    before the lock holds (the count and the lock live in the database, not in a Python variable).

    Raises :class:`LoginRefused` with a message for the login form. Flushes the failure count or the
    successful login time; the caller commits in both cases.
    """
    name = (username or "").strip().lower()
    user_id = db.session.scalar(select(User.id).where(func.lower(User.username) == name))
    now = utcnow()
    if user_id is None:
        _dummy_check(password or "")
        raise LoginRefused(_("Wrong username or password."))
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    lock_expired = User.locked_until.is_not(None) & (User.locked_until <= now)
    attempt, locked_until = db.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(
            failed_login_count=sql_case((lock_expired, 1), else_=User.failed_login_count + 1),
            locked_until=sql_case((lock_expired, None), else_=User.locked_until),
        )
        .returning(User.failed_login_count, User.locked_until)
        .execution_options(synchronize_session=False)
    ).one()
    if locked_until is not None and locked_until > now:
        raise LoginRefused(_locked_message(locked_until, now), locked=True)
    if attempt > limit:  # another request is locking the account right now
        raise LoginRefused(
            _locked_message(now + timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"]), now), locked=True
        )
    user = db.session.get(User, user_id, populate_existing=True)
    if not user.check_password(password or ""):
        if attempt >= limit:
            user.locked_until = now + timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
            db.session.flush()
            record_audit(None, "login.locked", target=user, details={"username": user.username})
            raise LoginRefused(
                _(
                    "Too many failed attempts: this account is locked for %(minutes)d minutes.",
                    minutes=current_app.config["LOGIN_LOCK_MINUTES"],
                ),
                locked=True,
            )
        raise LoginRefused(_("Wrong username or password."))
    if not user.is_active:
        raise LoginRefused(_("This account is disabled. Ask an administrator."))
    user.failed_login_count = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.flush()
    return user


def check_password_strength(password: str) -> None:
    """Raise :class:`ValidationError` unless the password has ≥ 8 characters with letters and digits."""
    if len(password or "") < 8 or not re.search(r"[A-Za-z]", password) or not re.search(r"\d", password):
        raise ValidationError(
            _("A password needs at least 8 characters with both letters and digits."), field="password"
        )


def change_password(user: User, current: str, new: str) -> None:
    """Change a user's own password. Raises :class:`ValidationError` if ``current`` is wrong or
    ``new`` is weak or unchanged."""
    if not user.check_password(current or ""):
        raise ValidationError(_("The current password is not correct."), field="current_password")
    check_password_strength(new)
    if current == new:
        raise ValidationError(_("The new password must differ from the current one."), field="new_password")
    user.set_password(new)
    user.password_changed_at = utcnow()
    db.session.flush()


@dataclass
class Scope:
    kind: str | None
    id: int | None


def resolve_scope(kind: str | None, ref: str | int | None) -> Scope:
    """Find a scope object by id, code or name. Raises :class:`ValidationError` if unknown."""
    if not kind:
        return Scope(None, None)
    model = SCOPE_MODELS.get(kind)
    if model is None:
        raise ValidationError(
            _("Unknown scope kind %(kind)s; use one of %(kinds)s.", kind=kind, kinds=", ".join(SCOPE_MODELS)),
            field="scope",
        )
    obj = None
    if parse_id(ref) is not None:
        obj = db.session.get(model, parse_id(ref))
    if obj is None and ref is not None:
        obj = db.session.scalar(select(model).where((model.code == str(ref)) | (model.name == str(ref))))
    if obj is None:
        raise ValidationError(
            _("No %(kind)s called %(ref)s.", kind=str(roles.SCOPE_LABELS[kind]), ref=ref), field="scope"
        )
    return Scope(kind, obj.id)


def validate_role_scope(role: str, scope: Scope) -> None:
    """Raise :class:`ValidationError` unless ``scope`` is a kind the role accepts."""
    if role not in roles.ROLES:
        raise ValidationError(
            _("Unknown role %(role)s; use one of %(roles)s.", role=role, roles=", ".join(roles.ROLES)), field="role"
        )
    allowed = roles.ROLE_SCOPES[role]
    if not allowed:
        if scope.kind is not None:
            raise ValidationError(_("Administrators have no scope."), field="scope")
        return
    if scope.kind not in allowed:
        raise ValidationError(
            _(
                "A %(role)s needs a scope of kind %(kinds)s.",
                role=roles.role_label(role),
                kinds=" / ".join(str(roles.SCOPE_LABELS[k]) for k in allowed),
            ),
            field="scope",
        )


def apply_scope(user: User, scope: Scope) -> None:
    for kind in SCOPE_MODELS:
        setattr(user, f"{kind}_id", scope.id if kind == scope.kind else None)


def create_user(
    username: str,
    password: str,
    role: str,
    scope: Scope,
    *,
    display_name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> User:
    """Create an account. Raises :class:`ValidationError` for a taken or malformed username, a weak
    password, a role/scope mismatch or a malformed mobile number."""
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise ValidationError(_("A username has 3–64 letters, digits, dots, dashes or underscores."), field="username")
    if db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise ValidationError(_("The username %(username)s is taken.", username=username), field="username")
    check_password_strength(password)
    validate_role_scope(role, scope)
    if phone and not MOBILE_RE.match(phone):
        raise ValidationError(_("A mobile number has 11 digits and starts with 1."), field="phone")
    user = User(
        username=username,
        display_name=(display_name or username).strip(),
        role=role,
        phone=phone or None,
        email=email or None,
        active=True,
    )
    user.set_password(password)
    apply_scope(user, scope)
    db.session.add(user)
    db.session.flush()
    return user


def unlock_user(user: User) -> None:
    """Clear a lockout (administrators)."""
    user.locked_until = None
    user.failed_login_count = 0
    db.session.flush()


TOKEN_PREFIX = "ksm_"


def create_token(user: User, name: str = "cli") -> tuple[ApiToken, str]:
    """Create an API token for ``user``; returns the row and the secret (shown once, never stored).

    Raises :class:`ValidationError` for an inactive user or an empty name.
    """
    if not user.is_active:
        raise ValidationError(_("This account is disabled; it cannot hold API tokens."))
    name = (name or "").strip()[:64]
    if not name:
        raise ValidationError(_("Give the token a name, e.g. the system that will use it."), field="name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id, name=name, token_hash=ApiToken.hash_secret(secret), prefix=secret[: len(TOKEN_PREFIX) + 6]
    )
    db.session.add(token)
    db.session.flush()
    return token, secret


#: the owner of an unrevoked token, if active, with the token's id and last use: one entity, not two
_TOKEN_QUERY = (
    select(User, ApiToken.id, ApiToken.last_used_at)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None), User.active.is_(True))
)


def user_for_token(secret: str) -> User | None:
    """The active user owning an unrevoked token, or None. Records the token's last use."""
    if not secret:
        return None
    # the token and its owner in one statement, built once (every API call asks)
    found = db.session.execute(_TOKEN_QUERY, {"token_hash": ApiToken.hash_secret(secret)}).first()
    if found is None:
        return None
    user, token_id, last_used_at = found
    now = utcnow()
    # Write the last-used time at most once a minute: a busy integration should not turn reads into writes.
    if last_used_at is None or now - last_used_at > timedelta(minutes=1):
        db.session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now),
            execution_options={"synchronize_session": False},
        )
    return user


def revoke_token(actor: User, token_id: int) -> ApiToken:
    """Revoke one of the actor's tokens (administrators may revoke anyone's).

    Raises :class:`NotFound` for an unknown token and :class:`PermissionDenied` for someone else's.
    """
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(_("No such token."))
    if token.user_id != actor.id and actor.role != roles.ADMIN:
        raise PermissionDenied(_("You can only revoke your own tokens."))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.flush()
    return token
